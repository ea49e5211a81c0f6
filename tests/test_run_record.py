"""The run record tells the truth: the kept model's numbers everywhere, per-class results, the
loss and data set named, names and tags, a loadable model."""

import dataclasses
import json
import re
import shutil
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from helpers import run_cli
from mnist_exp import load_model
from mnist_exp.analysis import compare, results
from mnist_exp.config import Config, DataConfig
from mnist_exp.data.datasets import load_dataset
from mnist_exp.runner.experiment import title
from mnist_exp.analysis.sweep_figures import setting_curves
from mnist_exp.runner.plots import accuracy_limits
from mnist_exp.record.metrics import EpochMetrics

SMALL = ["train_samples=500", "test_samples=300", "epochs=3"]
EARLY = ["train_samples=2000", "test_samples=500", "val_samples=500", "early_stopping=2", "batch_size=32",
         "lr=0.3", "loss=cross_entropy", "epochs=8"]


@pytest.fixture(scope="module")
def reference_run(mnist_dir, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("ref") / "run"
    result = run_cli([*SMALL, "name=baseline", "tags=[a,b]", f"hydra.run.dir={run_dir}"], cwd=run_dir.parent)
    assert result.returncode == 0, result.stderr
    return run_dir


@pytest.fixture(scope="module")
def early_run(mnist_dir, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("early") / "run"
    result = run_cli([*EARLY, f"hydra.run.dir={run_dir}"], cwd=run_dir.parent)
    assert result.returncode == 0, result.stderr
    return run_dir, result


def summary_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


@pytest.mark.slow
def test_the_model_card_names_the_loss_the_run_computed(reference_run, early_run):
    assert "MSE" not in (reference_run / "model_card.md").read_text()
    assert "loss per sample (squared error, summed over the 10 outputs)" in (reference_run / "model_card.md").read_text()
    assert "loss per sample (cross-entropy)" in (early_run[0] / "model_card.md").read_text()


def test_figure_titles_name_the_data_set_and_the_run():
    fashion = Config(data=DataConfig(name="fashion_mnist"), name="shirts")
    assert title(fashion).startswith("shirts: Fashion-MNIST MLP 784-100-10")
    assert title(Config()).startswith("MNIST MLP 784-100-10")
    assert title(Config(arch="cnn", channels=[16, 32])).startswith("MNIST CNN 5x5x16-pool2-5x5x32-pool2-128-10, ")


def test_titles_spell_values_as_the_configs_do():
    assert "biases=true" in title(Config(biases=True)) and "True" not in title(Config(biases=True))


@pytest.mark.slow
def test_the_console_shows_one_images_worth_of_accuracy(mnist_dir, tmp_path):
    """On 10,000 test images 0.9859 is not 0.986: four decimals; three on 1,000."""
    run_dir = tmp_path / "run"
    result = run_cli(["epochs=1", "train_samples=100", "test_samples=10000", f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    accuracy = json.loads((run_dir / "summary.json").read_text())["final"]["test_accuracy"]
    assert f"test accuracy {accuracy:.4f} (the weights of epoch 0)" in result.stdout
    assert re.search(r"train loss \S+ acc \d\.\d{3}  test loss \S+ acc \d\.\d{4} ", result.stdout), result.stdout


def test_the_accuracy_axis_is_zoomed_to_the_data():
    rows = [EpochMetrics(e, 0.1, 0.966 + e / 1000, 0.1, 0.97 + e / 1000, 0.1) for e in range(20)]
    low, high = accuracy_limits(rows, ["train", "test"])
    assert 0.9 < low < 0.966 and 0.989 < high <= 1.0


def test_curves_mark_the_epoch_early_stopping_kept(early_run):
    run_dir, result = early_run
    summary = summary_of(run_dir)
    kept, last = summary["final"], summary["last"]
    assert kept["epoch"] == summary["early_stopping"]["best_epoch"] != last["epoch"]
    assert f"test accuracy {kept['test_accuracy']:.3f} (the weights of epoch {kept['epoch']}, restored by " \
           f"early stopping; last epoch {last['epoch']}" in result.stdout
    runs = results.load_runs(run_dir)
    assert runs["final_epoch"].item() == kept["epoch"] and runs["final_test_accuracy"].item() == kept["test_accuracy"]
    evaluated = run_cli([str(run_dir)], cwd=run_dir.parent, module="mnist_exp.evaluate")
    assert f"test_accuracy={kept['test_accuracy']:.4f}" in evaluated.stdout
    assert matplotlib.image.imread(run_dir / "curves.png").shape[:2] == (506, 1210)


@pytest.mark.parametrize("which", ["reference", "early"])
def test_the_confusion_matrix_is_the_kept_weights_on_the_test_images(which, reference_run, early_run):
    run_dir = reference_run if which == "reference" else early_run[0]
    summary = summary_of(run_dir)
    matrix = pd.read_csv(run_dir / "confusion.csv", index_col="true")
    assert matrix.shape == (10, 10) and list(matrix.columns) == [str(d) for d in range(10)]
    assert matrix.to_numpy().sum() == summary["config"]["test_samples"]
    assert np.trace(matrix.to_numpy()) / matrix.to_numpy().sum() == pytest.approx(summary["final"]["test_accuracy"])
    per_class = summary["per_class"]
    assert per_class["count"] == {str(d): int(matrix.loc[d].sum()) for d in range(10)}
    assert per_class["accuracy"]["3"] == pytest.approx(matrix.loc[3, "3"] / matrix.loc[3].sum())
    for png in ("confusion.png", "misclassified.png"):
        assert (run_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    runs = results.load_runs(run_dir, per_class=True)
    assert runs["test_accuracy_3"].item() == pytest.approx(per_class["accuracy"]["3"])


@pytest.mark.parametrize("which", ["reference", "early"])
def test_load_model_predicts_what_evaluate_scores(which, reference_run, early_run, mnist_dir):
    run_dir = reference_run if which == "reference" else early_run[0]
    model = load_model(run_dir)
    data = load_dataset(model.config.data)
    n = model.config.test_samples
    images, labels = data.test_images[:n], data.test_labels[:n]
    accuracy = np.mean(model.predict(images) == labels)
    assert accuracy == pytest.approx(summary_of(run_dir)["final"]["test_accuracy"])
    as_squares = model.predict(images.reshape(n, 28, 28))
    as_floats = model.predict(images / 255.0)
    assert (as_squares == model.predict(images)).all() and (as_floats == model.predict(images)).all()
    proba = model.predict_proba(images)
    assert proba.shape == (n, 10) and np.allclose(proba.sum(axis=1), 1) and (proba.argmax(axis=1) == model.predict(images)).all()


@pytest.mark.slow
def test_evaluate_scores_an_interrupted_runs_checkpoint_and_refuses_zero_samples(reference_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(reference_run, run_dir)
    (run_dir / "weights.npz").unlink()
    result = run_cli([str(run_dir)], cwd=tmp_path, module="mnist_exp.evaluate")
    assert result.returncode == 0, result.stderr
    assert "scoring checkpoint.npz, the weights after epoch 2" in result.stderr
    assert f"test_accuracy={summary_of(run_dir)['final']['test_accuracy']:.4f}" in result.stdout
    assert re.search(r"per class: 0=\d\.\d{4}", result.stdout)
    zero = run_cli([str(run_dir), "--test-samples", "0"], cwd=tmp_path, module="mnist_exp.evaluate")
    assert zero.returncode == 2 and "--test-samples 0 is out of range" in zero.stderr


@pytest.mark.slow
def test_names_and_tags_reach_the_directory_summary_and_load_runs(mnist_dir, reference_run, tmp_path):
    summary = summary_of(reference_run)
    assert summary["name"] == "baseline" and summary["tags"] == ["a", "b"]
    runs = results.load_runs(reference_run)
    assert runs["name"].item() == "baseline" and runs["tags"].item() == "a,b"
    result = run_cli([*SMALL[:2], "epochs=1", "name=trial-7"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [p.name for p in (tmp_path / "outputs").glob("*/*")][0].endswith("_trial-7")
    bad = run_cli(["name=../x"], cwd=tmp_path)
    assert bad.returncode == 2 and "name='../x' is not a plain name" in bad.stderr


@pytest.mark.slow
def test_the_record_says_where_the_data_was_really_read(mnist_dir, tmp_path):
    empty = tmp_path / "empty-cache"
    run_dir = tmp_path / "run"
    result = run_cli([*SMALL[:2], "epochs=1", f"data.dir={empty}", f"data.fallback_dirs=[{mnist_dir}]",
                      f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = summary_of(run_dir)["data"]
    assert data["dir"] == str(mnist_dir.absolute())
    assert all(Path(p).parent == mnist_dir.absolute() for p in data["files"].values())


def test_comparisons_never_pool_different_data_sets(reference_run, tmp_path):
    for name in ("mnist", "fashion_mnist"):
        copy = tmp_path / name
        shutil.copytree(reference_run, copy)
        summary = summary_of(copy)
        summary["config"]["data"]["name"] = name
        (copy / "summary.json").write_text(json.dumps(summary))
    runs = results.load_runs(tmp_path)
    assert str(runs["data.name"].dtype) in ("string", "str") and set(runs["data.name"]) == {"mnist", "fashion_mnist"}
    table = compare.rank(runs)
    assert len(table) == 2 and "data.name" in compare.setting_keys(runs)


@pytest.mark.slow
def test_a_single_run_refused_before_it_started_leaves_nothing(tmp_path):
    for args in (["lr=-1"], ["hidden_size=1000000"], ["early_stopping=3"]):
        result = run_cli([*args, f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
        assert result.returncode == 2
        assert not (tmp_path / "run").exists()
    result = run_cli(["lr=-1"], cwd=tmp_path)
    assert result.returncode == 2 and not list((tmp_path / "outputs").glob("*/*"))


@pytest.mark.slow
def test_a_long_epoch_shows_a_progress_bar_only_on_a_terminal(reference_run, monkeypatch, tmp_path):
    import io

    from mnist_exp.nn import models as model_module
    from mnist_exp.data.datasets import split
    from mnist_exp.runner.networks import build

    data = load_dataset(load_model(reference_run).config.data)
    train_set = split(data.train_images, data.train_labels, 2000)
    monkeypatch.setattr(model_module, "PROGRESS_AFTER", 0.0)  # as if the epoch were long
    for cfg in (Config(batch_size=64, train_samples=2000, loss="cross_entropy"), Config(train_samples=2000)):
        network, quiet = build(cfg, np.random.default_rng(0)), build(cfg, np.random.default_rng(0))
        shown = io.StringIO()
        network.progress = shown  # the exact path (the second config) too
        assert network.fit_epoch(train_set, 0.01, np.random.default_rng(1)) == \
            quiet.fit_epoch(train_set, 0.01, np.random.default_rng(1))  # the bar changes no number
        assert "epoch:" in shown.getvalue() and "/2.00k" in shown.getvalue()  # the bar, over the epoch's images
    piped = run_cli(["batch_size=64", "train_samples=2000", "epochs=1", f"hydra.run.dir={tmp_path / 'run'}"],
                    cwd=tmp_path)
    assert piped.returncode == 0 and "img/s" not in piped.stderr and "%|" not in piped.stderr


def test_offline_the_error_says_what_to_set_and_leaves_no_lock_file(tmp_path, closed_port_url):
    cache = tmp_path / "empty"
    result = run_cli([f"data.dir={cache}", f"data.mirrors=[{closed_port_url}]", "data.retries=1",
                      f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    assert result.returncode == 2
    assert "offline, point data.dir (or MNIST_EXP_DATA_DIR) at a directory that holds the four files" in result.stderr
    assert list(cache.iterdir()) == []


@pytest.mark.slow
def test_matplotlibs_first_use_says_nothing_between_the_epoch_lines(mnist_dir, tmp_path):
    result = run_cli([*SMALL, f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path,
                     env={"MPLCONFIGDIR": str(tmp_path / "fresh-matplotlib")})  # no font cache yet
    assert result.returncode == 0, result.stderr
    assert "fontManager" not in result.stdout + result.stderr and "font cache" not in result.stdout + result.stderr
    assert (tmp_path / "fresh-matplotlib").is_dir()  # matplotlib did build its cache there


@pytest.mark.skipif(shutil.which("git") is None or not (Path(__file__).resolve().parents[1] / ".git").exists(),
                    reason="needs git and a checkout")
def test_what_the_tools_write_into_a_checkout_is_ignored_by_git():
    import subprocess

    written = ["optuna.db", "compare_runs.png", "outputs/2026-01-01/x/metrics.csv", "multirun/x/summary.csv"]
    checked = subprocess.run(["git", "check-ignore", *written], cwd=Path(__file__).resolve().parents[1],
                             capture_output=True, text=True)
    assert checked.stdout.split() == written, checked.stderr


@pytest.mark.slow
def test_a_model_card_describes_its_own_network_data_and_test_set(mnist_dir, tmp_path):
    """A CNN's card lists its conv arrays, not an MLP's; a full test set is not 'a small subset'."""
    run_dir = tmp_path / "cnn"
    result = run_cli(["arch=cnn", "channels=[4]", "dense_width=8", "epochs=1", "train_samples=64",
                      "test_samples=10000", f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    card = (run_dir / "model_card.md").read_text()
    with np.load(run_dir / "weights.npz") as saved:
        for name in saved.files:
            assert f"`{name}` {'x'.join(map(str, saved[name].shape))}" in card, name
    assert "batchnorm" not in card and "fully connected" not in card and "convolutional" in card
    assert "Small subsets" not in card and "All 10,000 test images were used" in card


def test_repeats_of_one_seed_are_not_pooled_as_several_seeds(reference_run, tmp_path):
    """Three runs of one setting and one seed: one seed, no ± (a spread of repeats says nothing)."""
    for i in range(3):
        shutil.copytree(reference_run, tmp_path / f"repeat{i}")
    table = compare.rank(results.load_runs(tmp_path))
    assert len(table) == 1 and table.loc[0, "runs"] == 3 and table.loc[0, "seeds"] == "884736743"
    assert "±" not in table.loc[0, "final_test_accuracy"]


def test_the_ranked_figure_finds_the_curves_of_integer_settings(reference_run, tmp_path):
    """hidden_size 50 and 200: the history reads them as floats (50.0) where the table has 200."""
    for size in (50, 200):
        copy = tmp_path / f"h{size}"
        shutil.copytree(reference_run, copy)
        summary = summary_of(copy)
        summary["config"]["hidden_size"] = size
        (copy / "summary.json").write_text(json.dumps(summary))
    runs = results.load_runs(tmp_path)
    history = results.load_history(tmp_path)
    history["hidden_size"] = history["hidden_size"].astype(float)  # as a column with a missing value is
    keys = compare.setting_keys(runs)
    curves = setting_curves(history, compare.rank(runs), keys)
    epochs = len(pd.read_csv(reference_run / "metrics.csv"))
    assert keys == ["hidden_size"] and [len(curve) for _, curve in curves] == [epochs, epochs]


def test_load_runs_lists_what_was_typed_for_a_single_run(reference_run):
    typed = results.load_runs(reference_run).loc[0, "overrides"].split()
    assert "name=baseline" in typed and "tags=[a,b]" in typed and not any(t.startswith("hydra.") for t in typed)


@pytest.mark.parametrize("settings", [{}, {"biases": True, "batch_size": 8}, {"batch_norm": True, "batch_size": 8},
                                      {"hidden_layers": 3, "hidden_size": 20, "batch_size": 8},
                                      {"arch": "cnn", "channels": [3, 5], "dense_width": 7, "batch_size": 8},
                                      {"arch": "cnn", "channels": [2], "pool": 1, "dense_width": 4, "biases": True,
                                       "batch_size": 8}])
def test_the_network_description_is_the_network_built(settings):
    """One description serves titles, cards and memory: its parameter count is the built model's."""
    from mnist_exp.runner.networks import build, network

    cfg = Config(**settings)
    arrays = build(cfg, np.random.default_rng(0)).arrays()
    assert network(cfg).parameters() == sum(a.size for a in arrays.values())
    assert network(cfg).short() in title(cfg) and network(cfg) == network(dataclasses.asdict(cfg))
