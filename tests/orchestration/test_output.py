"""Which epoch checkpoints a finished sweep keeps: only those a resume will still need."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from overfit_search.layout import CHECKPOINT_TMP, TrialAttr, checkpoint_path
from overfit_search.orchestration.output import drop_checkpoints

INTERRUPTED = {TrialAttr.FAIL_REASON: "interrupted"}

# (trial 0's state, its user attributes, whether trial 1 re-ran it, whether trial 0's files stay)
CASES = [
    (TrialState.COMPLETE, {}, False, False),
    (TrialState.PRUNED, {}, False, False),
    (TrialState.FAIL, {TrialAttr.FAIL_REASON: "NaN loss"}, False, False),
    (TrialState.FAIL, INTERRUPTED, False, True),  # a later --resume starts from it
    (TrialState.FAIL, INTERRUPTED, True, False),  # already re-run
    (TrialState.RUNNING, {}, False, True),
]


@pytest.mark.parametrize(("state", "attrs", "rerun", "kept"), CASES)
def test_drop_checkpoints_keeps_only_what_a_resume_needs(
    tmp_path: Path, state: TrialState, attrs: dict[str, str], rerun: bool, kept: bool
) -> None:
    study = optuna.create_study()
    value = 1.0 if state == TrialState.COMPLETE else None
    study.add_trial(create_trial(state=state, value=value, user_attrs=attrs))
    second = {TrialAttr.RESUMED_FROM: 0} if rerun else {}
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=1.0, user_attrs=second))
    folder = tmp_path / "trials" / "0"
    folder.mkdir(parents=True)
    # an epoch checkpoint, and the half-written one a SIGKILL during its write leaves behind
    files = [checkpoint_path(folder, 3), folder / CHECKPOINT_TMP]
    for path in files:
        path.write_bytes(b"weights")
    drop_checkpoints(study, tmp_path)
    assert [path.exists() for path in files] == [kept, kept]
