"""A grid sweep chooses its best job the way a search does: by validation accuracy where the
jobs have a validation split, by test accuracy (and saying so) only where they have none."""

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from helpers import run_cli

TINY = ["train_samples=200", "test_samples=100", "epochs=2", "lr=0.002,0.01", "hidden_size=8,32"]


def grid(tmp_path: Path, *args: str):
    result = run_cli(["-m", *TINY, *args, f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return result, tmp_path / "sweep"


def report_sweep(sweep_dir: Path) -> dict:
    text = (sweep_dir / "report.html").read_text()
    data = json.loads(re.search(r'<script id="report-data" type="application/json">(.*?)</script>', text, re.S).group(1))
    return data["sweeps"][0]


@pytest.fixture(scope="module")
def with_validation(mnist_dir, tmp_path_factory):
    return grid(tmp_path_factory.mktemp("val"), "val_samples=100")


@pytest.mark.slow
def test_a_grid_with_a_validation_split_is_judged_by_validation_accuracy(with_validation):
    result, sweep_dir = with_validation
    table = pd.read_csv(sweep_dir / "summary.csv")
    assert (table["objective_metric"] == "final_val_accuracy").all()
    assert table["objective"].tolist() == table["final_val_accuracy"].tolist()
    best = table.loc[table["objective"].idxmax()]
    line = re.search(r"best by validation accuracy: job (\d+) \(([^)]*)\): val ([\d.]+), test ([\d.]+)", result.stdout)
    assert line, result.stdout
    assert int(line.group(1)) == best["job"]
    assert float(line.group(3)) == pytest.approx(best["final_val_accuracy"], abs=1e-4)
    assert float(line.group(4)) == pytest.approx(best["final_test_accuracy"], abs=1e-4)
    assert f"lr={best['lr']:g}" in line.group(2) and f"hidden_size={best['hidden_size']}" in line.group(2)


@pytest.mark.slow
def test_the_report_and_summarize_use_the_same_objective(with_validation):
    result, sweep_dir = with_validation
    view = report_sweep(sweep_dir)
    assert view["objective"] == "final_val_accuracy"
    assert "val accuracy" in view["figures"][0] and "final test accuracy" not in view["figures"][0]
    again = run_cli([str(sweep_dir)], cwd=sweep_dir, module="mnist_exp.summarize")
    assert again.returncode == 0, again.stderr
    assert "best by validation accuracy: job" in again.stdout


@pytest.mark.slow
def test_a_grid_without_validation_says_it_chose_by_test_accuracy(mnist_dir, tmp_path):
    result, sweep_dir = grid(tmp_path)
    table = pd.read_csv(sweep_dir / "summary.csv")
    assert (table["objective_metric"] == "final_test_accuracy").all()
    assert "best by test accuracy (no validation split): job" in result.stdout
    assert report_sweep(sweep_dir)["objective"] == "final_test_accuracy"


@pytest.mark.slow
def test_failed_jobs_have_no_objective_and_are_never_best(mnist_dir, tmp_path):
    result = run_cli(["-m", "train_samples=200", "test_samples=100", "val_samples=100", "epochs=2",
                      "lr=0.005,1e6", f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=tmp_path)
    assert result.returncode == 1  # the diverged job fails the sweep
    table = pd.read_csv(tmp_path / "sweep" / "summary.csv").set_index("job")
    assert table.loc[1, "status"] == "diverged" and pd.isna(table.loc[1, "objective"])
    assert "best by validation accuracy: job 0 " in result.stdout
