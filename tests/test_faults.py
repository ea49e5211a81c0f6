"""Faults a user, a mirror or the machine can cause: each ends in a clear one-line error or a
successful retry, and never costs finished work."""

import gzip
import json
import os
import signal
import subprocess
from functools import lru_cache
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from helpers import data_config, run_cli, start
from mnist_exp.data import idx
from mnist_exp.data.datasets import load_dataset
from mnist_exp.errors import DataError, UserError
from mnist_exp.analysis.evaluate import evaluate_run

SHORT = ["train_samples=300", "test_samples=100"]


def _gz(raw: bytes) -> bytes:
    return gzip.compress(raw, compresslevel=1)


@lru_cache(maxsize=1)
def _bomb() -> bytes:
    """A small gzip that decompresses to more than any MNIST file may be."""
    return _gz(bytes(idx.MAX_BYTES + 1))


# name -> (what the cache holds for the train images, what the first mirror serves, how)
CACHE_FAULTS = {
    "truncated gzip": lambda raw: _gz(raw)[: len(_gz(raw)) // 2],
    "wrong IDX magic": lambda raw: _gz(b"\x00\x00\x08\x01" + raw[4:]),
    "wrong size": lambda raw: _gz(raw[:-10]),
    "checksum mismatch": lambda raw: _gz(raw[:100] + bytes([raw[100] ^ 1]) + raw[101:]),
    "HTML error page": lambda raw: b"<html><body>503 Service Unavailable</body></html>",
    "empty file": lambda raw: b"",
}
MIRROR_FAULTS = {
    "HTML error page": ("ok", lambda raw: b"<!DOCTYPE html><html>Not here</html>"),
    "HTTP 404": (404, None),
    "HTTP 500": (500, None),
    "stall": ("stall", None),
    "connection dropped mid-file": ("truncate", None),
    "checksum mismatch": ("ok", lambda raw: _gz(raw[:-1] + b"\x01")),
    "gzip bomb": ("ok", lambda raw: _bomb()),
}


@pytest.mark.parametrize("fault", CACHE_FAULTS)
def test_bad_cached_file_is_replaced_by_a_fresh_download(fault, tmp_path, tiny_files, server):
    name, raw = tiny_files["train_images"]
    for other, other_raw in tiny_files.values():
        (tmp_path / f"{other}.gz").write_bytes(_gz(other_raw))
    (tmp_path / f"{name}.gz").write_bytes(CACHE_FAULTS[fault](raw))
    server.serve_dataset("", tiny_files)
    dataset = load_dataset(data_config(tiny_files, tmp_path, [server.url]))
    assert server.requests == [f"/{name}.gz"]
    assert idx.md5(idx.read_bytes(tmp_path / f"{name}.gz")) == idx.md5(raw)
    assert dataset.train_images.shape == (50, 784)


def serve_faulty(server, prefix: str, files: dict, fault: str) -> None:
    behaviour, body = MIRROR_FAULTS[fault]
    server.httpd.stall_seconds = 1.0
    for name, raw in files.values():
        server.serve(prefix, f"{name}.gz", body(raw) if body else _gz(raw), behaviour)


@pytest.mark.slow
@pytest.mark.parametrize("fault", MIRROR_FAULTS)
def test_faulty_mirror_falls_back_to_the_next(fault, tmp_path, tiny_files, server):
    serve_faulty(server, "bad/", tiny_files, fault)
    server.serve_dataset("good/", tiny_files)
    cfg = data_config(tiny_files, tmp_path / "cache", [server.url + "bad/", server.url + "good/"],
                      timeout=0.3, retries=2)
    dataset = load_dataset(cfg)
    assert dataset.test_labels.shape == (20,)
    assert sum(r.startswith("/good/") for r in server.requests) == 4
    assert sorted(p.name for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")) == \
        sorted(f"{name}.gz" for name, _ in tiny_files.values())  # no temp files left


@pytest.mark.parametrize("fault", MIRROR_FAULTS)
def test_faulty_only_mirror_gives_one_line_naming_the_file(fault, tmp_path, tiny_files, server):
    serve_faulty(server, "", tiny_files, fault)
    with pytest.raises(DataError) as info:
        load_dataset(data_config(tiny_files, tmp_path, [server.url], timeout=0.3, retries=1))
    message = str(info.value)
    assert message.startswith(f"{tiny_files['train_images'][0]}: not in {tmp_path}")
    assert "\n" not in message and f"{server.url}{tiny_files['train_images'][0]}.gz" in message


def test_unwritable_cache_is_a_clear_error_and_a_valid_one_needs_no_writes(tmp_path, tiny_files, server):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DataError, match="cannot write to the data cache"):
        load_dataset(data_config(tiny_files, blocker / "cache", [server.url]))
    ro = tmp_path / "ro"
    ro.mkdir()
    for name, raw in tiny_files.values():
        (ro / f"{name}.gz").write_bytes(_gz(raw))
    ro.chmod(0o555)
    try:
        load_dataset(data_config(tiny_files, ro, [server.url]))  # reads only: no lock file, no request
        assert server.requests == [] and sorted(os.listdir(ro)) == sorted(f"{n}.gz" for n, _ in tiny_files.values())
    finally:
        ro.chmod(0o755)


@pytest.mark.slow
def test_weights_with_pickled_objects_are_refused(tmp_path, mnist_dir):
    run_dir = tmp_path / "run"
    assert run_cli([*SHORT, "epochs=1", f"hydra.run.dir={run_dir}"], cwd=tmp_path).returncode == 0
    np.savez(run_dir / "weights.npz", w1=np.array([object()], dtype=object), w2=np.zeros(1))
    with pytest.raises(UserError, match=r"weights.npz: array 'w1' holds Python objects \(dtype object\): refused"):
        evaluate_run(run_dir)


def test_corrupt_cache_and_no_mirror_through_the_cli_is_one_line(tmp_path, tiny_files, closed_port_url):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "train-images-idx3-ubyte.gz").write_bytes(b"<html>oops</html>")
    result = run_cli([f"data.dir={cache}", f"data.mirrors=[{closed_port_url}]", "data.retries=1",
                      f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "train-images-idx3-ubyte: the cached copy is bad" in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert (cache / "train-images-idx3-ubyte.gz").read_bytes() == b"<html>oops</html>"  # not made worse


@pytest.mark.slow
def test_four_parallel_jobs_on_a_cold_cache_download_each_file_once(mnist_dir, tmp_path, server):
    for path in mnist_dir.glob("*.gz"):
        server.serve("", path.name, path.read_bytes())
    cache = tmp_path / "cold-cache"
    result = run_cli(["-m", "seed=1,2,3,4", *SHORT, "epochs=1", f"data.dir={cache}", f"data.mirrors=[{server.url}]",
                      "hydra/launcher=joblib", "hydra.launcher.n_jobs=4", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(server.requests) == sorted(f"/{p.name}" for p in mnist_dir.glob("*.gz"))
    assert (pd.read_csv(tmp_path / "sweep" / "summary.csv")["status"] == "completed").all()


@pytest.mark.slow
def test_a_directory_holding_a_run_is_never_written_into(mnist_dir, tmp_path):
    run_dir = tmp_path / "run"
    assert run_cli([*SHORT, "epochs=1", f"hydra.run.dir={run_dir}"], cwd=tmp_path).returncode == 0
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    again = run_cli([*SHORT, "epochs=2", f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert again.returncode == 2 and "already holds a run" in again.stderr
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before


def metric_columns(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "metrics.csv").drop(columns="seconds")


@pytest.fixture(scope="module")
def uninterrupted(mnist_dir, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("whole") / "run"
    assert run_cli([*SHORT, "epochs=6", f"hydra.run.dir={run_dir}"], cwd=run_dir.parent).returncode == 0
    return metric_columns(run_dir)


@pytest.mark.slow
def test_resume_gives_exactly_the_uninterrupted_metrics(uninterrupted, tmp_path):
    run_dir = tmp_path / "run"
    assert run_cli([*SHORT, "epochs=3", f"hydra.run.dir={run_dir}"], cwd=tmp_path).returncode == 0
    extension = tmp_path / "resume"  # a completed run's extension is a new run
    result = run_cli([f"resume={run_dir}", "epochs=6", f"hydra.run.dir={extension}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    pd.testing.assert_frame_equal(metric_columns(extension), uninterrupted)
    summary = json.loads((extension / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_run"] == 6
    assert summary["resumed"][0]["after_epochs"] == 3


@pytest.mark.slow
def test_resume_refuses_a_changed_setting(uninterrupted, tmp_path):
    run_dir = tmp_path / "run"
    assert run_cli([*SHORT, "epochs=1", f"hydra.run.dir={run_dir}"], cwd=tmp_path).returncode == 0
    result = run_cli([f"resume={run_dir}", "lr=0.1", "epochs=2"], cwd=tmp_path)
    assert result.returncode == 2 and "only epochs may change when resuming, not lr" in result.stderr
    missing = run_cli([f"resume={tmp_path / 'nothing'}"], cwd=tmp_path)
    assert missing.returncode == 2 and "no summary.json there" in missing.stderr


def start_and_stop(args, cwd: Path, sig: int, after_epoch: int) -> subprocess.Popen:
    """Start a run, wait for its epoch `after_epoch` line, then send `sig`."""
    proc = start(args, cwd)
    for line in proc.stdout:
        if line.startswith(f"epoch {after_epoch}/"):
            proc.send_signal(sig)
            break
    proc.stdout.read()
    proc.wait(timeout=60)
    return proc


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_marks_the_run_interrupted_and_resume_completes_it(sig, code, uninterrupted, tmp_path):
    run_dir = tmp_path / "run"
    proc = start_and_stop([*SHORT, "epochs=6", f"hydra.run.dir={run_dir}"], tmp_path, sig, after_epoch=1)
    assert proc.returncode == code
    stderr = proc.stderr.read()
    assert f"interrupted by {signal.Signals(sig).name}" in stderr and "Traceback" not in stderr
    assert f"resume={run_dir}" in stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    done = metric_columns(run_dir)
    assert 2 <= len(done) < 6 and done["epoch"].tolist() == list(range(len(done)))
    assert matplotlib.image.imread(run_dir / "curves.png").shape[2] in (3, 4)  # drawn as it stopped
    assert run_cli([f"resume={run_dir}"], cwd=tmp_path).returncode == 0
    pd.testing.assert_frame_equal(metric_columns(run_dir), uninterrupted)


def test_after_sigkill_the_csv_holds_every_finished_epoch_and_resume_completes_it(uninterrupted, tmp_path):
    run_dir = tmp_path / "run"
    start_and_stop([*SHORT, "epochs=6", f"hydra.run.dir={run_dir}"], tmp_path, signal.SIGKILL, after_epoch=2)
    done = metric_columns(run_dir)
    assert len(done) >= 3 and not done.isna().any().any()
    pd.testing.assert_frame_equal(done, uninterrupted.iloc[: len(done)])
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "running"
    assert run_cli([f"resume={run_dir}"], cwd=tmp_path).returncode == 0
    pd.testing.assert_frame_equal(metric_columns(run_dir), uninterrupted)
