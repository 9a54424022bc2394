"""A sweep's output folder: its lock, its first files, the study it may already hold."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import optuna
import yaml
from optuna.trial import TrialState

from overfit_search.config import Sweep
from overfit_search.data.dataset import ImageData
from overfit_search.errors import ConfigError
from overfit_search.layout import TrialAttr, checkpoint_files
from overfit_search.results.exports import clear_results
from overfit_search.results.storage import open_storage

logger = logging.getLogger(__name__)

LOCK_FILE = ".lock"


def output_dir(sweep: Sweep, output: str | Path | None) -> Path:
    """``--output`` or results/<name>, absolute."""
    return Path(output).resolve() if output else (Path("results") / sweep.name).resolve()


@contextlib.contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """Hold ``out/.lock`` for the run: a second ``run`` on the same output is refused."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        handle = (out / LOCK_FILE).open("a+")
    except OSError as exc:
        raise ConfigError(f"--output: cannot write to {out} ({exc.strerror})") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ConfigError(
                f"{out}: another overfit-search run is writing here ({holder}); wait for it "
                "to end or pass another --output"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        yield
    finally:
        handle.close()  # closing releases the lock


def storage_url(sweep: Sweep, out: Path) -> str:
    """The study's storage URL: ``study.storage`` or SQLite in the output directory."""
    return sweep.study.storage or f"sqlite:///{out / 'study.db'}"


def _existing_study(url: str, name: str) -> bool:
    try:
        names = optuna.study.get_all_study_names(storage=open_storage(url))
    except Exception as exc:  # a driver missing, a server down, a bad URL: the user's setting
        shown = re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise ConfigError(
            f"study.storage: cannot open {shown} ({type(exc).__name__}: {detail})"
        ) from None
    return name in names


def prepare_output(sweep: Sweep, out: Path, resume: bool, overwrite: bool) -> str:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"--output: cannot write to {out} ({exc.strerror})") from None
    url = storage_url(sweep, out)
    exists = _existing_study(url, sweep.name)
    if exists and overwrite:
        if sweep.study.storage:
            optuna.delete_study(study_name=sweep.name, storage=url)
        clear_results(out)
    elif exists and not resume:
        raise ConfigError(
            f"{out}: already holds study '{sweep.name}'; pass --resume to continue it or "
            "--overwrite to start afresh"
        )
    elif resume and not exists:
        logger.info("no study to resume in %s: starting a new one", out)
    return url


def write_check_data(data: ImageData, out: Path) -> None:
    """The check-data checks before the first trial: warn, never block (check_data.json)."""
    import json

    from overfit_search.data.check import check_data, leak_warning

    try:
        report = check_data(data)
    except Exception:  # a check must not cost the sweep
        logger.warning("could not check the data", exc_info=True)
        return
    (out / "check_data.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    warning = leak_warning(report)
    if warning:
        logger.warning("%s", warning)


def write_sweep_yaml(sweep: Sweep, out: Path) -> None:
    from overfit_search import __version__

    doc = sweep.model_dump(mode="json", exclude_none=True)
    header = f"# resolved sweep as run by overfit-search {__version__}\n"
    (out / "sweep.yaml").write_text(header + yaml.safe_dump(doc, sort_keys=False))


def drop_checkpoints(study: optuna.Study, out: Path) -> None:
    """Delete epoch checkpoints no resume will need: all but unfinished, interrupted trials'."""
    trials = study.get_trials(deepcopy=False)
    rerun = {t.user_attrs.get(TrialAttr.RESUMED_FROM) for t in trials if t.state.is_finished()}
    for t in trials:
        keep = t.state == TrialState.RUNNING or (
            t.user_attrs.get(TrialAttr.FAIL_REASON) == "interrupted" and t.number not in rerun
        )
        if not keep:
            for path in checkpoint_files(out / "trials" / str(t.number)):
                path.unlink(missing_ok=True)


def write_review(study: optuna.Study, out: Path) -> None:
    """report.html, its PNGs and the dashboard's figures; a failure here never fails the sweep."""
    from overfit_search.results.report import write_review as write

    try:
        write(out, study)
    except Exception:  # the trials are safe in the study; the review can be rebuilt
        logger.warning(
            "could not write the report (rebuild it with `overfit-search report %s`)",
            out,
            exc_info=True,
        )
