"""Trial folders without a shared filesystem: the sink's writes, and a worker's sync through Ray."""

from __future__ import annotations

from pathlib import Path

import pytest

from overfit_search.orchestration.relay import (
    TOKEN_FILE,
    ResultsSink,
    TrialFolder,
    shares_output,
    start_sink,
    write_token,
)


def test_sink_writes_deletes_and_reads_a_trial_folder(tmp_path: Path) -> None:
    sink = ResultsSink(str(tmp_path))
    assert sink.get("trials/3") == {}
    assert sink.put("trials/3", {"history.csv": b"epoch\n1\n", "trial.log": b"x"}) == 2
    assert (tmp_path / "trials" / "3" / "history.csv").read_bytes() == b"epoch\n1\n"
    sink.put("trials/3", {"trial.log": None})
    assert sink.get("trials/3") == {"history.csv": b"epoch\n1\n"}
    assert not list((tmp_path / "trials" / "3").glob(".*"))  # no half-written file left


@pytest.mark.parametrize("relative", ["../elsewhere", "trials/../../x"])
def test_sink_refuses_a_folder_outside_the_results(tmp_path: Path, relative: str) -> None:
    with pytest.raises(ValueError, match="outside the results folder"):
        ResultsSink(str(tmp_path / "out")).put(relative, {"a": b"1"})


def test_sink_never_writes_a_name_that_climbs_out(tmp_path: Path) -> None:
    ResultsSink(str(tmp_path)).put("trials/1", {"../../escape": b"1"})
    assert (tmp_path / "trials" / "1" / "escape").exists()
    assert not (tmp_path / "escape").exists()


def test_token_tells_a_shared_filesystem(tmp_path: Path) -> None:
    token = write_token(tmp_path)
    assert (tmp_path / TOKEN_FILE).read_text().strip() == token
    assert shares_output(tmp_path, token)
    assert not shares_output(tmp_path, "another sweep's token")
    assert not shares_output(tmp_path / "not-here", token)


@pytest.mark.slow
def test_a_worker_without_the_output_folder_sends_its_files_through_ray(tmp_path: Path) -> None:
    """A real Ray actor on this node; the trial's side given an output path it cannot see,
    as on another machine: its files reach the results folder, deletions too, and a resume
    fetches an earlier trial's folder back."""
    import ray

    out = tmp_path / "out"
    out.mkdir()
    ray.init(address="local", num_cpus=1, include_dashboard=False)
    try:
        token = write_token(out)
        sink = start_sink(out, token)  # a named actor lives while a handle does
        (out / "trials" / "2").mkdir(parents=True)
        (out / "trials" / "2" / "checkpoint.weights.h5").write_bytes(b"earlier weights")
        folder = TrialFolder(tmp_path / "elsewhere" / "out", token, 5, scratch=tmp_path / "s")
        assert not folder.shared
        assert folder.path == tmp_path / "s" / "overfit-search" / token / "trials" / "5"

        earlier = folder.earlier(2)
        assert (earlier / "checkpoint.weights.h5").read_bytes() == b"earlier weights"

        folder.path.mkdir(parents=True)
        (folder.path / "history.csv").write_text("epoch\n1\n")
        (folder.path / "epoch-1.weights.h5").write_bytes(b"w1")
        folder.sync()
        driver = out / "trials" / "5"
        assert (driver / "history.csv").read_text() == "epoch\n1\n"
        assert (driver / "epoch-1.weights.h5").read_bytes() == b"w1"

        (folder.path / "epoch-1.weights.h5").unlink()
        (folder.path / "epoch-2.weights.h5").write_bytes(b"w2")
        (folder.path / "history.csv").write_text("epoch\n1\n2\n")
        folder.sync()
        assert sorted(p.name for p in driver.iterdir()) == ["epoch-2.weights.h5", "history.csv"]
        assert (driver / "history.csv").read_text() == "epoch\n1\n2\n"

        folder.close()
        assert not folder.path.exists()  # the driver has everything: the scratch copy goes
        del sink
    finally:
        ray.shutdown()


def test_a_worker_that_sees_the_output_folder_writes_it_directly(tmp_path: Path) -> None:
    token = write_token(tmp_path)
    folder = TrialFolder(tmp_path, token, 4)
    assert folder.shared and folder.sink is None
    assert folder.path == tmp_path / "trials" / "4"
    assert folder.earlier(1) == tmp_path / "trials" / "1"
    folder.sync()  # nothing to send
    folder.close()
