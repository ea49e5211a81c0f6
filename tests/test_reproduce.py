"""Reproducing a recorded run (`python -m mnist_exp.reproduce RUN_DIR`), starting a new run from
one (`from_run=RUN_DIR`), and Hydra's `--config-path RUN/.hydra --config-name config` (issue 22)."""

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers import run_cli

TINY = ["train_samples=100", "test_samples=100", "epochs=2", "hidden_size=16"]
CNN = ["arch=cnn", "channels=[2]", "dense_width=8", "train_samples=500", "test_samples=100", "epochs=1"]


def reproduce(run: Path, *args: str, cwd: Path):
    return run_cli([str(run), *args], cwd=cwd, module="mnist_exp.reproduce")


def one_line(result, code: int) -> str:
    """The tool's single error line (no traceback), for exit `code`."""
    assert result.returncode == code, result.stdout + result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("python -m mnist_exp.reproduce")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


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


@pytest.mark.parametrize("which", ["mlp", "cnn", "sweep/1"])
def test_an_untouched_run_reproduces_identically_into_a_new_run(runs, which, tmp_path):
    recorded = runs / which
    before = {p.name: p.read_bytes() for p in recorded.iterdir() if p.is_file()}
    result = reproduce(recorded, "--out", str(tmp_path / "again"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "identical" in result.stdout.strip().splitlines()[-1]
    again = summary(tmp_path / "again")
    assert again["status"] == "completed" and again["from_run"]["run_dir"] == str(recorded.resolve())
    assert again["config"]["lr"] == summary(recorded)["config"]["lr"]
    assert {p.name: p.read_bytes() for p in recorded.iterdir() if p.is_file()} == before  # the record is untouched


@pytest.mark.slow
@pytest.mark.parametrize("sweep", [["lr=0.005,0.01", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
                                   ["+search=optuna", "hydra.sweeper.n_trials=2"]], ids=["joblib", "optuna"])
def test_a_job_of_a_joblib_sweep_or_an_optuna_search_reproduces(mnist_dir, tmp_path, sweep):
    result = run_cli(["-m", *sweep, *TINY, f"hydra.sweep.dir={tmp_path / 's'}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    result = reproduce(tmp_path / "s" / "1", "--out", str(tmp_path / "again"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("identical")


def test_the_rerun_goes_under_outputs_by_default(runs, tmp_path):
    result = reproduce(runs / "mlp", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (new,) = (tmp_path / "outputs").glob("*/*")
    assert str(new.resolve()) in result.stdout and (new / "weights.npz").is_file()


def rewrite_metrics(run: Path, epoch: int, column: str, value: str) -> str:
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    old = rows[epoch][column]
    rows[epoch][column] = value
    with open(run / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return old


def test_tampered_metrics_are_the_first_difference_named_by_epoch_column_and_values(runs, tmp_path):
    run = copy(runs, "mlp", tmp_path)
    old = rewrite_metrics(run, 1, "test_loss", "0.5")
    rewrite_metrics(run, 1, "seconds", "99.0")  # never compared
    result = reproduce(run, "--out", str(tmp_path / "again"), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    line = result.stdout.strip().splitlines()[-1]
    assert "epoch 1" in line and "test_loss" in line and "0.5" in line and old in line, line
    assert "identical" not in result.stdout


def test_a_tampered_weight_is_named_by_array_and_index(runs, tmp_path):
    run = copy(runs, "cnn", tmp_path)
    with np.load(run / "weights.npz") as saved:
        arrays = dict(saved)
    name = next(n for n in sorted(arrays) if arrays[n].size > 3)
    arrays[name].flat[3] = np.nextafter(arrays[name].flat[3], np.inf)  # one unit in the last place
    np.savez(run / "weights.npz", **arrays)
    result = reproduce(run, "--out", str(tmp_path / "again"), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    line = result.stdout.strip().splitlines()[-1]
    assert "weights.npz" in line and name in line and str([int(i) for i in np.unravel_index(3, arrays[name].shape)]) in line


def test_tampered_per_class_results_are_named_by_class(runs, tmp_path):
    run = copy(runs, "sweep/0", tmp_path)
    text = (run / "confusion.csv").read_text().splitlines()
    cells = text[4].split(",")  # true class 3
    cells[1] = str(int(cells[1]) + 1)
    text[4] = ",".join(cells)
    (run / "confusion.csv").write_text("\n".join(text) + "\n")
    result = reproduce(run, "--out", str(tmp_path / "again"), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    line = result.stdout.strip().splitlines()[-1]
    assert "confusion.csv" in line and "true class 3" in line and "predicted 0" in line, line


def test_another_code_version_is_a_warning_naming_both_commits(runs, tmp_path):
    from mnist_exp.record.summary import git_commit

    run = copy(runs, "mlp", tmp_path)
    record = summary(run)
    record["git_commit"] = "0123456789abcdef0123456789abcdef01234567"
    record["versions"]["numpy"] = "1.0.0"
    (run / "summary.json").write_text(json.dumps(record))
    result = reproduce(run, "--out", str(tmp_path / "again"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 2 and "0123456789abcdef" in warnings[0] and str(git_commit()) in warnings[0]
    assert "NumPy 1.0.0" in warnings[1] and np.__version__ in warnings[1]


def damage(run: Path, how: str) -> Path:
    record = summary(run) if (run / "summary.json").is_file() else {}
    if how in ("interrupted", "failed", "pruned", "running"):  # running: killed, no process holds its lock
        record["status"] = how
    elif how == "summary":
        (run / "summary.json").write_text("{not json")
        return run
    elif how == "checksum":
        record["data"]["checksums"]["t10k-images-idx3-ubyte"] = "0" * 32
    elif how == "row":
        lines = (run / "metrics.csv").read_text().splitlines()
        (run / "metrics.csv").write_text("\n".join(lines[:-1]) + "\n")
        return run
    elif how == "weights":
        (run / "weights.npz").write_bytes(b"not a zip")
        return run
    elif how == "confusion":
        (run / "confusion.csv").write_text("true,0,1\n0,1,x\n")
        return run
    (run / "summary.json").write_text(json.dumps(record))
    return run


@pytest.mark.parametrize("target, message", [
    ("missing", "no such directory"), ("file", "not a directory"), ("empty", "not a run directory"),
    ("sweep", "a sweep directory"), ("summary", "cannot read a run summary"), ("interrupted", "resume="),
    ("running", "the run is interrupted"), ("failed", "the run is failed"), ("pruned", "Optuna search stopped it"),
    ("checksum", "checksums"), ("row", "metrics.csv"), ("weights", "weights.npz"),
    ("confusion", "not a confusion matrix")])
def test_bad_input_is_one_line_exit_2_and_runs_nothing(runs, tmp_path, target, message):
    if target in ("summary", "interrupted", "running", "failed", "pruned", "checksum", "row", "weights", "confusion"):
        path = damage(copy(runs, "mlp", tmp_path), target)
    elif target == "sweep":
        path = runs / "sweep"
    elif target == "file":
        path = runs / "mlp" / "metrics.csv"
    else:
        path = tmp_path / target
        if target == "empty":
            path.mkdir()
    line = one_line(reproduce(path, "--out", str(tmp_path / "again"), cwd=tmp_path), 2)
    assert message in line and str(path.name) in line, line
    assert not (tmp_path / "again").exists() and not (tmp_path / "outputs").exists()


def test_a_run_still_running_is_refused_naming_its_process(runs, tmp_path):
    from mnist_exp.files import ownership

    run = damage(copy(runs, "mlp", tmp_path), "running")
    ownership.claim(run, fresh=False)
    try:
        line = one_line(reproduce(run, "--out", str(tmp_path / "again"), cwd=tmp_path), 2)
    finally:
        ownership.release(run)
    assert "still running" in line and f"pid {os.getpid()}" in line, line


def test_a_diverged_run_reproduces_its_divergence(mnist_dir, tmp_path):
    result = run_cli([*TINY, "lr=50", f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    result = reproduce(tmp_path / "run", "--out", str(tmp_path / "again"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("identical") and "diverged" in result.stdout
    assert summary(tmp_path / "again")["status"] == "diverged"


@pytest.mark.slow
def test_the_rerun_has_the_blas_threads_the_run_had(mnist_dir, tmp_path):
    """With 2 threads instead of 1 these mini-batches' weights differed in their last bits."""
    args = ["batch_size=64", "hidden_size=512", "train_samples=5000", "test_samples=200", "epochs=1"]
    run = run_cli([*args, f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path, env={"OPENBLAS_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr
    result = run_cli([str(tmp_path / "run"), "--out", str(tmp_path / "again")], cwd=tmp_path,
                     module="mnist_exp.reproduce", env={"OPENBLAS_NUM_THREADS": "2"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert summary(tmp_path / "again")["runtime"]["blas_threads"] == 1


@pytest.mark.slow
@pytest.mark.parametrize("schedule, same", [("constant", True), ("cosine", False)])
def test_an_extended_run_reproduces_unless_its_schedule_depends_on_epochs(mnist_dir, tmp_path, schedule, same):
    first = run_cli([*TINY, f"lr_schedule={schedule}", f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    extended = run_cli([f"resume={tmp_path / 'run'}", "epochs=3", f"hydra.run.dir={tmp_path / 'ext'}"], cwd=tmp_path)
    assert extended.returncode == 0, extended.stderr
    result = reproduce(tmp_path / "ext", "--out", str(tmp_path / "again"), cwd=tmp_path)
    assert result.returncode == (0 if same else 1), result.stdout + result.stderr
    assert summary(tmp_path / "again")["epochs_run"] == 3


def test_data_dir_is_where_the_rerun_reads_its_data(runs, mnist_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_cli([str(runs / "mlp"), "--out", str(tmp_path / "again"), "--data-dir", str(mnist_dir)], cwd=tmp_path,
                     module="mnist_exp.reproduce", env={"MNIST_EXP_DATA_DIR": str(tmp_path / "empty")})
    assert result.returncode == 0, result.stdout + result.stderr
    assert Path(summary(tmp_path / "again")["data"]["dir"]).resolve() == Path(mnist_dir).resolve()


def test_a_used_out_dir_or_one_inside_the_run_is_refused_and_left_alone(runs, tmp_path):
    (tmp_path / "again").mkdir()
    (tmp_path / "again" / "mine.txt").write_text("keep")
    line = one_line(reproduce(runs / "mlp", "--out", str(tmp_path / "again"), cwd=tmp_path), 2)
    assert "already holds" in line and sorted(p.name for p in (tmp_path / "again").iterdir()) == ["mine.txt"]
    run = copy(runs, "mlp", tmp_path)
    before = sorted(p.name for p in run.iterdir())
    line = one_line(reproduce(run, "--out", str(run / "again"), cwd=tmp_path), 2)
    assert "inside the run" in line and sorted(p.name for p in run.iterdir()) == before


@pytest.mark.slow
def test_ctrl_c_stops_the_rerun_which_records_itself_interrupted(mnist_dir, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from helpers import cli_env

    long = ["train_samples=5000", "epochs=8", f"hydra.run.dir={tmp_path / 'run'}"]
    assert run_cli(long, cwd=tmp_path).returncode == 0
    child = subprocess.Popen([sys.executable, "-m", "mnist_exp.reproduce", str(tmp_path / "run"), "--out",
                              str(tmp_path / "again")], cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 60
    while not (tmp_path / "again" / "checkpoint.npz").exists() and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(child.pid, signal.SIGINT)  # as Ctrl-C at a terminal: both processes
    out, err = child.communicate(timeout=60)
    assert child.returncode == 130, out + err
    assert err.strip().splitlines()[-1] == "python -m mnist_exp.reproduce: interrupted" and "Traceback" not in err
    assert summary(tmp_path / "again")["status"] == "interrupted"


def metrics(run: Path) -> list:
    with open(run / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


@pytest.mark.slow
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


@pytest.mark.slow
def test_a_sweep_from_a_recorded_run(runs, tmp_path):
    result = run_cli(["-m", f"from_run={runs / 'mlp'}", "lr=0.01,0.02", f"hydra.sweep.dir={tmp_path / 's'}"],
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for job, lr in ((0, 0.01), (1, 0.02)):
        record = summary(tmp_path / "s" / str(job))
        assert record["config"]["lr"] == lr and record["config"]["hidden_size"] == 16
        assert record["from_run"]["changed"] == {"lr": [0.005, lr]}


def test_from_run_reads_the_data_where_this_user_keeps_it(mnist_dir, tmp_path):
    """The record's data.dir may be gone (or another user's): the default data set is read from
    MNIST_EXP_DATA_DIR, and the checksums say it is the same data."""
    gone = Path(shutil.copytree(mnist_dir, tmp_path / "gone"))
    first = run_cli([*TINY, f"data.dir={gone}", f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    shutil.rmtree(gone)
    result = reproduce(tmp_path / "run", "--out", str(tmp_path / "again"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert summary(tmp_path / "again")["data"]["dir"] == str(mnist_dir) and not gone.exists()


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
