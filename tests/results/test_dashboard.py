"""The dashboard: figures and notes saved into a real study, served by real optuna-dashboard,
rendered by a real headless Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
import yaml
from optuna_dashboard import save_note

from overfit_search.cli import main
from overfit_search.config import sweep_from_dict
from overfit_search.errors import ConfigError
from overfit_search.layout import HISTORY_FILE, ResultKey, TrialAttr
from overfit_search.results.dashboard import (
    FIGURE_IDS,
    save_figures,
    start_in_thread,
    storage_for,
    study_note,
)
from overfit_search.results.exports import histories_frame, trials_frame
from tests.conftest import tiny_sweep

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CURVES = {  # trial -> (val_loss, train_eval_loss) per epoch
    0: ([0.9, 0.6, 0.45, 0.50, 0.58], [0.8, 0.5, 0.30, 0.20, 0.12]),
    1: ([1.0, 0.7, 0.55, 0.50, 0.48], [0.9, 0.6, 0.50, 0.45, 0.42]),
    2: ([1.2, 1.1, 1.05], [1.1, 1.0, 0.95]),
}


def _results(tmp_path: Path) -> tuple[Path, optuna.Study, Any]:
    """A results directory with a real SQLite study, trial notes, trials.csv, histories.csv."""
    search = {"dropout": {"low": 0.0, "high": 0.5}, "l2": 0.0, "learning_rate": 0.01}
    search |= {"augmentation": 0.0, "frozen_fraction": 0.5}
    sweep = sweep_from_dict(tiny_sweep(name="dash", search=search))
    out = tmp_path / "out"
    out.mkdir()
    (out / "sweep.yaml").write_text(yaml.safe_dump(sweep.model_dump(mode="json")))
    study = optuna.create_study(study_name="dash", storage=f"sqlite:///{out / 'study.db'}")
    for number, (val, train) in CURVES.items():
        trial = study.ask({"dropout": optuna.distributions.FloatDistribution(0.0, 0.5)})
        best = min(range(len(val)), key=val.__getitem__)
        for epoch, value in enumerate(val, start=1):
            trial.report(value, epoch)
        attrs = {
            TrialAttr.BEST_EPOCH: best + 1,
            TrialAttr.BEST_VAL_LOSS: val[best],
            TrialAttr.GAP: val[best] - train[best],
            TrialAttr.EPOCHS_RUN: len(val),
            TrialAttr.FEASIBLE: val[best] - train[best] <= 0.15,
            TrialAttr.STOP_RULE: "gl" if number == 0 else None,
            TrialAttr.STOP_REASON: "GL 28.9% > 5% at epoch 5" if number == 0 else None,
        }
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        save_note(trial, f"## Trial {number}: why it stopped\n- best epoch {best + 1}")
        study.tell(trial, val[best])
        folder = out / "trials" / str(number)
        folder.mkdir(parents=True)
        pd.DataFrame(
            {
                ResultKey.EPOCH: range(1, len(val) + 1),
                ResultKey.VAL_LOSS: val,
                ResultKey.TRAIN_EVAL_LOSS: train,
                ResultKey.GAP: [v - t for v, t in zip(val, train, strict=True)],
            }
        ).to_csv(folder / HISTORY_FILE, index=False)
    trials_frame(study, out / "trials").to_csv(out / "trials.csv", index=False)
    histories_frame(out / "trials").to_csv(out / "histories.csv", index=False)
    return out, study, sweep


def test_storage_for_takes_a_url_or_a_results_dir(tmp_path: Path) -> None:
    assert storage_for("postgresql://u@h/db") == "postgresql://u@h/db"
    out, _, _ = _results(tmp_path)
    assert storage_for(str(out)) == f"sqlite:///{(out / 'study.db').resolve()}"
    with pytest.raises(ConfigError, match="not a results directory or a storage URL"):
        storage_for(str(tmp_path / "missing"))


def test_save_figures_writes_fixed_ids_and_a_study_note(tmp_path: Path) -> None:
    out, study, sweep = _results(tmp_path)
    trials, histories = pd.read_csv(out / "trials.csv"), pd.read_csv(out / "histories.csv")
    assert save_figures(study, trials, histories, sweep) == list(FIGURE_IDS)
    save_figures(study, trials, histories, sweep)  # a second save replaces, never duplicates
    attrs = study._storage.get_study_system_attrs(study._study_id)
    saved = {k.split(":")[2] for k in attrs if k.startswith("dashboard:plot_data:")}
    assert saved == set(FIGURE_IDS)
    note = study_note(trials, sweep)
    assert "3 COMPLETE" in note and "Epochs run: 13 of 90" in note


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian package chromium)")
def test_dashboard_shows_figures_and_notes_in_a_real_browser(tmp_path: Path) -> None:
    out, study, sweep = _results(tmp_path)
    save_figures(study, pd.read_csv(out / "trials.csv"), pd.read_csv(out / "histories.csv"), sweep)
    server, url = start_in_thread(storage_for(str(out)))
    try:
        api = url.replace("/dashboard/", "/api/studies")
        summaries = json.loads(urllib.request.urlopen(api, timeout=30).read())
        study_id = summaries["study_summaries"][0]["study_id"]
        study_page = _render(f"{url}studies/{study_id}", tmp_path / "study.png")
        trials_page = _render(f"{url}studies/{study_id}/trials", tmp_path / "trials.png")
    finally:
        server.shutdown()
        server.server_close()
    for title in ("Learning curves", "Gap vs validation loss", "Where trials stopped"):
        assert title in study_page, title
    assert "trial 0 train_eval_loss" in study_page  # our curves, drawn by plotly in the page
    assert "why it stopped" in trials_page  # the trial note, rendered from Markdown
    for shot in ("study.png", "trials.png"):
        assert (tmp_path / shot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (tmp_path / shot).stat().st_size > 20_000


def _render(page: str, screenshot: Path) -> str:
    """The page's DOM after its scripts ran, and a screenshot of it."""
    args = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--virtual-time-budget=20000",
        "--window-size=1600,3000",
    ]
    dom = subprocess.run(
        [*args, "--dump-dom", page], capture_output=True, text=True, timeout=180, check=True
    ).stdout
    subprocess.run(
        [*args, f"--screenshot={screenshot}", page], capture_output=True, timeout=180, check=True
    )
    return dom


@pytest.mark.parametrize(("host", "warned"), [("127.0.0.1", False), ("0.0.0.0", True)])
def test_dashboard_command_warns_when_not_on_loopback(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    host: str,
    warned: bool,
) -> None:
    out, _, _ = _results(tmp_path)

    def stop_at_once(self: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("socketserver.BaseServer.serve_forever", stop_at_once)
    assert main(["dashboard", str(out), "--host", host, "--port", "0"]) == 0
    assert "http://127.0.0.1:" in capsys.readouterr().out
    assert any("no login" in r.getMessage() for r in caplog.records) is warned


def test_report_command_rebuilds_report_and_figures(tmp_path: Path) -> None:
    out, study, _ = _results(tmp_path)
    assert main(["report", str(out)]) == 0
    html = (out / "report.html").read_text()
    assert "Learning curves" in html
    assert (out / "figures" / "learning_curves.png").is_file()
    attrs = study._storage.get_study_system_attrs(study._study_id)
    assert any(k.startswith("dashboard:plot_data:ofs-") for k in attrs)
