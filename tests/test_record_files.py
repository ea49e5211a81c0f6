"""Record files that are not regular files (a FIFO, /dev/zero, a directory, a link loop) are
refused in one line by every reader, at once: none blocks, none reads without end."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import run_cli
from mnist_exp.files import reading

TIMEOUT = 30  # a reader that blocks on a FIFO would wait for ever: the test fails instead


@pytest.fixture(scope="module")
def finished(mnist_dir, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    result = run_cli(["train_samples=200", "test_samples=100", "epochs=2", f"hydra.run.dir={run_dir}"],
                     cwd=run_dir.parent)
    assert result.returncode == 0, result.stderr
    return run_dir


def fifo(path: Path) -> None:
    os.mkfifo(path)


def dev_zero(path: Path) -> None:
    path.symlink_to("/dev/zero")


def directory(path: Path) -> None:
    path.mkdir()


def loop(path: Path) -> None:
    path.symlink_to(path.name)


def dangling(path: Path) -> None:
    path.symlink_to("gone")


FAULTS = {"a FIFO": fifo, "a link to /dev/zero": dev_zero, "a directory": directory, "a link loop": loop,
          "a dangling link": dangling}


@pytest.fixture(params=FAULTS.values(), ids=FAULTS.keys())
def fault(request):
    return request.param


def damaged_copy(finished: Path, tmp_path: Path, name: str, fault) -> Path:
    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir, symlinks=True)
    (run_dir / name).unlink()
    fault(run_dir / name)
    return run_dir


def tool(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run_cli(list(args), cwd=cwd, module=module, timeout=TIMEOUT)


@pytest.mark.parametrize("name", ["summary.json", "metrics.csv"])
def test_the_run_list_reports_a_file_that_is_not_one_and_lists_the_run(finished, tmp_path, name, fault):
    run_dir = damaged_copy(finished, tmp_path, name, fault)
    result = tool("mnist_exp.runs", str(run_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    if name == "summary.json":
        assert "unreadable" in result.stdout and "summary.json" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("name", ["summary.json", "weights.npz"])
def test_evaluate_refuses_a_record_file_that_is_not_one_in_one_line(finished, tmp_path, name, fault):
    result = tool("mnist_exp.evaluate", str(damaged_copy(finished, tmp_path, name, fault)), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and name in result.stderr, result.stderr
    assert "interrupted" not in result.stderr  # the file is damaged: the run is not said to be stopped


def test_load_model_refuses_a_checkpoint_that_is_not_a_file(finished, tmp_path, fault):
    run_dir = damaged_copy(finished, tmp_path, "checkpoint.npz", fault)
    (run_dir / "weights.npz").unlink()  # an interrupted run: its checkpoint is what load_model reads
    code = f"from mnist_exp import load_model\nload_model({str(run_dir)!r})"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 1 and "checkpoint.npz" in result.stderr.splitlines()[-1], result.stderr
    assert "UserError" in result.stderr.splitlines()[-1]


@pytest.mark.parametrize("name", ["metrics.csv", "checkpoint.npz", "summary.json"])
def test_resume_refuses_a_record_file_that_is_not_one_in_one_line(finished, tmp_path, name, fault):
    run_dir = damaged_copy(finished, tmp_path, name, fault)
    result = run_cli([f"resume={run_dir}", "epochs=3"], cwd=tmp_path, timeout=TIMEOUT)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and name in result.stderr, result.stderr
    assert len(result.stderr.splitlines()) == 1 and "no run to continue" not in result.stderr, result.stderr


def test_a_sweep_summary_over_a_fifo_is_written_with_a_warning(finished, tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    shutil.copytree(finished, sweep / "0")
    shutil.copytree(finished, sweep / "1")
    (sweep / "1" / "summary.json").unlink()
    os.mkfifo(sweep / "1" / "summary.json")
    os.mkfifo(sweep / "multirun.yaml")
    result = tool("mnist_exp.summarize", str(sweep), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and (sweep / "summary.csv").is_file()


def test_the_reader_refuses_at_once_what_is_not_a_regular_file(tmp_path, fault):
    fault(tmp_path / "summary.json")
    with pytest.raises(OSError):
        reading.read_text(tmp_path / "summary.json")


def test_the_reader_refuses_a_file_larger_than_its_kind_can_be(tmp_path):
    path = tmp_path / "summary.json"
    with open(path, "wb") as f:
        f.truncate(reading.limit(path) + 1)  # sparse: no disk used
    with pytest.raises(reading.UnreadableFile, match="more than"):
        reading.read_text(path)


@pytest.mark.slow
def test_a_fifo_among_hydras_files_holds_up_no_tool(finished, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir)
    (run_dir / ".hydra" / "config.yaml").unlink()
    os.mkfifo(run_dir / ".hydra" / "config.yaml")
    assert tool("mnist_exp.runs", str(run_dir), cwd=tmp_path).returncode == 0
    assert tool("mnist_exp.evaluate", str(run_dir), cwd=tmp_path).returncode == 0
    resumed = run_cli([f"resume={run_dir}", "epochs=3"], cwd=tmp_path, timeout=TIMEOUT)
    assert resumed.returncode == 0, resumed.stderr
