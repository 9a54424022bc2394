"""The results contract (overfit_search/layout.py) is the only home of its keys.

Greps the package so that a new literal copy of a trial attribute key, a study attribute key
or a Ray result key fails CI instead of silently drifting from the writer or the reader.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from overfit_search import layout
from overfit_search.layout import ConfigKey, ResultKey, StudyAttr, TrialAttr

PACKAGE = Path(layout.__file__).parent
CONTRACT = Path(layout.__file__)

# Keys too generic to grep for on their own ("state", "gap", "baseline", ...) are caught by
# the accessor patterns below; these are distinctive enough that any quoted copy is one.
DISTINCTIVE = (
    TrialAttr.BEST_EPOCH,
    TrialAttr.BEST_VAL_LOSS,
    TrialAttr.EPOCHS_RUN,
    TrialAttr.STOPPED_EARLY,
    TrialAttr.STOP_RULE,
    TrialAttr.STOP_REASON,
    TrialAttr.VAL_LOSS_HISTORY,
    TrialAttr.TRAIN_EVAL_LOSS_HISTORY,
    TrialAttr.FAIL_REASON,
    TrialAttr.RAY_TRIAL_ID,
    TrialAttr.RESUMED_FROM,
    ConfigKey.TRIAL_NUMBER,
    ConfigKey.RESUME_FROM,
    layout.CRASH_REASON_FILE,
    layout.BEST_WEIGHTS,
    layout.CHECKPOINT_GLOB,
    layout.CHECKPOINT_TMP,
    layout.CHECK_MODEL_FILE,
)
# A quoted literal handed to a user-attribute accessor, or a Ray result's "failed" key.
ACCESSORS = re.compile(
    r"""(user_attrs\.get\(|user_attrs\[|set_user_attr\(|set_trial_user_attr\([^,]+,\s*)"""
    r"""\s*["']"""
    r"""|result(?:\.get\(|\[)\s*["']|["']failed["']\s*(?:not\s+)?in\s+result"""
)


def _sources() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p != CONTRACT)


def _matching(pattern: re.Pattern[str]) -> list[str]:
    """``path:line: text`` of every package source line that ``pattern`` matches."""
    return [
        f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}"
        for path in _sources()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]


def test_the_contract_names_are_unique() -> None:
    for group in (TrialAttr, StudyAttr, ResultKey, ConfigKey):
        values = [v for k, v in vars(group).items() if k.isupper()]
        assert len(values) == len(set(values)), group
    assert set(layout.HISTORY_COLUMNS) >= {
        ResultKey.EPOCH,
        ResultKey.VAL_LOSS,
        ResultKey.TRAIN_EVAL_LOSS,
        ResultKey.GAP,
        ResultKey.VAL_ACCURACY,
        ResultKey.TRAIN_EVAL_ACCURACY,
    }


@pytest.mark.parametrize("key", DISTINCTIVE)
def test_no_copy_of_a_distinctive_key(key: str) -> None:
    pattern = re.compile(rf"""["']{re.escape(key)}["']""")
    copies = _matching(pattern)
    assert not copies, f"use overfit_search.layout instead of the literal {key!r}:\n" + "\n".join(
        copies
    )


def test_no_literal_key_at_an_accessor() -> None:
    copies = _matching(ACCESSORS)
    assert not copies, "use the keys in overfit_search.layout:\n" + "\n".join(copies)


def test_trials_csv_knob_columns_come_from_the_contract() -> None:
    """trials.csv's ``param_<knob>`` columns are named by :func:`layout.param_column` only."""
    assert layout.param_column("learning_rate") == "param_learning_rate"
    pattern = re.compile(r"""["']param_\w*["']|f["']param_""")
    copies = _matching(pattern)
    assert not copies, "use overfit_search.layout.param_column:\n" + "\n".join(copies)
