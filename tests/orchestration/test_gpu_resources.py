"""gpus_per_trial reaches Ray: two 0.5-GPU trials packed on one (fake) GPU of a CPU-only Ray."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from overfit_search.cli import main
from tests.conftest import digits_sweep

pytestmark = pytest.mark.slow


def test_fractional_gpus_are_asked_of_ray_and_packed(tmp_path: Path) -> None:
    import ray

    # Ray on this CPU-only machine, declaring one GPU: the scheduling is real, the GPU is not.
    ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False)
    try:
        doc = digits_sweep(
            "gpu",
            train={"max_epochs": 2},
            study={"trials": 2, "n_startup_trials": 2},
            resources={"cpus_per_trial": 1, "gpus_per_trial": 0.5, "max_concurrent": None},
        )
        (tmp_path / "gpu.yaml").write_text(yaml.safe_dump(doc))
        rc = main(["run", str(tmp_path / "gpu.yaml"), "--output", str(tmp_path / "out"),
                   "--no-progress"])  # fmt: skip
        assert rc == 0
    finally:
        ray.shutdown()
    for number in (0, 1):
        log = (tmp_path / "out" / "trials" / str(number) / "trial.log").read_text()
        ids = re.search(r"ray resources: .*GPU ids \[(.*?)\]", log)
        assert ids is not None, log
        assert ids.group(1).strip("'\" ") == "0"  # both trials on the one GPU, half each
        assert "CUDA_VISIBLE_DEVICES '0'" in log
