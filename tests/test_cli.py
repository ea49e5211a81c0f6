"""The app end to end, as a user runs it: run record, config errors, help, determinism."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from helpers import run_cli, run_in_process

SMALL = ["train_samples=200", "test_samples=100", "epochs=3", "seed=1"]


@pytest.fixture(scope="module")
def small_run(mnist_dir, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("small") / "run"
    result = run_cli([*SMALL, f"hydra.run.dir={run_dir}"], cwd=run_dir.parent)
    assert result.returncode == 0, result.stderr
    return run_dir


@pytest.mark.slow
def test_metrics_csv_has_one_full_precision_row_per_epoch(small_run):
    metrics = pd.read_csv(small_run / "metrics.csv")
    assert list(metrics.columns) == ["epoch", "train_loss", "train_accuracy", "test_loss",
                                     "test_accuracy", "seconds"]
    assert metrics["epoch"].tolist() == [0, 1, 2]
    assert all(dtype.kind == "f" for dtype in metrics.dtypes.iloc[1:])
    assert (metrics["seconds"] > 0).all()
    assert metrics["train_loss"].map(lambda v: len(repr(v))).max() > 10  # not rounded


def test_summary_json_records_status_metrics_and_provenance(small_run):
    summary = json.loads((small_run / "summary.json").read_text())
    metrics = pd.read_csv(small_run / "metrics.csv")
    assert summary["status"] == "completed" and summary["epochs_run"] == 3
    assert summary["seed"] == 1 and summary["config"]["train_samples"] == 200
    assert summary["final"]["test_accuracy"] == metrics["test_accuracy"].iloc[-1]
    assert summary["best"]["test_accuracy"] == metrics["test_accuracy"].max()
    assert summary["versions"]["numpy"] == np.__version__
    assert summary["data"]["checksums"]["train-images-idx3-ubyte"] == "6bbc9ace898e44ae57da46a324031adb"
    assert summary["wall_seconds"] > 0 and "git_commit" in summary


def test_weights_load_without_pickle_and_evaluate_again(small_run):
    with np.load(small_run / "weights.npz", allow_pickle=False) as saved:
        assert saved["dense1/w"].shape == (784, 100) and saved["dense2/w"].shape == (100, 10)
    result = run_cli([str(small_run)], cwd=small_run, module="mnist_exp.evaluate")
    assert result.returncode == 0, result.stderr
    final = json.loads((small_run / "summary.json").read_text())["final"]
    assert f"test_accuracy={final['test_accuracy']:.4f}" in result.stdout
    assert f"test_loss={final['test_loss']:.6f}" in result.stdout


def test_curves_png_model_card_hydra_folder_and_log_are_written(small_run):
    png = (small_run / "curves.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000
    card = (small_run / "model_card.md").read_text()
    for heading in ("## Model details", "## Intended use", "## Data", "## Metrics", "## Limitations"):
        assert heading in card
    assert "784-100-10" in card and "first 200 images" in card
    assert (small_run / ".hydra" / "config.yaml").is_file()
    assert "train_samples=200" in (small_run / ".hydra" / "overrides.yaml").read_text()
    assert "epoch 2/2" in (small_run / "mnist_exp.log").read_text()


@pytest.mark.slow
def test_same_config_twice_gives_identical_metrics(small_run, tmp_path):
    again = tmp_path / "again"
    assert run_cli([*SMALL, f"hydra.run.dir={again}"], cwd=tmp_path).returncode == 0
    first, second = pd.read_csv(small_run / "metrics.csv"), pd.read_csv(again / "metrics.csv")
    pd.testing.assert_frame_equal(first.drop(columns="seconds"), second.drop(columns="seconds"))
    other = tmp_path / "other-seed"
    assert run_cli([*SMALL[:-1], "seed=2", f"hydra.run.dir={other}"], cwd=tmp_path).returncode == 0
    assert not pd.read_csv(other / "metrics.csv")["train_loss"].equals(first["train_loss"])


@pytest.mark.parametrize("override, message", [
    ("lr=-1", "lr=-1.0 is out of range: lr must be a finite number > 0"),
    ("lr=nan", "lr=nan is out of range"),
    ("lr=abc", "lr: Value 'abc' of type 'str' could not be converted to Float"),
    ("hidden_size=0", "hidden_size=0 is out of range: hidden_size must be an integer >= 1"),
    ("hidden_size=1.5", "hidden_size: Value '1.5' of type 'float' could not be converted to Integer"),
    ("epochs=0", "epochs=0 is out of range: epochs must be an integer >= 1"),
    ("train_samples=60001", "train_samples must be an integer from 1 to 60000"),
    ("test_samples=0", "test_samples must be an integer from 1 to 10000"),
    ("seed=-1", "seed=-1 is out of range: seed must be an integer from 0 to 2**63-1"),
    ("lerning_rate=0.1", "Key 'lerning_rate' not in 'Config'"),
    ("+lerning_rate=0.1", "unknown config key 'lerning_rate'"),
    ("+data.foo=1", "unknown config key 'data.foo'"),
    ("data=nope", "Could not find 'data/nope'"),
    ("seed=18446744073709551616", "seed=18446744073709551616 is out of range"),
    ("seed=" + "9" * 5000, "an override holds an integer of over 4300 digits"),
    ("hidden_size=1000000", "this config needs at least 61.1 GiB of memory"),
    ("hidden_size=1000000000", "more than this machine's"),
    ("data.name=" + "x" * 300, "is not a plain name"),
    ("data.train_images.name=../outside/x", "data.train_images.name='../outside/x' is not a plain file name"),
    ("data.mirrors=[ftp://example.org/]", "data.mirrors[0]='ftp://example.org/' is not an http:// or https:// URL"),
    ("data.retries=12", "data.retries must be an integer from 1 to 10"),
    ("data.deadline=0", "data.deadline=0.0 is out of range"),
    ("lr=\uff11", "cannot read the override 'lr=\uff11'"),
    ("data.mirrors=[http://[::1]:8000/]", "must be quoted, e.g."),
    ("lr=${oc.env:MNIST_EXP_NO_SUCH_VARIABLE}", "Environment variable 'MNIST_EXP_NO_SUCH_VARIABLE' not found"),
])
def test_bad_config_exits_2_with_one_line_and_no_training(override, message, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    result = run_in_process([override, f"hydra.run.dir={run_dir}"], tmp_path, monkeypatch)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mnist_exp: error: ") and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not (run_dir / "metrics.csv").exists() and not run_dir.exists()


def test_a_bad_value_is_the_same_one_line_from_a_real_process(tmp_path):
    """The in-process refusals above, once end to end: exit code, stderr, nothing written."""
    result = run_cli(["lr=-1", f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == "mnist_exp: error: lr=-1.0 is out of range: lr must be a finite number > 0\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_missing_data_and_no_mirror_is_one_line_naming_the_file(tmp_path, closed_port_url):
    result = run_cli([f"data.dir={tmp_path / 'empty'}", f"data.mirrors=[{closed_port_url}]", "data.retries=1",
                      f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mnist_exp: error: train-images-idx3-ubyte: not in ")
    assert f"tried {closed_port_url}train-images-idx3-ubyte.gz: connection failed" in lines[0]


@pytest.mark.slow
def test_diverging_run_stops_with_status_diverged_and_exit_3(mnist_dir, tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli(["lr=50", "train_samples=100", "test_samples=50", "epochs=5", f"hydra.run.dir={run_dir}"],
                     cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    assert "run diverged: loss is not finite at epoch 0" in result.stderr
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "diverged"
    assert len(pd.read_csv(run_dir / "metrics.csv")) == 1


def schema_keys(schema=None, prefix=""):
    """Every key of the config, from its schema: data.train_images.name and .md5 included."""
    from dataclasses import fields, is_dataclass

    from mnist_exp.config import Config

    for f in fields(schema or Config):
        if is_dataclass(f.type):
            yield from schema_keys(f.type, f"{prefix}{f.name}.")
        else:
            yield prefix + f.name


def test_help_lists_every_config_key():
    result = run_cli(["--help"], cwd=Path.cwd())
    assert result.returncode == 0
    keys_part = result.stdout.split("Keys:", 1)[1]
    for key in schema_keys():
        assert re.search(rf"(\n  +|, ){re.escape(key)}[ ,\n]", keys_part), key


@pytest.mark.slow
def test_help_shows_every_config_group_choice_as_it_is_typed(tmp_path):
    """A group in config.yaml's defaults list is chosen with group=choice; any other one is
    added with +group=choice: each is shown so, and composes as shown."""
    from hydra import compose, initialize_config_dir

    from mnist_exp.config import CONF_DIR

    help_text = run_cli(["--help"], cwd=tmp_path).stdout
    conf = Path(CONF_DIR)
    listed = yaml.safe_load((conf / "config.yaml").read_text())["defaults"]
    in_defaults = {next(iter(item)) for item in listed if isinstance(item, dict)}
    shown = []
    for group in sorted(p for p in conf.iterdir() if p.is_dir() and p.name not in ("hydra", "__pycache__")):
        for choice in sorted(group.glob("*.yaml")):
            typed = f"{'' if group.name in in_defaults else '+'}{group.name}={choice.stem}"
            assert re.search(rf"(^|\s){re.escape(typed)}(\s|$)", help_text), typed
            if typed.startswith("+"):
                assert not re.search(rf"(^|[\s:]){group.name}[=:] *{choice.stem}", help_text), typed
            shown.append(typed)
    assert "+search=optuna" in shown
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        for typed in shown:
            compose("config", overrides=[typed])


def test_readme_documents_every_config_key_and_output_file():
    from dataclasses import fields, is_dataclass

    from mnist_exp import record
    from mnist_exp.config import Config

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()

    def keys(schema, prefix=""):
        for f in fields(schema):
            if is_dataclass(f.type) and f.name != "data":
                continue  # file specs are documented together
            yield from keys(f.type, f"{f.name}.") if is_dataclass(f.type) else [prefix + f.name]

    for key in keys(Config):
        assert f"`{key}`" in readme, key
    for name in (record.METRICS, record.CURVES, record.WEIGHTS, record.SUMMARY, record.MODEL_CARD, ".hydra/"):
        assert f"`{name}`" in readme, name


def test_cfg_job_prints_the_composed_config(tmp_path):
    result = run_cli(["--cfg", "job", "lr=0.01", "hidden_size=200"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "lr: 0.01\nhidden_size: 200\n" in result.stdout
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_runs_from_any_directory_write_under_it_in_distinct_dirs(mnist_dir, tmp_path):
    """Started together, two runs land in outputs/<date>/<time with microseconds>/."""
    script = Path(sys.executable).parent / "mnist-exp"
    args = ["train_samples=20", "test_samples=20", "epochs=1"]
    procs = [subprocess.Popen([str(script), *args], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE),
             subprocess.Popen([sys.executable, "-m", "mnist_exp", *args], cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    runs = sorted((tmp_path / "outputs").glob("*/*/metrics.csv"))
    assert len(runs) == 2 and runs[0].parent != runs[1].parent
    assert all(len(pd.read_csv(run)) == 1 for run in runs)


@pytest.mark.slow
def test_a_diverged_run_keeps_the_last_finite_weights_and_reports_no_number_from_nan(mnist_dir, tmp_path):
    """lr=0.07 on 200 images diverges at epoch 2: weights.npz holds epoch 1's finite weights, the
    summary's final row is epoch 1, and the diverged row carries no accuracy of NaN outputs."""
    run_dir = tmp_path / "run"
    result = run_cli(["lr=0.07", "train_samples=200", "test_samples=100", "epochs=20", f"hydra.run.dir={run_dir}"],
                     cwd=tmp_path)
    assert result.returncode == 3 and "not finite at epoch 2" in result.stderr, result.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["final"]["epoch"] == 1 and summary["last"]["epoch"] == 2
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert summary["final"]["test_accuracy"] == metrics["test_accuracy"][1] > 0.2
    assert metrics.loc[2, ["train_accuracy", "test_accuracy"]].isna().all()
    with np.load(run_dir / "weights.npz") as weights:
        assert all(np.isfinite(weights[k]).all() for k in weights.files)
    with np.load(run_dir / "checkpoint.npz") as checkpoint:
        assert int(checkpoint["epochs_done"]) == 2  # the last finite epoch's, for the record
    from mnist_exp.analysis.evaluate import evaluate_run
    assert evaluate_run(run_dir)["test_accuracy"] == pytest.approx(summary["final"]["test_accuracy"])
    assert "the weights of epoch 1, the last finite one" in (run_dir / "mnist_exp.log").read_text()


def test_a_run_diverged_in_its_first_epoch_keeps_no_weights(mnist_dir, tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli(["lr=50", "train_samples=100", "test_samples=50", "epochs=3", f"hydra.run.dir={run_dir}"],
                     cwd=tmp_path)
    assert result.returncode == 3
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["final"] is None and summary["best"] is None
    assert not (run_dir / "weights.npz").exists() and not (run_dir / "checkpoint.npz").exists()
    assert "no finite weights to keep" in (run_dir / "model_card.md").read_text()
