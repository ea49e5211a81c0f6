"""The result tools read every run they can: one damaged job is a warning, not a failure."""

import json
import shutil
import subprocess
import sys
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


def test_compare_runs_writes_into_a_directory_and_says_where(sweep, tmp_path):
    out_dir = tmp_path / "figures"
    out_dir.mkdir()
    for out, written in ((out_dir, out_dir / "compare_runs.png"), (tmp_path / "ranked", tmp_path / "ranked.png")):
        result = subprocess.run([sys.executable, str(REPO / "scripts" / "compare_runs.py"), str(sweep),
                                 "--out", str(out)], capture_output=True, text=True, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert f"wrote {written}" in result.stdout and written.stat().st_size > 1000


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
