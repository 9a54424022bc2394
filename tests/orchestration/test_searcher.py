"""The searcher's bookkeeping on scripted results (real Optuna, no Ray cluster)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from overfit_search.config import sweep_from_dict
from overfit_search.layout import ResultKey, TrialAttr
from overfit_search.orchestration.searcher import (
    CRASH_REASON_FILE,
    TRIAL_NUMBER_KEY,
    OverfitOptunaSearch,
)
from overfit_search.orchestration.stopper import OverfitStopper
from overfit_search.pruning import GLRule, OverfitJudge
from overfit_search.results.exports import trials_frame
from overfit_search.search_space import PINNED_ATTR, split_space
from tests.conftest import tiny_sweep


def _setup(
    mode: str = "constrained", min_trials: int = 2, trials_dir: Path | None = None
) -> tuple[Any, ...]:
    sweep = sweep_from_dict(
        tiny_sweep(
            train={"max_epochs": 6},
            objective={"mode": mode, "max_gap": 0.2},
            search={"augmentation": 0.0},
            study={"sampler": "nsga2" if mode == "pareto" else "tpe"},
        )
    )
    study = optuna.create_study(
        directions=["minimize", "minimize"] if mode == "pareto" else ["minimize"],
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    space, fixed = split_space(sweep.search)
    judge = OverfitJudge(GLRule(alpha=5), grace_epochs=2, compare_min_trials=min_trials)
    searcher = OverfitOptunaSearch(study, space, fixed, judge, sweep, trials_dir=trials_dir)
    return searcher, OverfitStopper(judge), study


def _run(
    searcher: Any,
    stopper: Any,
    trial_id: str,
    curve: list[tuple[float, float]],
    stop_early_at: int | None = None,
    failed: str | None = None,
) -> None:
    config = searcher.suggest(trial_id)
    assert config is not None and config["augmentation"] == 0.0 and TRIAL_NUMBER_KEY in config
    last: dict[str, Any] = {}
    for epoch, (val, train) in enumerate(curve, start=1):
        last = {
            ResultKey.EPOCH: epoch,
            ResultKey.VAL_LOSS: val,
            ResultKey.TRAIN_EVAL_LOSS: train,
            ResultKey.GAP: val - train,
        }
        if stopper(trial_id, last) or epoch == stop_early_at:
            break
        searcher.on_trial_result(trial_id, last)
    if failed:
        last = {
            ResultKey.EPOCH: len(curve) + 1,
            ResultKey.VAL_LOSS: math.nan,
            ResultKey.TRAIN_EVAL_LOSS: math.nan,
            ResultKey.FAILED: failed,
        }
    searcher.on_trial_complete(trial_id, last)


GOOD = [(1.0, 0.9), (0.6, 0.5), (0.5, 0.4), (0.45, 0.35), (0.44, 0.3), (0.43, 0.3)]
BAD_OVERFIT = [(1.2, 1.0), (1.0, 0.7), (1.1, 0.5), (1.2, 0.3), (1.3, 0.2), (1.4, 0.1)]
GOOD_OVERFIT = [(0.6, 0.5), (0.35, 0.3), (0.4, 0.2), (0.5, 0.1), (0.6, 0.05), (0.7, 0.01)]


def test_states_values_and_attributes_follow_the_judge() -> None:
    searcher, stopper, study = _setup()
    _run(searcher, stopper, "a", GOOD)
    _run(searcher, stopper, "b", GOOD)
    _run(searcher, stopper, "c", BAD_OVERFIT)
    _run(searcher, stopper, "d", GOOD_OVERFIT)
    a, _, c, d = study.get_trials()

    assert a.state == TrialState.COMPLETE and a.value == pytest.approx(0.43)
    assert a.user_attrs["best_epoch"] == 6 and a.user_attrs["epochs_run"] == 6
    assert not a.user_attrs["stopped_early"] and a.user_attrs["feasible"]
    assert a.intermediate_values == {i + 1: v for i, (v, _) in enumerate(GOOD)}
    assert a.constraints == {"gap": pytest.approx(0.13 - 0.2)}

    # Overfits from epoch 3 and is worse than the median: PRUNED, valued at its best so far.
    assert c.state == TrialState.PRUNED
    assert c.value == pytest.approx(1.0)  # Optuna's own tell would store the last value, 1.1
    assert c.user_attrs["stop_rule"] == "gl" and c.user_attrs["epochs_run"] == 3
    assert c.user_attrs["stop_reason"].startswith("GL 10.0% > 5% at epoch 3; best 1.0000 worse")
    assert sorted(c.intermediate_values) == [1, 2, 3]

    # Overfits too, but its best epoch beats the median: COMPLETE, stopped early, best kept.
    assert d.state == TrialState.COMPLETE and d.value == pytest.approx(0.35)
    assert d.user_attrs["stopped_early"] and d.user_attrs["best_epoch"] == 2
    assert d.user_attrs["gap"] == pytest.approx(0.05)


def test_failed_trial_is_fail_with_reason() -> None:
    searcher, stopper, study = _setup()
    _run(searcher, stopper, "x", GOOD[:2], failed="ResourceExhaustedError: OOM")
    (trial,) = study.get_trials()
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs["fail_reason"] == "ResourceExhaustedError: OOM"


@pytest.mark.parametrize("left_reason", [True, False])
def test_a_crashed_trial_is_fail_with_the_reason_it_left(tmp_path: Path, left_reason: bool) -> None:
    # Ray reports a dead trial process as error=True with no result of its own.
    searcher, _, study = _setup(trials_dir=tmp_path)
    config = searcher.suggest("x")
    number = config[TRIAL_NUMBER_KEY]
    if left_reason:
        (tmp_path / str(number)).mkdir()
        (tmp_path / str(number) / CRASH_REASON_FILE).write_text("hung: past the timeout\nmore\n")
    searcher.on_trial_complete("x", None, error=True)
    (trial,) = study.get_trials()
    assert trial.state == TrialState.FAIL
    expected = "hung: past the timeout" if left_reason else f"crashed (see trials/{number}/)"
    assert trial.user_attrs["fail_reason"].endswith(expected)


def test_nan_trial_is_fail_for_the_user_and_bad_for_the_sampler() -> None:
    searcher, stopper, study = _setup()
    _run(searcher, stopper, "n", [(1.0, 0.9), (math.nan, math.nan)])
    (trial,) = study.get_trials()
    assert trial.user_attrs["fail_reason"] == "val_loss is NaN at epoch 2"
    assert trial.user_attrs["state"] == "FAIL" and trial.user_attrs["diverged"] is True
    # TPE ignores FAIL trials: Optuna holds it PRUNED at its last finite value instead
    assert trial.state == TrialState.PRUNED and trial.value == pytest.approx(1.0)
    assert trials_frame(study).state.tolist() == ["FAIL"]


def test_nan_at_the_first_epoch_is_plain_fail() -> None:
    searcher, stopper, study = _setup()
    _run(searcher, stopper, "n", [(math.nan, math.nan)])
    (trial,) = study.get_trials()
    assert trial.state == TrialState.FAIL and "diverged" not in trial.user_attrs


def test_nan_trial_in_pareto_mode_stays_fail() -> None:
    searcher, stopper, study = _setup("pareto")
    _run(searcher, stopper, "n", [(1.0, 0.9), (math.nan, math.nan)])
    (trial,) = study.get_trials()
    assert trial.state == TrialState.FAIL


def test_scheduler_stopped_trial_is_pruned() -> None:
    searcher, stopper, study = _setup()
    _run(searcher, stopper, "s", GOOD, stop_early_at=3)
    (trial,) = study.get_trials()
    assert trial.state == TrialState.PRUNED and trial.user_attrs["stop_rule"] == "scheduler"


def test_pareto_keeps_histories_as_user_attributes() -> None:
    searcher, stopper, study = _setup("pareto")
    _run(searcher, stopper, "p", GOOD)
    (trial,) = study.get_trials()
    assert trial.values == pytest.approx([0.43, 0.13])
    assert trial.user_attrs["val_loss_history"] == pytest.approx([v for v, _ in GOOD])
    assert trial.intermediate_values == {}


@pytest.mark.parametrize(
    ("reasons", "broken"),
    [
        (["OSError: no GPU"] * 5, "OSError: no GPU"),
        (["OSError: no GPU"] * 4 + ["ValueError: bad"], None),
        (["OSError: no GPU"] * 4, None),  # too few to tell
        # the crash message names each trial's folder; the same crash is still one error
        ([f"the trial process crashed (see trials/{n}/)" for n in range(5)], "the trial"),
    ],
)
def test_first_five_trials_failing_alike_mark_a_broken_setup(
    reasons: list[str], broken: str | None
) -> None:
    searcher, stopper, _ = _setup()
    for n, reason in enumerate(reasons):
        _run(searcher, stopper, f"t{n}", GOOD[:1], failed=reason)
    if broken is None:
        assert searcher.broken is None
        assert isinstance(searcher.suggest("next"), dict)
    else:
        assert searcher.broken is not None and searcher.broken.startswith(broken)
        assert searcher.suggest("next") == "FINISHED"  # Ray's Searcher.FINISHED: no new trials


def test_a_success_among_the_first_five_keeps_the_sweep_going() -> None:
    searcher, stopper, _ = _setup()
    _run(searcher, stopper, "ok", GOOD)
    for n in range(6):
        _run(searcher, stopper, f"t{n}", GOOD[:1], failed="OSError: flaky disk")
    assert searcher.broken is None


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ValueError("bad image\nmore"), "ValueError: bad image"),
        (MemoryError("cannot allocate"), "out of memory (MemoryError: cannot allocate); lower"),
        (
            type("ResourceExhaustedError", (Exception,), {})(
                "{{function_node __wrapped__X}} OOM when allocating tensor with shape[96,10]"
            ),
            "out of memory (ResourceExhaustedError: OOM when allocating tensor with shape[96,10])",
        ),
    ],
)
def test_failure_reasons_are_one_line_and_say_out_of_memory(
    exc: BaseException, expected: str
) -> None:
    from overfit_search.orchestration.trainable import failure_reason

    reason = failure_reason(exc)
    assert reason.startswith(expected) and "\n" not in reason


def test_an_enqueued_baselines_pins_reach_its_config_and_no_other() -> None:
    searcher, _, study = _setup()
    study.enqueue_trial(
        {"learning_rate": 1e-3},
        user_attrs={
            TrialAttr.BASELINE: True,
            PINNED_ATTR: {"head_epochs": 0, "finetune_lr_factor": 1.0},
        },
    )
    baseline = searcher.suggest("base")
    other = searcher.suggest("other")
    assert baseline["learning_rate"] == 1e-3
    assert baseline["head_epochs"] == 0 and baseline["finetune_lr_factor"] == 1.0
    assert "head_epochs" not in other and "finetune_lr_factor" not in other


def test_the_budget_rule_prunes_a_loser_and_says_so() -> None:
    """Issue 18: the judge's budget rule stops a trial that ranks out at a rung; the study and
    trials.csv record it PRUNED at its best so far, with ``stop_rule`` ``halving``; an
    overfitting trial stopped by the peak rule says ``peak``."""
    from overfit_search.pruning import make_budget, make_rule

    searcher, _, study = _setup()
    judge = OverfitJudge(make_rule("peak"), grace_epochs=2, budget=make_budget("halving"))
    searcher._judge = judge
    stopper = OverfitStopper(judge)
    for key in "abcd":
        _run(searcher, stopper, key, GOOD)
    _run(searcher, stopper, "loser", [(2.0, 1.9), *GOOD[1:]])  # worst of 5 at rung 1
    _run(
        searcher,
        stopper,
        "over",
        [(0.9, 0.8), (0.5, 0.4), (0.4, 0.2), (0.5, 0.1), (0.6, 0.05), (0.7, 0.01)],
    )
    loser, over = study.get_trials()[4:]
    assert loser.state == TrialState.PRUNED and loser.value == pytest.approx(2.0)
    assert loser.user_attrs["stop_rule"] == "halving" and loser.user_attrs["epochs_run"] == 1
    assert "ranked out" in loser.user_attrs["stop_reason"]
    assert over.user_attrs["stop_rule"] == "peak" and over.user_attrs["epochs_run"] == 6
    assert over.state == TrialState.COMPLETE and over.value == pytest.approx(0.4)
    frame = trials_frame(study)
    assert frame.stop_rule.tolist()[4:] == ["halving", "peak"]


LOW_BIG_GAP = [(1.0, 0.9), (0.6, 0.3), (0.5, 0.2), (0.4, 0.1), (0.35, 0.05), (0.3, 0.01)]


@pytest.mark.parametrize(("mode", "chosen"), [("val_loss", 1), ("constrained", 0)])
def test_val_loss_mode_sets_no_gap_constraint_and_exports_the_lowest(
    mode: str, chosen: int
) -> None:
    from overfit_search.results.exports import select_best

    searcher, stopper, study = _setup(mode)
    _run(searcher, stopper, "a", GOOD)  # val_loss 0.43, gap 0.13
    _run(searcher, stopper, "b", LOW_BIG_GAP)  # val_loss 0.30, gap 0.29 > max_gap 0.2
    _, b = study.get_trials()
    assert b.user_attrs["feasible"] is False  # reported in every mode
    assert bool(b.constraints) is (mode == "constrained")
    choice = select_best(study, searcher._sweep)
    assert choice.trial.number == chosen
    assert choice.why == (
        "lowest val_loss" if mode == "val_loss" else "lowest val_loss with gap <= 0.2"
    )
