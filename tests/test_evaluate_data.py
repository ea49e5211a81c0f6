"""`evaluate` reads the data where this user keeps it (--data-dir, MNIST_EXP_DATA_DIR), never
where a record (moved, or someone else's) says: it creates no directory the record names and
downloads from the record's mirrors only with --download; the record's checksums still decide."""

import gzip
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from helpers import run_cli
from mnist_exp import load_model
from mnist_exp.analysis.evaluate import evaluate_run
from test_record_files import finished  # noqa: F401 (a fixture: a small finished run)


@pytest.fixture
def foreign(finished, tmp_path, server) -> Path:
    """The run as someone else recorded it: their data dir (missing here) and their mirror."""
    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["config"]["data"].update(dir=str(tmp_path / "theirs" / "data"), mirrors=[server.url])
    summary["data"]["dir"] = str(tmp_path / "theirs" / "data")
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


def evaluate(run_dir: Path, *args: str, env_dir: str = "", cwd: Path) -> subprocess.CompletedProcess:
    return run_cli([str(run_dir), *args], cwd=cwd, module="mnist_exp.evaluate", env={"MNIST_EXP_DATA_DIR": env_dir},
                   timeout=120)


@pytest.mark.slow
def test_evaluate_reads_mnist_exp_data_dir_not_the_records(foreign, mnist_dir, server, tmp_path):
    result = evaluate(foreign, env_dir=str(mnist_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "test_accuracy=" in result.stdout
    assert not (tmp_path / "theirs").exists() and server.requests == []
    assert load_model(foreign).predict(np.zeros((1, 784))).shape == (1,)  # reads no data: makes no folder
    assert not (tmp_path / "theirs").exists()


def test_evaluate_reads_the_data_dir_option_first(foreign, mnist_dir, server, tmp_path):
    result = evaluate(foreign, "--data-dir", str(mnist_dir), env_dir=str(tmp_path / "nowhere"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "theirs").exists() and not (tmp_path / "nowhere").exists() and server.requests == []
    assert evaluate_run(foreign, data_dir=mnist_dir)["test_samples"] == 100  # the same from Python


def test_evaluate_without_the_data_is_one_line_and_downloads_nothing(foreign, server, tmp_path):
    result = evaluate(foreign, cwd=tmp_path)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and "--data-dir" in result.stderr and "--download" in result.stderr
    assert not (tmp_path / "theirs").exists() and server.requests == []


def test_a_missing_data_dir_is_refused_not_made(foreign, server, tmp_path):
    result = evaluate(foreign, "--data-dir", str(tmp_path / "typo"), cwd=tmp_path)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert "typo" in result.stderr and not (tmp_path / "typo").exists() and server.requests == []


@pytest.mark.slow
def test_download_fetches_from_the_records_mirrors_into_this_users_cache(foreign, mnist_dir, server, tmp_path):
    for path in mnist_dir.glob("*.gz"):
        server.serve("", path.name, path.read_bytes())
    cache = tmp_path / "cache"
    result = run_cli([str(foreign), "--download"], cwd=tmp_path, module="mnist_exp.evaluate",
                     env={"MNIST_EXP_DATA_DIR": "", "XDG_CACHE_HOME": str(cache)}, timeout=120)
    assert result.returncode == 0, result.stderr
    assert len(server.requests) == 4 and not (tmp_path / "theirs").exists()
    assert len(list((cache / "mnist_exp" / "mnist").glob("*.gz"))) == 4


@pytest.mark.slow
def test_other_data_than_the_runs_is_refused_in_one_line(foreign, mnist_dir, server, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(mnist_dir, other)
    labels = other / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(labels.read_bytes()))
    raw[-1] = (raw[-1] + 1) % 10  # one label changed: another data set, as far as the run knows
    labels.chmod(0o644)
    labels.write_bytes(gzip.compress(bytes(raw)))
    result = evaluate(foreign, "--data-dir", str(other), cwd=tmp_path)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert "t10k-labels-idx1-ubyte" in result.stderr and "MD5" in result.stderr and server.requests == []
