"""A non-editable install finds its packaged conf/ from any directory."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("site")
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
                             str(target), str(REPO)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return target


def run_installed(target: Path, args, cwd: Path):
    env = dict(os.environ, PYTHONPATH=str(target))
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, "-c", "import mnist_exp, sys; print(mnist_exp.__file__, file=sys.stderr);"
                           " from mnist_exp.app import main; sys.argv[0] = 'mnist_exp'; main()", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_wheel_ships_the_config_files(installed):
    shipped = sorted(p.relative_to(installed / "mnist_exp" / "conf").as_posix()
                     for p in (installed / "mnist_exp" / "conf").rglob("*.yaml"))
    in_repo = sorted(p.relative_to(REPO / "conf").as_posix() for p in (REPO / "conf").rglob("*.yaml"))
    assert shipped == in_repo and "config.yaml" in shipped


def test_installed_copy_composes_and_runs_from_another_directory(installed, mnist_dir, tmp_path):
    cfg = run_installed(installed, ["--cfg", "job", "hidden_size=7"], tmp_path)
    assert cfg.returncode == 0, cfg.stderr
    assert str(installed) in cfg.stderr  # the installed copy ran, not the checkout
    assert "hidden_size: 7" in cfg.stdout
    run = run_installed(installed, ["train_samples=10", "test_samples=10", "epochs=1"], tmp_path)
    assert run.returncode == 0, run.stderr
    assert len(list((tmp_path / "outputs").glob("*/*/metrics.csv"))) == 1
