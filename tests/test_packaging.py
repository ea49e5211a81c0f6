"""A non-editable install finds its packaged conf/ from any directory."""

import subprocess
import sys
from pathlib import Path

import pytest

from helpers import cli_env

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("site")
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
                             str(target), str(REPO)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return target


def run_installed(target: Path, args, cwd: Path):
    env = cli_env({"PYTHONPATH": str(target)})
    return subprocess.run([sys.executable, "-c", "import mnist_exp, sys; print(mnist_exp.__file__, file=sys.stderr);"
                           " from mnist_exp.cli.main import main; sys.argv[0] = 'mnist_exp'; main()", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_wheel_ships_the_config_files(installed):
    shipped = sorted(p.relative_to(installed / "mnist_exp" / "conf").as_posix()
                     for p in (installed / "mnist_exp" / "conf").rglob("*.yaml"))
    in_repo = sorted(p.relative_to(REPO / "conf").as_posix() for p in (REPO / "conf").rglob("*.yaml"))
    assert shipped == in_repo and "config.yaml" in shipped


@pytest.mark.slow
def test_installed_copy_composes_and_runs_from_another_directory(installed, mnist_dir, tmp_path):
    cfg = run_installed(installed, ["--cfg", "job", "hidden_size=7"], tmp_path)
    assert cfg.returncode == 0, cfg.stderr
    assert str(installed) in cfg.stderr  # the installed copy ran, not the checkout
    assert "hidden_size: 7" in cfg.stdout
    run = run_installed(installed, ["train_samples=10", "test_samples=10", "epochs=1"], tmp_path)
    assert run.returncode == 0, run.stderr
    assert len(list((tmp_path / "outputs").glob("*/*/metrics.csv"))) == 1


BLOCKER = '''
import importlib.abc, os, sys
BLOCKED = [b for b in os.environ["MNIST_EXP_TEST_BLOCK"].split(",") if b]
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Block())
'''


def test_the_base_install_leaves_optuna_and_submitit_to_extras():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    base = " ".join(project["dependencies"]).lower()
    assert "optuna" not in base and "submitit" not in base and "sqlalchemy" not in base
    assert any("optuna" in d for d in project["optional-dependencies"]["optuna"])
    assert any("submitit" in d for d in project["optional-dependencies"]["slurm"])


def test_the_optuna_extra_installs_a_current_optuna_and_no_old_plugin():
    tomllib = pytest.importorskip("tomllib")
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["optuna"]
    assert "optuna>=4" in extra and not any("hydra-optuna-sweeper" in d or "<" in d for d in extra)
    from importlib.metadata import version

    assert int(version("optuna").split(".")[0]) >= 4  # what `pip install -e '.[test]'` put here


@pytest.mark.parametrize("extra, modules, args", [
    ("optuna", "optuna", ["+search=optuna"]),
    ("slurm", "submitit,hydra_plugins.hydra_submitit_launcher", ["lr=0.1,0.2", "hydra/launcher=submitit_local"]),
])
def test_a_missing_extra_is_named_in_one_line(extra, modules, args, tmp_path):
    """As in an install without the extra: its modules cannot be imported."""
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    env = cli_env({"PYTHONPATH": str(tmp_path), "MNIST_EXP_TEST_BLOCK": modules})
    result = subprocess.run([sys.executable, "-m", "mnist_exp", "-m", *args, f"hydra.sweep.dir={tmp_path / 's'}"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"mnist_exp: error: this needs the '{extra}' extra, which is not installed: pip install -e '.[{extra}]' "
        f"in a checkout, or pip install 'mnist_exp[{extra}]'"]
    assert not (tmp_path / "s").exists()
