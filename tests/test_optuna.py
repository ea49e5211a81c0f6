"""mnist_exp's Optuna sweeper: Hydra's sweep syntax, the study in its storage, the validation
objective, pruning, busy workers and a study that keeps its setting."""

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from helpers import run_cli

optuna = pytest.importorskip("optuna")
SMALL = ["train_samples=200", "test_samples=100", "epochs=3"]


def search(tmp_path: Path, name: str, *args: str, db: str = "optuna.db"):
    sweep_dir = tmp_path / name
    result = run_cli(["-m", "+search=optuna", *SMALL, *args, f"hydra.sweeper.storage=sqlite:///{tmp_path / db}",
                      f"hydra.sweep.dir={sweep_dir}"], cwd=tmp_path)
    return result, sweep_dir


def stored(tmp_path: Path, db: str = "optuna.db", name: str = "mnist_exp"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path / db}")


def summary_json(run_dir) -> dict:
    return json.loads((Path(run_dir) / "summary.json").read_text())


def test_hydra_sweep_syntax_means_the_same_values_as_in_a_grid():
    from hydra_plugins.mnist_exp_launchers.optuna_space import search_space

    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    space, fixed = search_space({"lr": "tag(log, interval(0.0005, 0.05))", "hidden_size": "range(32, 257, step=32)"},
                                ["epochs=3", "batch_size=interval(8, 64)", "arch=choice(mlp,cnn)", "hidden_size=16,32"])
    assert space["lr"] == FloatDistribution(0.0005, 0.05, log=True)
    assert space["batch_size"] == IntDistribution(8, 64)  # ends typed as integers: integers
    assert space["arch"] == CategoricalDistribution(["mlp", "cnn"])
    assert space["hidden_size"] == CategoricalDistribution([16, 32])  # the command line's comes last
    assert fixed == ["epochs=3"]
    range_space, _ = search_space({"hidden_size": "range(32, 256, step=32)"}, [])
    assert range_space["hidden_size"] == IntDistribution(32, 224, step=32)  # Hydra's stop is exclusive


@pytest.fixture(scope="module")
def unpruned(mnist_dir, tmp_path_factory):
    """A search without pruning: 3 trials of 3 epochs, its study in tmp/optuna.db."""
    tmp_path = tmp_path_factory.mktemp("unpruned")
    result, sweep_dir = search(tmp_path, "s", "hydra.sweeper.n_trials=3", "hydra.sweeper.pruner=none")
    assert result.returncode == 0, result.stderr
    return tmp_path, sweep_dir


@pytest.mark.slow
def test_the_storage_holds_every_trial_with_each_epochs_validation_accuracy(unpruned):
    tmp_path, sweep_dir = unpruned
    trials = stored(tmp_path).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    for trial in trials:
        run_dir = Path(trial.user_attrs["run_dir"])
        metrics = pd.read_csv(run_dir / "metrics.csv")
        assert trial.intermediate_values == dict(zip(metrics["epoch"], metrics["val_accuracy"]))
        assert summary_json(run_dir)["trial"]["number"] == trial.number
        assert trial.params == {"lr": summary_json(run_dir)["config"]["lr"],
                                "hidden_size": summary_json(run_dir)["config"]["hidden_size"]}


def test_the_objective_is_the_kept_epochs_validation_accuracy_with_test_accuracy_beside_it(unpruned):
    tmp_path, sweep_dir = unpruned
    table = pd.read_csv(sweep_dir / "summary.csv")
    assert (table["objective_metric"] == "final_val_accuracy").all()
    assert table["objective"].tolist() == table["final_val_accuracy"].tolist()
    for trial in stored(tmp_path).get_trials():
        final = summary_json(trial.user_attrs["run_dir"])["final"]
        assert trial.value == final["val_accuracy"] and trial.user_attrs["test_accuracy"] == final["test_accuracy"]
    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    best = table.loc[table["objective"].idxmax()]
    assert results["objective"] == "final_val_accuracy" and results["best_value"] == best["objective"]
    assert results["best_test_accuracy"] == best["final_test_accuracy"]  # reported, not chosen by
    assert results["trials"] == {"complete": 3, "pruned": 0, "fail": 0}


def test_a_search_without_validation_data_is_refused(tmp_path):
    result, sweep_dir = search(tmp_path, "s", "val_samples=0")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "mnist_exp: error: val_samples=0: an Optuna search chooses on validation data; give val_samples > 0 "
        "(+search=optuna sets 1000)"]
    assert not sweep_dir.exists()


@pytest.mark.slow
def test_a_pruned_trial_is_recorded_with_the_epochs_it_ran(mnist_dir, tmp_path):
    result, sweep_dir = search(tmp_path, "s", "hydra.sweeper.n_trials=8", "epochs=4",
                               "hydra.sweeper.pruner_args.median.n_startup_trials=2")
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(sweep_dir / "summary.csv")
    pruned = table[table["status"] == "pruned"]
    assert len(pruned) >= 1 and set(table["status"]) == {"completed", "pruned"}
    assert f"sweep of 8 jobs: {8 - len(pruned)} completed, {len(pruned)} pruned" in result.stdout
    assert (pruned["epochs_run"] < 4).all() and pruned["objective"].isna().all()
    for row in pruned.itertuples():
        assert len(pd.read_csv(Path(row.run_dir) / "metrics.csv")) == row.epochs_run
        assert "pruned after epoch" in row.reason
        for name in ("weights.npz", "curves.png", "model_card.md"):  # a complete record of what it did
            assert (Path(row.run_dir) / name).is_file()
    states = {t.number: t.state.name for t in stored(tmp_path).get_trials()}
    assert sorted(n for n, s in states.items() if s == "PRUNED") == sorted(pruned["trial"])
    listed = run_cli([str(sweep_dir), "--status", "pruned"], cwd=tmp_path, module="mnist_exp.runs")
    assert listed.returncode == 0 and len(listed.stdout.strip().splitlines()) == 1 + len(pruned)


def test_an_unknown_pruner_is_refused_in_one_line(tmp_path):
    result, _ = search(tmp_path, "s", "hydra.sweeper.pruner=mean")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "mnist_exp: error: hydra.sweeper.pruner=mean is not one of median, hyperband, none"]


def job_times(sweep_dir: Path) -> list:
    """(start, end) of each job: when Hydra wrote its overrides, when the run wrote its summary last."""
    times = []
    for job in sorted((p for p in sweep_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name)):
        times.append((os.stat(job / ".hydra" / "overrides.yaml").st_mtime, os.stat(job / "summary.json").st_mtime))
    return times


@pytest.mark.slow
def test_a_joblib_search_keeps_both_workers_busy(mnist_dir, tmp_path):
    """Seed 15 proposes a 60-epoch trial, then three of 1 epoch: while the long one runs, the
    other worker takes each short one as soon as its last ends (in batches of two, only the
    first would run beside it)."""
    result, sweep_dir = search(tmp_path, "s", "hydra.sweeper.n_trials=4", "train_samples=4000", "hydra.sweeper.pruner=none",
                               "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "epochs=choice(1,60)",
                               "hydra.sweeper.sampler.seed=15")
    assert result.returncode == 0, result.stderr
    assert [summary_json(sweep_dir / str(job))["epochs_run"] for job in range(4)] == [60, 1, 1, 1]
    (start, end), *short = job_times(sweep_dir)
    assert sum(s < end for s, _ in short) >= 2, (start, end, short)  # the long trial held no one up
    pids = {summary_json(sweep_dir / str(job))["runtime"]["pid"] for job in range(4)}
    assert len(pids) == 2 and os.getpid() not in pids, pids


@pytest.mark.slow
def test_one_worker_and_the_same_seed_give_the_same_trials(mnist_dir, tmp_path):
    def trials(db: str) -> list:
        result, sweep_dir = search(tmp_path, db, "hydra.sweeper.n_trials=7", "epochs=2",
                                   "hydra.sweeper.pruner_args.median.n_startup_trials=2", db=f"{db}.db")
        assert result.returncode == 0, result.stderr
        return [(t.params, t.state.name, t.value) for t in stored(tmp_path, f"{db}.db").get_trials()]

    first = trials("a")
    assert "PRUNED" in {state for _, state, _ in first}  # the pruner's decisions are repeated too
    assert trials("b") == first


@pytest.mark.slow
def test_a_study_continued_with_other_fixed_settings_is_refused(mnist_dir, tmp_path):
    result, _ = search(tmp_path, "first", "hydra.sweeper.n_trials=2")
    assert result.returncode == 0, result.stderr
    result, sweep_dir = search(tmp_path, "second", "hydra.sweeper.n_trials=2", "epochs=2", "train_samples=150")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"mnist_exp: error: study mnist_exp in sqlite:///{tmp_path / 'optuna.db'} searched with epochs=3 "
        "train_samples=200, this search has epochs=2 train_samples=150: continue it with the same settings, "
        "or give a new hydra.sweeper.study_name (or another storage) to start a study of its own"]
    assert len(stored(tmp_path).trials) == 2 and not sweep_dir.exists()
    setting = stored(tmp_path).user_attrs["mnist_exp_setting"]
    assert setting["fixed"]["epochs"] == 3 and setting["fixed"]["data.train_images.md5"]
    assert setting["searched"] == ["hidden_size", "lr"] and setting["objective"] == "final_val_accuracy"
    # the same settings, the data read from the same files spelled another way: the study goes on
    result, _ = search(tmp_path, "third", "hydra.sweeper.n_trials=1", f"data.dir={mnist_dir}/.")
    assert result.returncode == 0, result.stderr
    assert len(stored(tmp_path).trials) == 3


def test_a_search_slurm_cannot_take_is_one_line_and_leaves_no_trial_running(tmp_path):
    import sys

    result = run_cli(["-m", "+search=optuna", "hydra.sweeper.n_trials=3", "epochs=1", "hydra/launcher=submitit_slurm",
                      f"hydra.sweeper.storage=sqlite:///{tmp_path / 'optuna.db'}", f"hydra.sweep.dir={tmp_path / 's'}"],
                     cwd=tmp_path, env={"PATH": os.path.dirname(sys.executable)})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mnist_exp: error: nothing was submitted to SLURM: "), result.stderr
    assert {t.state.name for t in stored(tmp_path).trials} == {"FAIL"}


@pytest.mark.slow
def test_a_search_stopped_with_ctrl_c_leaves_no_trial_running_in_its_study(mnist_dir, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    env = dict(os.environ)
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.Popen([sys.executable, "-m", "mnist_exp", "-m", "+search=optuna", "hydra.sweeper.n_trials=3",
                             "epochs=300", "train_samples=500", "test_samples=100",
                             f"hydra.sweeper.storage=sqlite:///{tmp_path / 'optuna.db'}", f"hydra.sweep.dir={tmp_path / 's'}"],
                            cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while not (tmp_path / "s" / "0" / "checkpoint.npz").is_file() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert [t.state.name for t in stored(tmp_path).trials] == ["FAIL"]
    assert summary_json(tmp_path / "s" / "0")["status"] == "interrupted"


def test_a_search_slurm_cannot_take_leaves_no_sweep_dir_and_no_empty_study(mnist_dir, tmp_path):
    """Its study was created in the sweep dir before the launch failed: both go, as a grid's."""
    result = run_cli(["-m", "+search=optuna", *SMALL, "hydra.sweeper.n_trials=2", "hydra/launcher=submitit_slurm",
                      f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=tmp_path,
                     env={"PATH": os.path.dirname(os.sys.executable)})
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "nothing was submitted to SLURM" in result.stderr, result.stderr
    assert list(tmp_path.iterdir()) == []
