"""The HTML report's file: what it holds, the sweep's own report.html, bad input (no browser here)."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import run_cli
from report_runs import make_run, make_sweep


@pytest.fixture(scope="module")
def runs(mnist_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    return make_sweep(root), make_run(root)


def report_data(path: Path) -> dict:
    text = path.read_text()
    return json.loads(re.search(r'<script id="report-data" type="application/json">(.*?)</script>', text, re.S).group(1))


@pytest.mark.slow
def test_every_sweep_writes_its_report_beside_comparison_png(runs):
    sweep, _ = runs
    data = report_data(sweep / "report.html")
    assert (sweep / "comparison.png").is_file()
    assert sorted(r["dir"] for r in data["runs"]) == sorted(str((sweep / str(j)).resolve()) for j in range(4))
    assert data["keys"] == ["lr", "hidden_size"]
    assert len(data["sweeps"]) == 1 and data["sweeps"][0]["keys"] == ["lr", "hidden_size"]
    assert len(data["sweeps"][0]["figures"]) == 3  # objective against each key, heatmap, parallel coordinates


def test_the_report_is_one_file_with_plotly_inlined_once_and_nothing_fetched(runs, tmp_path):
    result = run_cli([*map(str, runs), "--out", str(tmp_path / "r.html")], cwd=tmp_path, module="mnist_exp.report")
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout and "(5 runs)" in result.stdout
    text = (tmp_path / "r.html").read_text()
    assert text.count("plotly.js v") >= 1 and text.count("<script>") == 2  # plotly's, then the page's
    assert not re.search(r'<(script|link|img)[^>]+(src|href)="(https?:)?//', text)
    data = report_data(tmp_path / "r.html")
    single = next(r for r in data["runs"] if r["name"] == "single")
    assert single["tags"] == "baseline,tiny" and single["images"]["confusion"].startswith("data:image/png;base64,")
    assert "# Model card" in single["model_card"] and "metrics.csv" in single["files"]
    assert "hidden_size" in data["keys"] and "channels" not in data["keys"] and "data.dir" not in data["keys"]


def test_damaged_and_running_runs_are_listed_with_their_status(runs, tmp_path):
    sweep, single = runs
    shutil.copytree(single, tmp_path / "damaged")
    (tmp_path / "damaged" / "summary.json").write_text("{not json")
    shutil.copytree(single, tmp_path / "cut")
    (tmp_path / "cut" / "metrics.csv").write_bytes(b"\x00\xff garbage")
    result = run_cli([str(tmp_path / "damaged"), str(tmp_path / "cut"), str(single), "--out", str(tmp_path / "r.html")],
                     cwd=tmp_path, module="mnist_exp.report")
    assert result.returncode == 0, result.stderr
    data = report_data(tmp_path / "r.html")
    statuses = {Path(r["dir"]).name: r["status"] for r in data["runs"]}
    assert statuses == {"damaged": "unreadable", "cut": "completed", "single": "completed"}
    assert data["keys"] == []  # a run whose config cannot be read does not make every key 'vary'
    assert sorted(data["history"]) == [str(i) for i, r in enumerate(data["runs"]) if Path(r["dir"]).name != "cut"]  # its curve only


def test_the_default_out_is_report_html_here_and_a_directory_takes_it_inside(runs, tmp_path):
    _, single = runs
    assert run_cli([str(single)], cwd=tmp_path, module="mnist_exp.report").returncode == 0
    (tmp_path / "into").mkdir()
    assert run_cli([str(single), "--out", "into"], cwd=tmp_path, module="mnist_exp.report").returncode == 0
    assert (tmp_path / "report.html").is_file() and (tmp_path / "into" / "report.html").is_file()


@pytest.mark.parametrize("args, message", [(["missing"], "missing: no such run"),
                                           (["."], None),
                                           ([".", "--out", "nowhere/r.html"], "--out nowhere/r.html: the directory")])
def test_bad_paths_are_one_line_and_exit_2(tmp_path, args, message):
    result = run_cli(args, cwd=tmp_path, module="mnist_exp.report")
    if message is None:  # an empty folder: an empty report, said so
        assert result.returncode == 0 and "no runs under ." in result.stderr
        return
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


@pytest.mark.slow
def test_without_plotly_the_report_says_which_extra_and_the_sweep_summary_stands(runs, tmp_path):
    sweep, _ = runs
    copy = tmp_path / "sweep"
    shutil.copytree(sweep, copy)
    (copy / "report.html").unlink()
    blocker = tmp_path / "noplotly"
    blocker.mkdir()
    (blocker / "plotly.py").write_text("raise ImportError('no plotly here')\n")
    env = {"PYTHONPATH": str(blocker)}
    report = run_cli([str(copy)], cwd=tmp_path, env=env, module="mnist_exp.report")
    assert report.returncode == 2 and report.stderr.strip().splitlines() == [
        "python -m mnist_exp.report: error: this needs the 'report' extra, which is not installed: "
        "pip install -e '.[report]' in a checkout, or pip install 'mnist_exp[report]'"]
    summary = run_cli([str(copy)], cwd=tmp_path, env=env, module="mnist_exp.summarize")
    assert summary.returncode == 0, summary.stderr
    assert "report.html not written (this needs the 'report' extra" in summary.stderr
    assert len(summary.stderr.strip().splitlines()) == 1
    assert (copy / "summary.csv").is_file() and (copy / "comparison.png").is_file() and not (copy / "report.html").exists()


@pytest.mark.slow
def test_an_optuna_search_report_has_its_history_and_importances(mnist_dir, tmp_path):
    result = run_cli(["-m", "+search=optuna", "hydra.sweeper.n_trials=3", "train_samples=100", "test_samples=100",
                      "epochs=2", f"hydra.sweep.dir={tmp_path / 'opt'}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (view,) = report_data(tmp_path / "opt" / "report.html")["sweeps"]
    assert view["search"] and view["keys"] == ["lr", "hidden_size"]
    titles = [json.loads(f)["layout"]["title"]["text"] for f in view["figures"]]
    assert titles[:2] == ["optimisation history", "parameter importances (rank correlation)"]
    against = json.loads(view["figures"][2])
    assert against["layout"]["xaxis"]["type"] == "log"  # lr


def test_a_report_that_cannot_be_written_is_one_line_exit_4(runs, tmp_path):
    _, single = runs
    (tmp_path / "into" / "report.html").mkdir(parents=True)  # where the file goes, something it cannot replace
    result = run_cli([str(single), "--out", "into"], cwd=tmp_path, module="mnist_exp.report")
    assert result.returncode == 4 and result.stderr.startswith("python -m mnist_exp.report: error: cannot write into")
    assert len(result.stderr.strip().splitlines()) == 1 and (tmp_path / "into" / "report.html").is_dir()
