"""Sweep figures over keys of every type: a grid or an Optuna search over a text (arch,
optimizer), bool or int key draws its comparison.png; `summarize` never fails over a figure."""

from pathlib import Path

import pytest

from helpers import run_cli

TINY = ["train_samples=60", "test_samples=40", "epochs=2"]
GRIDS = {
    "text and float": ["optimizer=sgd,adam", "lr=0.005,0.02"],
    "bool and float": ["batch_norm=true,false", "lr=0.005,0.02", "batch_size=10"],
    "int and bool": ["hidden_size=8,16", "biases=true,false"],
    "arch and float": ["arch=mlp,cnn", "lr=0.005,0.02"],
    "search over arch": ["+search=optuna", "hydra.sweeper.n_trials=3", "~hydra.sweeper.params.hidden_size",
                         "+hydra.sweeper.params.arch='choice(mlp,cnn)'"],
}


def sweep(tmp_path: Path, *args: str):
    result = run_cli(["-m", *args, *TINY, f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=tmp_path)
    return result, tmp_path / "sweep"


@pytest.mark.slow
@pytest.mark.parametrize("grid", GRIDS.values(), ids=GRIDS.keys())
def test_a_sweep_over_keys_of_any_type_draws_its_comparison(grid, mnist_dir, tmp_path):
    result, sweep_dir = sweep(tmp_path, *grid)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "not drawn" not in result.stderr, result.stderr
    assert (sweep_dir / "comparison.png").read_bytes().startswith(b"\x89PNG")
    (sweep_dir / "comparison.png").unlink()
    again = run_cli([str(sweep_dir)], cwd=tmp_path, module="mnist_exp.summarize")
    assert again.returncode == 0 and again.stderr == "", again.stderr
    assert (sweep_dir / "comparison.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.slow
def test_a_figure_summarize_cannot_draw_is_one_warning(mnist_dir, tmp_path):
    result, sweep_dir = sweep(tmp_path, "lr=0.005,0.02")
    assert result.returncode == 0, result.stderr
    (sweep_dir / "summary.csv").unlink()
    (sweep_dir / "comparison.png").unlink()
    (sweep_dir / "comparison.png").mkdir()  # where the figure goes, something it cannot replace
    again = run_cli([str(sweep_dir)], cwd=tmp_path, module="mnist_exp.summarize")
    assert again.returncode == 0, again.stderr
    lines = again.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mnist_exp.summarize: warning: ") and "comparison.png" in lines[0]
    assert (sweep_dir / "summary.csv").is_file() and "wrote" in again.stdout
    assert "comparison.png" not in again.stdout.splitlines()[-1]  # it does not claim the figure it did not write
