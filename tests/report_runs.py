"""Real runs for the report, diff and run-list tests: a tiny grid sweep and a named single run."""

from pathlib import Path

from helpers import run_cli

TINY = ["train_samples=100", "test_samples=100", "epochs=2"]


def make_sweep(root: Path) -> Path:
    """A 2x2 grid (lr x hidden_size) of real runs; its report.html is written at the end."""
    result = run_cli(["-m", "lr=0.005,0.02", "hidden_size=8,16", *TINY, f"hydra.sweep.dir={root / 'sweep'}"], cwd=root)
    assert result.returncode == 0, result.stderr
    return root / "sweep"


def make_run(root: Path, *overrides: str, folder: str = "single") -> Path:
    """One real run in root/<folder>, named and tagged (overrides may rename it)."""
    result = run_cli([*TINY, "name=single", "tags=[baseline,tiny]", *overrides, f"hydra.run.dir={root / folder}"],
                     cwd=root)
    assert result.returncode == 0, result.stderr
    return root / folder
