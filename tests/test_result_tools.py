"""The result tools read every run they can: one damaged job is a warning, not a failure."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pandas as pd
import pytest

from helpers import run_cli
from mnist_exp.analysis import results

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sweep(mnist_dir, tmp_path_factory) -> Path:
    sweep_dir = tmp_path_factory.mktemp("sweep") / "s"
    result = run_cli(["-m", "lr=0.005,0.01", "seed=1,2", "train_samples=200", "test_samples=100", "epochs=2",
                      f"hydra.sweep.dir={sweep_dir}"], cwd=sweep_dir.parent)
    assert result.returncode == 0, result.stderr
    return sweep_dir


DAMAGE = {
    "summary not JSON": lambda d: (d / "summary.json").write_text("{not json"),
    "summary empty": lambda d: (d / "summary.json").write_text(""),
    "summary a list": lambda d: (d / "summary.json").write_text("[1, 2]"),
    "config of wrong types": lambda d: (d / "summary.json").write_text(json.dumps(
        {**json.loads((d / "summary.json").read_text()), "config": {"lr": "fast", "hidden_size": [1], "seed": 2**70}})),
    "huge seed": lambda d: (d / "summary.json").write_text(json.dumps(
        {**json.loads((d / "summary.json").read_text()),
         "config": {**json.loads((d / "summary.json").read_text())["config"], "seed": 10**40}})),
    "metrics binary": lambda d: (d / "metrics.csv").write_bytes(bytes(range(256)) * 10),
    "metrics empty": lambda d: (d / "metrics.csv").write_text(""),
    "metrics huge field": lambda d: (d / "metrics.csv").write_text(
        (d / "metrics.csv").read_text() + "3," + "9" * 200_000 + ",x,1,2,3\n"),
}


@pytest.fixture(params=DAMAGE)
def damaged(request, sweep, tmp_path) -> Path:
    copy = tmp_path / "s"
    shutil.copytree(sweep, copy)
    DAMAGE[request.param](copy / "1")
    return copy


def test_load_runs_and_load_history_read_the_rest_of_a_damaged_sweep(damaged):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = results.load_runs(damaged)
        history = results.load_history(damaged)
    assert len(runs) == 4 and str(runs["seed"].dtype) in ("int64", "Int64")
    assert (runs["status"] == "completed").sum() >= 3
    if runs.loc[runs["run_dir"] == str((damaged / "1").resolve()), "status"].item() == "unreadable":
        assert "summary.json cannot be read" in runs["reason"].dropna().iloc[0]
    assert set(history["run_dir"]) >= {str((damaged / j).resolve()) for j in ("0", "2", "3")}
    assert len(history[history["run_dir"] == str((damaged / "0").resolve())]) == 2


@pytest.mark.slow
def test_summarize_and_compare_runs_read_the_rest_of_a_damaged_sweep(damaged, tmp_path):
    summarize = run_cli([str(damaged)], cwd=tmp_path, module="mnist_exp.summarize")
    assert summarize.returncode == 0, summarize.stderr
    assert "Traceback" not in summarize.stderr
    assert len(pd.read_csv(damaged / "summary.csv")) == 4
    compare = subprocess.run([sys.executable, str(REPO / "scripts" / "compare_runs.py"), str(damaged),
                              "--out", str(tmp_path / "c.png")], capture_output=True, text=True, cwd=tmp_path)
    assert compare.returncode == 0, compare.stderr
    assert "Traceback" not in compare.stderr and (tmp_path / "c.png").stat().st_size > 1000


@pytest.mark.parametrize("args, code, message", [
    (["--metric", "status"], 2, "--metric status is not a metric column"),
    (["--out", "missing/dir/x.png"], 2, "does not exist"),
    (["--out", "x.unknownext"], 2, "matplotlib cannot write .unknownext files"),
])
def test_compare_runs_refuses_bad_arguments_in_one_line(args, code, message, sweep, tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "compare_runs.py"), str(sweep), *args],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == code and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_compare_runs_writes_into_a_directory_and_says_where(sweep, tmp_path):
    out_dir = tmp_path / "figures"
    out_dir.mkdir()
    for out, written in ((out_dir, out_dir / "compare_runs.png"), (tmp_path / "ranked", tmp_path / "ranked.png")):
        result = subprocess.run([sys.executable, str(REPO / "scripts" / "compare_runs.py"), str(sweep),
                                 "--out", str(out)], capture_output=True, text=True, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert f"wrote {written}" in result.stdout and written.stat().st_size > 1000


@pytest.mark.slow
def test_the_run_list_shows_what_differs_newest_first(sweep, tmp_path):
    result = run_cli([str(sweep)], cwd=tmp_path, module="mnist_exp.runs")
    assert result.returncode == 0, result.stderr
    header, *lines = result.stdout.strip().splitlines()
    assert header.split()[:3] == ["when", "name", "status"]
    assert "lr" in header.split() and "seed" in header.split() and "hidden_size" not in header.split()
    assert len(lines) == 4 and all("completed" in line for line in lines)
    when = [" ".join(line.split()[:2]) for line in lines]
    assert when == sorted(when, reverse=True)
    ranked = run_cli([str(sweep), "--sort", "test_acc"], cwd=tmp_path, module="mnist_exp.runs")
    accuracies = [float(line.split()[header.split().index("test_acc") + 1]) for line in ranked.stdout.splitlines()[1:]]
    assert accuracies == sorted(accuracies, reverse=True)
    none = run_cli([str(sweep), "--status", "failed"], cwd=tmp_path, module="mnist_exp.runs")
    assert none.returncode == 0 and "no runs under" in none.stdout
    bad = run_cli([str(sweep), "--sort", "nope"], cwd=tmp_path, module="mnist_exp.runs")
    assert bad.returncode == 2 and "--sort nope: not a column" in bad.stderr


def tool_into_a_closed_pipe(args, cwd) -> subprocess.CompletedProcess:
    """A result tool whose stdout reader has gone (`runs | head` once head has its lines)."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run([sys.executable, *args], cwd=cwd, stdout=write, stderr=subprocess.PIPE, text=True,
                              timeout=120)
    finally:
        os.close(write)


@pytest.mark.slow
@pytest.mark.parametrize("tool", ["-m mnist_exp.runs", "-m mnist_exp.summarize", "-m mnist_exp.evaluate",
                                  "scripts/compare_runs.py"])
def test_a_result_tool_whose_reader_went_away_exits_quietly(tool, sweep, tmp_path):
    copy = tmp_path / "s"
    shutil.copytree(sweep, copy)
    target = copy / "0" if "evaluate" in tool else copy
    args = [*tool.split(), str(target)] + (["--out", str(tmp_path)] if "compare" in tool else [])
    result = tool_into_a_closed_pipe([str(REPO / a) if a.endswith(".py") else a for a in args], tmp_path)
    assert (result.returncode, result.stderr) == (141, "")


def unprivileged() -> list:
    """A command prefix under which root, too, is refused what its permissions refuse."""
    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: no way to be refused a read")
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}"]


def run_list_unprivileged(path: Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*unprivileged(), sys.executable, "-m", "mnist_exp.runs", str(path)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_the_run_list_of_an_unreadable_directory_is_one_line(sweep, tmp_path):
    copy = tmp_path / "s"
    shutil.copytree(sweep, copy)
    copy.chmod(0)
    try:
        result = run_list_unprivileged(copy, tmp_path)
    finally:
        copy.chmod(0o755)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"python -m mnist_exp.runs: error: {copy}: cannot be read (Permission denied)"]


def test_the_run_list_names_the_unreadable_folder_it_skips(sweep, tmp_path):
    copy = tmp_path / "s"
    shutil.copytree(sweep, copy)
    (copy / "1").chmod(0)
    try:
        result = run_list_unprivileged(copy, tmp_path)
    finally:
        (copy / "1").chmod(0o755)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [f"python -m mnist_exp.runs: warning: {copy / '1'}: skipped, it cannot be "
                                          "read (Permission denied)"]
    assert len(result.stdout.splitlines()) == 1 + 3  # the header and the three readable runs


def test_a_path_through_a_file_is_one_line(sweep, tmp_path):
    result = run_cli([str(sweep / "0" / "summary.json" / "x")], cwd=tmp_path, module="mnist_exp.runs")
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def catches_sigint(pid: int, timeout: float = 30.0) -> None:
    """Wait until the process has a SIGINT handler (Python installs it as it starts): the
    SigCgt mask of /proc/PID/status, where bit 1 is SIGINT."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            return  # it has already ended: its exit code tells
        caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
        if caught & (1 << (signal.SIGINT - 1)):
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} took no SIGINT handler in {timeout} s")


@pytest.mark.parametrize("delay", [0.3, 1.0, 2.0])
def test_ctrl_c_in_evaluate_is_one_line_and_exit_130(sweep, tmp_path, delay):
    """Wherever the signal lands (the imports, reading the data, scoring), one line and 130."""
    process = subprocess.Popen([sys.executable, "-m", "mnist_exp.evaluate", str(sweep / "0"), "--test-samples",
                                "10000"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    catches_sigint(process.pid)  # a signal before the interpreter takes it kills any program
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    if process.returncode in (0, -signal.SIGINT):  # it had finished: the whole result was printed
        assert "test_accuracy=" in out and "per class: " in out, (process.returncode, out, err)  # -2: as
        # Python exits it restores SIGINT's default, and a shell reports the death by SIGINT as 130
    else:
        assert (process.returncode, err) == (130, "mnist_exp.evaluate: interrupted\n")
