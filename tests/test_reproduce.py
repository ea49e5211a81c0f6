"""Reproducing a recorded run (`python -m mnist_exp.reproduce RUN_DIR`), starting a new run from
one (`from_run=RUN_DIR`), and Hydra's `--config-path RUN/.hydra --config-name config` (issue 22)."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers import run_cli

TINY = ["train_samples=100", "test_samples=100", "epochs=2", "hidden_size=16"]
CNN = ["arch=cnn", "channels=[2]", "dense_width=8", "train_samples=500", "test_samples=100", "epochs=1"]


def summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


@pytest.fixture(scope="module")
def runs(mnist_dir, tmp_path_factory):
    """A tiny MLP run, a small CNN run and a two-job sweep, each real."""
    root = tmp_path_factory.mktemp("recorded")
    for folder, args in (("mlp", TINY), ("cnn", CNN)):
        result = run_cli([*args, "name=orig", f"hydra.run.dir={root / folder}"], cwd=root)
        assert result.returncode == 0, result.stderr
    result = run_cli(["-m", "lr=0.005,0.02", *TINY, f"hydra.sweep.dir={root / 'sweep'}"], cwd=root)
    assert result.returncode == 0, result.stderr
    return root


def copy(runs: Path, which: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(runs / which, tmp_path / which))


def metrics(run: Path) -> list:
    with open(run / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


def test_from_run_starts_a_new_run_from_the_recorded_config_with_the_changes_given(runs, tmp_path):
    result = run_cli([f"from_run={runs / 'mlp'}", "lr=0.01", f"hydra.run.dir={tmp_path / 'new'}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    new = summary(tmp_path / "new")
    assert new["config"]["lr"] == 0.01 and new["config"]["hidden_size"] == 16 and new["epochs_run"] == 2
    assert new["from_run"] == {"run_dir": str((runs / "mlp").resolve()), "changed": {"lr": [0.005, 0.01]}}
    assert new["name"] is None  # a name is the run's own, not carried over
    typed = run_cli([*TINY, "lr=0.01", f"hydra.run.dir={tmp_path / 'typed'}"], cwd=tmp_path)
    assert typed.returncode == 0, typed.stderr
    assert metrics(tmp_path / "new") == metrics(tmp_path / "typed")


def test_a_sweep_from_a_recorded_run(runs, tmp_path):
    result = run_cli(["-m", f"from_run={runs / 'mlp'}", "lr=0.01,0.02", f"hydra.sweep.dir={tmp_path / 's'}"],
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for job, lr in ((0, 0.01), (1, 0.02)):
        record = summary(tmp_path / "s" / str(job))
        assert record["config"]["lr"] == lr and record["config"]["hidden_size"] == 16
        assert record["from_run"]["changed"] == {"lr": [0.005, lr]}


def test_from_run_of_a_cnn_takes_its_network_keys(runs, tmp_path):
    result = run_cli([f"from_run={runs / 'cnn'}", "dense_width=4", "train_samples=50",
                      f"hydra.run.dir={tmp_path / 'new'}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    config = summary(tmp_path / "new")["config"]
    assert (config["arch"], config["dense_width"], config["channels"], config["batch_size"]) == ("cnn", 4, [2], 128)
    refused = run_cli([f"from_run={runs / 'cnn'}", "hidden_size=4", f"hydra.run.dir={tmp_path / 'x'}"], cwd=tmp_path)
    assert refused.returncode == 2 and "hidden_size is for arch=mlp" in refused.stderr, refused.stderr


@pytest.mark.parametrize("args, message", [
    (["from_run={tmp}/missing"], "no summary.json"), (["from_run="], "from_run is empty"),
    (["from_run={run}", "arch=cnn"], "arch=cnn cannot be given with from_run="),
    (["from_run={run}", "experiment=best_mlp"], "experiment=best_mlp cannot be given with from_run="),
    (["from_run={run}", "resume={run}"], "from_run and resume cannot be given together"),
    (["--cfg", "job", "from_run={run}"], "--cfg with from_run="),
    (["from_run={run}/metrics.csv"], "no summary.json")])
def test_bad_from_run_is_one_line_exit_2_with_nothing_written(runs, tmp_path, args, message):
    args = [a.format(tmp=tmp_path, run=runs / "mlp") for a in args]
    result = run_cli([*args, f"hydra.run.dir={tmp_path / 'new'}"], cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr, result.stderr
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("flags", [["--config-path", "{run}/.hydra", "--config-name", "config"],
                                   ["--config-path={run}/.hydra", "--config-name=config.yaml"],
                                   ["-cp", "{run}/.hydra"], ["-cp={run}/.hydra/", "-cn", "config"]])
def test_hydras_config_path_of_a_runs_record_reruns_that_run(runs, tmp_path, flags):
    args = [f.format(run=runs / "mlp") for f in flags]
    result = run_cli([*args, f"hydra.run.dir={tmp_path / 'new'}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert metrics(tmp_path / "new") == metrics(runs / "mlp")
    assert summary(tmp_path / "new")["from_run"]["run_dir"] == str((runs / "mlp").resolve())


def test_config_path_of_a_run_with_a_change(runs, tmp_path):
    result = run_cli(["-cp", str(runs / "mlp" / ".hydra"), "-cn", "config", "epochs=1",
                      f"hydra.run.dir={tmp_path / 'new'}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert metrics(tmp_path / "new") == metrics(runs / "mlp")[:1]


@pytest.mark.parametrize("flags", [["-cp", "{run}/.hydra", "-cn", "hydra"], ["-cp", "{run}"],
                                   ["-cn", "config"], ["-cp", "{run}/.hydra", "from_run={run}"]])
def test_config_path_other_than_a_runs_record_stays_refused(runs, tmp_path, flags):
    args = [f.format(run=runs / "mlp") for f in flags]
    result = run_cli([*args, f"hydra.run.dir={tmp_path / 'new'}"], cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "from_run=" in result.stderr, result.stderr
    assert not (tmp_path / "new").exists()
