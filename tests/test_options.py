"""The training options beyond the walkthrough: exact gradients, and each option doing what it says."""

import gzip
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from helpers import data_config, run_cli
from mnist_exp.nn import mlp, reference
from mnist_exp.nn.layers import EpochBits, Training, dropout_mask
from mnist_exp.nn.losses import loss_and_grad
from mnist_exp.nn.stack import Param
from mnist_exp.config import CONF_DIR
from mnist_exp.config import Config, DataConfig, validate
from mnist_exp.data.datasets import Split, load_dataset, split
from mnist_exp.errors import ConfigError
from mnist_exp.nn.models import NetworkModel, ReferenceModel
from mnist_exp.runner.networks import build, is_reference, options
from mnist_exp.nn.optim import Optimizer, lr_at
from mnist_exp.record.metrics import EpochMetrics
from mnist_exp.runner.train import EarlyStopping, train

SIZES = [12, 7, 5, 4]


def small_batch(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, SIZES[0])), np.eye(SIZES[-1])[rng.integers(0, SIZES[-1], n)]


def objective(stack, x, y, opts, seed):
    out = stack.forward(x, Training(np.random.default_rng(seed)))  # same masks every call
    total, dout = loss_and_grad(out, y, opts.loss)
    scale = 0.5 if opts.loss == "sse" else 1.0  # sse's objective is half the reported loss
    return scale * total / len(x), dout


def trained_arrays(stack):
    return {f"{layer.name}/{name}": array for layer in stack.layers for name, array in layer.params.items()}


@pytest.mark.parametrize("loss", ["sse", "cross_entropy"])
@pytest.mark.parametrize("biases", [False, True])
@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("dropout", [0.0, 0.5, 0.3])
def test_gradients_match_finite_differences(loss, biases, batch_norm, layers, dropout):
    sizes = SIZES[:1] + SIZES[1:1 + layers] + SIZES[-1:]
    opts = mlp.Options(biases=biases, batch_norm=batch_norm, dropout=dropout, relu_derivative="correct", loss=loss)
    stack = mlp.build(np.random.default_rng(1), sizes, "he", opts)
    params = trained_arrays(stack)  # the layers' own arrays: changing them changes the network
    if batch_norm:  # non-trivial scale and shift
        for k in params:
            if k.endswith(("/gamma", "/beta")):
                params[k] += np.random.default_rng(2).normal(0, 0.3, params[k].shape)
    x, y = small_batch()
    _, dout = objective(stack, x, y, opts, seed=3)
    stack.backward(dout)
    grads = {p.key: p.grad.copy() for p in stack.parameters()}
    assert set(grads) == set(params)  # every trained array has its gradient
    eps = 1e-6
    for name, grad in grads.items():
        numeric = np.zeros_like(grad)
        for index in np.ndindex(grad.shape):
            original = params[name][index]
            params[name][index] = original + eps
            plus = objective(stack, x, y, opts, seed=3)[0]
            params[name][index] = original - eps
            minus = objective(stack, x, y, opts, seed=3)[0]
            params[name][index] = original
            numeric[index] = (plus - minus) / (2 * eps)
        np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-7, err_msg=name)


def reference_config(**changes) -> Config:
    return Config(**changes)


def real_splits(mnist_dir, n_train=500, n_test=300, dtype=np.float64, val=0):
    dataset = load_dataset(compose_config([f"data.dir={mnist_dir}"]).data)
    parts = [split(dataset.train_images, dataset.train_labels, n_train, dtype=dtype),
             split(dataset.test_images, dataset.test_labels, n_test, dtype=dtype)]
    if val:
        parts.append(split(dataset.train_images, dataset.train_labels, val, n_train, dtype))
    return parts


def compose_config(overrides) -> Config:
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return OmegaConf.to_object(compose("config", overrides=overrides))


def test_general_network_with_reference_options_follows_the_exact_path(mnist_dir):
    train_set, _ = real_splits(mnist_dir, n_train=200)
    ref_rng, gen_rng = np.random.default_rng(5), np.random.default_rng(5)
    exact = ReferenceModel(reference.init_weights(ref_rng, 30))
    cfg = Config(hidden_size=30)
    general = NetworkModel(mlp.build(gen_rng, [784, 30, 10], "reference", options(cfg)), options(cfg),
                       Optimizer("sgd"), batch_size=1)
    for _ in range(2):
        ours = general.fit_epoch(train_set, 0.005, gen_rng)
        theirs = exact.fit_epoch(train_set, 0.005, ref_rng)
        np.testing.assert_allclose(ours, theirs, rtol=1e-9)
    np.testing.assert_allclose(general.arrays()["dense1/w"], exact.weights.w1, rtol=1e-9, atol=1e-12)
    assert gen_rng.random() == ref_rng.random()  # the same draws, in the same order


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", ["sgd", "momentum"])
def test_mini_batches_gathered_from_bytes_train_as_from_floats(mnist_dir, dtype, optimizer):
    """From the bytes, plain SGD leaves out the pixels blank in every training image, whose rows
    of W1 get no gradient: the same training but for the order of sums. Momentum keeps them all."""
    train_set, _ = real_splits(mnist_dir, n_train=300, dtype=np.dtype(dtype))
    blank = ~train_set.pixels.any(axis=0)
    assert 67 < np.count_nonzero(blank) < 784  # more than the 67 blank in all 60,000 images
    cfg = Config(batch_size=32, lr=0.1, dtype=dtype, optimizer=optimizer)
    initial = build(cfg, np.random.default_rng(3)).arrays()["dense1/w"]
    results = []
    for data in (train_set, Split(train_set.x, train_set.y)):  # the second has no bytes to gather
        rng = np.random.default_rng(3)
        model = build(cfg, rng)
        results.append([model.fit_epoch(data, 0.1, rng) for _ in range(2)] + [model.arrays()["dense1/w"]])
    (bytes_fits, bytes_w1), (floats_fits, floats_w1) = (([r[0], r[1]], r[2]) for r in results)
    assert bytes_w1.shape == (784, 100)
    if optimizer == "momentum":
        assert bytes_fits == floats_fits
        np.testing.assert_array_equal(bytes_w1, floats_w1)
        return
    rtol = 1e-4 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(bytes_fits, floats_fits, rtol=rtol)
    np.testing.assert_allclose(bytes_w1, floats_w1, rtol=rtol, atol=rtol * 1e-2)
    assert not np.array_equal(bytes_w1, floats_w1)  # the sums did run in another order
    np.testing.assert_array_equal(bytes_w1[blank], initial[blank])
    np.testing.assert_array_equal(floats_w1[blank], initial[blank])


@pytest.mark.parametrize("layers, biases, batch_norm, derivative", [(1, False, False, "reference"),
                                                                   (2, True, False, "correct"),
                                                                   (2, False, True, "reference")])
def test_sgd_steps_taken_inside_backward_equal_gradients_then_step(layers, biases, batch_norm, derivative):
    """With descend, backward updates each weight matrix itself (after using it for the layer
    below); the result is plain SGD's step on the gradients backward would have returned."""
    opts = mlp.Options(biases=biases, batch_norm=batch_norm, relu_derivative=derivative)
    sizes = SIZES[:1] + SIZES[1:1 + layers] + SIZES[-1:]
    x, y = small_batch(n=8)
    results = []
    for descend in (False, True):
        stack = mlp.build(np.random.default_rng(1), sizes, "he", opts)
        out = stack.forward(x, Training(np.random.default_rng(2), descend=descend))
        _, dout = loss_and_grad(out, y, opts.loss)
        dout *= 0.1
        stack.backward(dout)
        assert not descend or not any(p.key.endswith("/w") for p in stack.parameters())
        Optimizer("sgd").step(stack.parameters(), 0.1, lr_applied=True)
        results.append(stack.arrays())
    plain, descended = results
    initial = mlp.build(np.random.default_rng(1), sizes, "he", opts).arrays()
    for name in plain:
        np.testing.assert_allclose(descended[name], plain[name], rtol=1e-12, atol=1e-15, err_msg=name)
        assert not name.endswith("/w") or not np.allclose(descended[name], initial[name])  # a real step


def fit(cfg: Config, splits, epochs=3, seed=0):
    rng = np.random.default_rng(seed)
    model = build(cfg, rng)
    rows = list(train(model, splits[0], splits[1], lambda e: cfg.lr, epochs, rng))
    return model, rows


def test_mini_batches_learn_and_reshuffle_from_the_seed(mnist_dir):
    splits = real_splits(mnist_dir)
    cfg = Config(batch_size=32, lr=0.1)
    assert not is_reference(cfg)
    model, rows = fit(cfg, splits)
    assert rows[-1].test_accuracy > 0.55 and rows[-1].train_loss < rows[0].train_loss
    again = fit(cfg, splits)[1]
    other_seed = fit(cfg, splits, seed=1)[1]
    assert [r.train_loss for r in again] == [r.train_loss for r in rows]
    assert [r.train_loss for r in other_seed] != [r.train_loss for r in rows]


@pytest.mark.parametrize("changes", [dict(optimizer="adam", lr=0.001), dict(optimizer="momentum", lr=0.02),
                                     dict(loss="cross_entropy", lr=0.1), dict(hidden_layers=2, lr=0.05),
                                     dict(batch_norm=True, lr=0.05), dict(init="he", biases=True, lr=0.05),
                                     dict(init="xavier", lr=0.05), dict(weight_decay=0.01, lr=0.1),
                                     dict(relu_derivative="correct", lr=0.1), dict(dropout=0.0, lr=0.1)])
def test_each_option_changes_training_and_still_learns(mnist_dir, changes):
    splits = real_splits(mnist_dir)
    base = Config(batch_size=16, lr=changes.get("lr", 0.1))
    _, base_rows = fit(base, splits)
    _, rows = fit(Config(batch_size=16, **changes), splits)
    assert [r.train_loss for r in rows] != [r.train_loss for r in base_rows]
    assert rows[-1].train_loss < rows[0].train_loss and rows[-1].test_accuracy > 0.4, rows  # chance is 0.1


def test_adam_differs_from_sgd_at_the_same_learning_rate(mnist_dir):
    splits = real_splits(mnist_dir)
    sgd = fit(Config(batch_size=32, lr=0.001), splits)[1]
    adam = fit(Config(batch_size=32, lr=0.001, optimizer="adam"), splits)[1]
    assert adam[-1].test_accuracy > sgd[-1].test_accuracy + 0.1  # sgd barely moves at this lr


def test_weight_decay_adds_to_the_gradient_of_weights_only():
    w, b = np.ones((2, 2)), np.ones(2)
    Optimizer("sgd", weight_decay=0.1).step([Param("dense1/w", w, np.full((2, 2), 0.5), True),
                                             Param("dense1/b", b, np.full(2, 0.5), False)], lr=0.2)
    np.testing.assert_allclose(w, 1 - 0.2 * (0.5 + 0.1))
    np.testing.assert_allclose(b, 1 - 0.2 * 0.5)


def test_plain_sgd_takes_its_learning_rate_in_the_gradient_and_others_refuse():
    before, after = np.ones((2, 2)), np.ones((2, 2))
    Optimizer("sgd").step([Param("dense1/w", before, np.full((2, 2), 0.5), True)], lr=0.25)
    Optimizer("sgd").step([Param("dense1/w", after, np.full((2, 2), 0.125), True)], lr=0.25, lr_applied=True)
    np.testing.assert_array_equal(before, after)
    for optimizer in (Optimizer("adam"), Optimizer("momentum"), Optimizer("sgd", weight_decay=0.1)):
        assert not optimizer.plain
        with pytest.raises(ValueError):
            optimizer.step([Param("dense1/w", after, np.ones((2, 2)), True)], lr=0.1, lr_applied=True)


def test_learning_rate_schedules():
    assert [lr_at(e, 1.0, "constant", 10) for e in (0, 9)] == [1.0, 1.0]
    assert [lr_at(e, 1.0, "step", 30, step=10, decay=0.5) for e in (0, 9, 10, 25)] == [1, 1, 0.5, 0.25]
    cosine = [lr_at(e, 1.0, "cosine", 4) for e in range(4)]
    np.testing.assert_allclose(cosine, [1.0, 0.8535534, 0.5, 0.1464466], rtol=1e-6)


def test_init_schemes_have_their_documented_spread():
    opts = mlp.Options()
    rng = np.random.default_rng(0)
    he = mlp.build(rng, [784, 400, 10], "he", opts).arrays()["dense1/w"]
    xavier = mlp.build(rng, [784, 400, 10], "xavier", opts).arrays()["dense1/w"]
    assert he.std() == pytest.approx(np.sqrt(2 / 784), rel=0.02)
    assert np.abs(xavier).max() <= np.sqrt(6 / (784 + 400))
    assert xavier.std() == pytest.approx(np.sqrt(6 / 1184) / np.sqrt(3), rel=0.02)


def test_float32_trains_in_float32(mnist_dir):
    splits = real_splits(mnist_dir, dtype=np.float32)
    model, rows = fit(Config(batch_size=32, lr=0.1, dtype="float32"), splits)
    assert all(p.dtype == np.float32 for p in model.arrays().values())
    assert rows[-1].test_accuracy > 0.55


def test_an_epochs_dropout_bits_are_one_draw_taken_batch_by_batch():
    bits = EpochBits(np.random.default_rng(4), [12, 5, 16])
    raw = np.unpackbits(np.frombuffer(np.random.default_rng(4).bytes(2 + 1 + 2), np.uint8))
    np.testing.assert_array_equal(bits.take(12), raw[:12])  # each take starts on a byte
    np.testing.assert_array_equal(bits.take(5), raw[16:21])
    np.testing.assert_array_equal(bits.take(16), raw[24:40])
    mask, scale = dropout_mask(None, (4, 250), 0.5, EpochBits(np.random.default_rng(0), [1000]))
    assert scale == 2.0 and mask.shape == (4, 250) and 0.4 < mask.mean() < 0.6


def test_no_dropout_draws_nothing_while_training(mnist_dir):
    splits = real_splits(mnist_dir, n_train=50)
    rng = np.random.default_rng(0)
    model = build(Config(dropout=0.0), rng)
    state = rng.bit_generator.state
    model.fit_epoch(splits[0], 0.005, rng)
    assert rng.bit_generator.state == state  # batch_size=1: no shuffle, no masks


def test_batch_norm_evaluates_with_running_statistics(mnist_dir):
    splits = real_splits(mnist_dir)
    model, _ = fit(Config(batch_size=32, lr=0.05, batch_norm=True), splits, epochs=1)
    arrays = model.arrays()
    assert not np.allclose(arrays["batchnorm1/mean"], 0) and not np.allclose(arrays["batchnorm1/var"], 1)
    first = model.evaluate(splits[1])
    assert model.evaluate(splits[1]) == first  # evaluation changes nothing


def test_early_stopping_stops_and_restores_the_best_weights(mnist_dir):
    train_set, test_set, val_set = real_splits(mnist_dir, n_train=200, val=200)
    # 200 training images, no dropout, a high lr: the validation loss soon rises
    cfg = Config(batch_size=8, lr=0.3, loss="cross_entropy", dropout=0.0, val_samples=200, early_stopping=2)
    rng = np.random.default_rng(0)
    model = build(cfg, rng)
    stopper = EarlyStopping(2)
    rows = list(train(model, train_set, test_set, lambda e: cfg.lr, 40, rng, val_set=val_set, stopper=stopper))
    assert len(rows) < 40 and stopper.stop
    best = min(rows, key=lambda r: r.val_loss)
    assert stopper.best_epoch == best.epoch and rows[-1].epoch == best.epoch + 2
    stopper.restore_best(model)
    assert model.evaluate(val_set)[0] == pytest.approx(best.val_loss)
    assert model.evaluate(test_set)[1] == best.test_accuracy


def test_early_stopping_counts_epochs_without_improvement():
    class Model:
        def arrays(self):
            return {"dense1/w": np.zeros(1)}

    stopper = EarlyStopping(2)
    for epoch, val_loss in enumerate([1.0, 0.8, 0.9, 0.7, 0.75, 0.71]):
        stopper.update(EpochMetrics(epoch, 1, 1, 1, 1, 1, val_loss, 0.5), Model())
    assert stopper.best_epoch == 3 and stopper.bad_epochs == 2 and stopper.stop


@pytest.mark.parametrize("changes, message", [
    (dict(loss="mse"), "loss=mse is not an option: loss must be one of sse, cross_entropy"),
    (dict(optimizer="rmsprop"), "optimizer must be one of sgd, momentum, adam"),
    (dict(dropout=1.0), "dropout=1.0 is out of range"),
    (dict(batch_size=0), "batch_size=0 is out of range"),
    (dict(early_stopping=3), "early_stopping needs a validation split"),
    (dict(batch_norm=True), "batch_norm needs batch statistics"),
    (dict(train_samples=59000, val_samples=2000), "train_samples + val_samples = 61000 is out of range"),
    (dict(dtype="float16"), "dtype must be one of float64, float32"),
])
def test_bad_option_values_are_refused(changes, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate(Config(data=DataConfig(mirrors=["http://x/"]), **changes))


CONF = Path(CONF_DIR)
GROUP_FILES = sorted(f"{p.parent.name}={p.stem}" for group in ("data", "experiment") for p in (CONF / group).glob("*.yaml"))


def test_the_group_files_are_all_found():
    assert {"data=mnist", "data=fashion_mnist", "experiment=tutorial", "experiment=best_mlp"} <= set(GROUP_FILES)


@pytest.mark.parametrize("override", GROUP_FILES)
def test_every_config_file_composes_and_validates(override):
    cfg = compose_config([override])
    validate(cfg)
    if override == "experiment=tutorial":
        assert cfg == compose_config([])  # the tutorial preset is the default


@pytest.mark.parametrize("search", sorted(p.stem for p in (CONF / "search").glob("*.yaml")))
def test_every_search_file_composes(search):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=[f"+search={search}"], return_hydra_config=True)
    assert cfg.hydra.sweeper.direction == "maximize"
    assert set(cfg.hydra.sweeper.params) == {"lr", "hidden_size"}


def test_best_mlp_preset_is_a_98_percent_setting():
    cfg = compose_config(["experiment=best_mlp"])
    assert (cfg.train_samples, cfg.test_samples) == (60000, 10000)
    assert not is_reference(cfg) and cfg.dtype == "float32"


ADAM = ["batch_size=32", "optimizer=adam", "lr=0.002", "loss=cross_entropy", "biases=true", "init=he",
        "train_samples=600", "test_samples=200", "val_samples=200", "early_stopping=3"]


@pytest.mark.slow
def test_options_run_end_to_end_with_validation_columns_and_exact_resume(mnist_dir, tmp_path):
    whole, part = tmp_path / "whole", tmp_path / "part"
    assert run_cli([*ADAM, "epochs=4", f"hydra.run.dir={whole}"], cwd=tmp_path).returncode == 0
    assert run_cli([*ADAM, "epochs=2", f"hydra.run.dir={part}"], cwd=tmp_path).returncode == 0
    result = run_cli([f"resume={part}", "epochs=4", f"hydra.run.dir={tmp_path / 'extended'}"], cwd=tmp_path)
    part = tmp_path / "extended"  # a completed run's extension is a new run
    assert result.returncode == 0, result.stderr
    expected = pd.read_csv(whole / "metrics.csv")
    assert list(expected.columns[-2:]) == ["val_loss", "val_accuracy"]
    pd.testing.assert_frame_equal(pd.read_csv(part / "metrics.csv").drop(columns="seconds"),
                                  expected.drop(columns="seconds"))  # Adam's state and the best weights resume too
    summary = json.loads((whole / "summary.json").read_text())
    best = summary["early_stopping"]["best_epoch"]
    assert summary["early_stopping"]["restored_metrics"]["test_accuracy"] == expected["test_accuracy"][best]
    evaluated = run_cli([str(whole)], cwd=tmp_path, module="mnist_exp.evaluate")
    assert f"test_accuracy={expected['test_accuracy'][best]:.4f}" in evaluated.stdout  # best weights restored
    assert "batch_size=32" in (whole / "model_card.md").read_text()


@pytest.mark.slow
def test_best_mlp_preset_runs_as_a_short_smoke_run(mnist_dir, tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli(["experiment=best_mlp", "epochs=1", "train_samples=3000", "test_samples=1000",
                      f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert pd.read_csv(run_dir / "metrics.csv")["test_accuracy"].iloc[-1] > 0.85
    with np.load(run_dir / "weights.npz", allow_pickle=False) as saved:
        assert sorted(saved.files) == ["dense1/b", "dense1/w", "dense2/b", "dense2/w", "dense3/b", "dense3/w"]
        assert saved["dense1/w"].dtype == np.float32 and saved["dense1/w"].shape == (784, 512)


def test_fallback_dirs_are_read_without_any_download(tmp_path, tiny_files, server):
    fallback = tmp_path / "distribution-package"
    fallback.mkdir()
    for name, raw in tiny_files.values():
        (fallback / f"{name}.gz").write_bytes(gzip.compress(raw))
    cfg = data_config(tiny_files, tmp_path / "empty-cache", [server.url])
    cfg.fallback_dirs = [str(fallback)]
    assert load_dataset(cfg).train_images.shape == (50, 784)
    assert server.requests == [] and not (tmp_path / "empty-cache").exists()


FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.slow
@pytest.mark.skipif(not FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed "
                    "(apt-get install dataset-fashion-mnist); .ci/run installs it")
def test_fashion_mnist_runs_offline_from_the_debian_package(tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli(["data=fashion_mnist", "epochs=2", f"data.dir={tmp_path / 'cache'}", "data.mirrors=[http://127.0.0.1:9/]",
                      f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["data"]["checksums"]["train-images-idx3-ubyte"] == "f4a8712d7a061bf5bd6d2ca38dc4d50a"
    assert summary["final"]["test_accuracy"] > 0.5
    card = (run_dir / "model_card.md").read_text()
    assert "Fashion-MNIST" in card and "handwriting" not in card  # the card speaks of this data set


@pytest.mark.parametrize("dtype, weight_decay", [(np.float32, 0.0), (np.float64, 0.01)])
def test_adam_in_place_takes_the_textbook_step_to_the_bit(dtype, weight_decay):
    """m += (1-b1)(g-m); v += (1-b2)(g²-v); p -= lr m̂/(sqrt(v̂)+eps), transcribed plainly, over
    five steps; the state arrays are made once and updated in place."""
    from mnist_exp.nn.optim import ADAM_BETAS, ADAM_EPS

    rng = np.random.default_rng(3)
    params = {"dense1/w": rng.standard_normal((20, 7)).astype(dtype), "dense1/b": rng.standard_normal(7).astype(dtype)}
    plain = {k: v.copy() for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in plain.items()}
    v2 = {k: np.zeros_like(v) for k, v in plain.items()}
    adam = Optimizer("adam", weight_decay=weight_decay)
    b1, b2 = ADAM_BETAS
    for t in range(1, 6):
        grads = {k: rng.standard_normal(v.shape).astype(dtype) for k, v in params.items()}
        adam.step([Param(k, params[k], g.copy(), k.endswith("/w")) for k, g in grads.items()], 0.01)
        if t == 1:
            first = {k: id(a) for k, a in adam.state.items()}
        for k, g in grads.items():
            if weight_decay and k.endswith("/w"):
                g = g + weight_decay * plain[k]
            m[k] = m[k] + (1 - b1) * (g - m[k])
            v2[k] = v2[k] + (1 - b2) * (g * g - v2[k])
            plain[k] = plain[k] - 0.01 * (m[k] / (1 - b1 ** float(t))) / (np.sqrt(v2[k] / (1 - b2 ** float(t))) + ADAM_EPS)
    for k in params:
        np.testing.assert_array_equal(params[k], plain[k])
        np.testing.assert_array_equal(adam.state[f"m/{k}"], m[k])
    assert {k: id(a) for k, a in adam.state.items() if k != "t"} == {k: i for k, i in first.items() if k != "t"}


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_adam_over_one_flat_buffer_takes_the_textbook_step_to_the_bit(weight_decay):
    """Parameters packed into one buffer (Stack.pack), more values than one chunk of the flat step,
    some gradients written in place in the packed gradient buffer and some not: the numbers of
    Adam array by array, to the bit, and the state's arrays are views that are saved and reloaded."""
    from mnist_exp.nn.optim import ADAM_CHUNK
    from mnist_exp.nn.stack import flat_base

    rng = np.random.default_rng(4)
    shapes = {"dense1/w": (300, 150), "dense1/b": (150,), "dense2/w": (150, 10)}
    assert sum(np.prod(s) for s in shapes.values()) > ADAM_CHUNK
    start = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    flat = np.concatenate([a.ravel() for a in start.values()])
    packed, at = {}, 0
    for k, a in start.items():
        packed[k] = flat[at:at + a.size].reshape(a.shape)
        at += a.size
    grad_flat = np.empty_like(flat)
    plain = {k: a.copy() for k, a in start.items()}
    fast, slow = Optimizer("adam", weight_decay=weight_decay), Optimizer("adam", weight_decay=weight_decay)
    for t in range(4):
        grads = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
        grad_flat[:] = np.concatenate([g.ravel() for g in grads.values()])
        in_place = [grad_flat[:grads["dense1/w"].size].reshape(shapes["dense1/w"])]  # as Dense writes it
        fast.step([Param("dense1/w", packed["dense1/w"], in_place[0], True)]
                  + [Param(k, packed[k], grads[k].copy(), k.endswith("/w")) for k in ("dense1/b", "dense2/w")], 0.01)
        slow.step([Param(k, plain[k], grads[k].copy(), k.endswith("/w")) for k in shapes], 0.01)
        if t == 1:  # a resume: the state is replaced by loaded copies, and the flat step takes them up
            fast.state = {k: np.array(v) for k, v in fast.state.items()}
    assert flat_base(list(packed.values())) is flat
    for k in shapes:
        np.testing.assert_array_equal(packed[k], plain[k], err_msg=k)
        np.testing.assert_array_equal(fast.state[f"m/{k}"], slow.state[f"m/{k}"])
        np.testing.assert_array_equal(fast.state[f"v/{k}"], slow.state[f"v/{k}"])


def test_adam_runs_over_one_flat_buffer_and_a_resume_continues_to_the_bit():
    """fit_epoch with Adam packs the network's arrays into one buffer (the same numbers as
    unpacked); a model restored from its state continues with exactly the numbers of the first."""
    from mnist_exp.nn.stack import Stack, flat_base
    from mnist_exp.runner.networks import restore

    cfg = Config(hidden_size=16, hidden_layers=2, batch_size=8, optimizer="adam", biases=True, dtype="float32",
                 loss="cross_entropy", dropout=0.2, relu_derivative="correct", init="he", train_samples=40)
    rng = np.random.default_rng(0)
    data = Split(rng.random((40, 784), np.float32), np.eye(10, dtype=np.float32)[rng.integers(0, 10, 40)])
    models = []
    for pack in (True, False):
        rng = np.random.default_rng(1)
        model = build(cfg, rng)
        if not pack:
            model.stack.pack = lambda: None
        fits = [model.fit_epoch(data, 1e-3, rng) for _ in range(2)]
        models.append((model, fits, rng))
    (packed, fits, rng), (unpacked, fits_unpacked, _) = models
    assert fits == fits_unpacked
    assert flat_base([a for k, a in packed.arrays().items()]) is not None
    state = lambda model: {**model.arrays(), **{f"opt/{k}": v for k, v in model.optimizer_state().items()}}  # noqa: E731
    for k, a in state(unpacked).items():
        np.testing.assert_array_equal(state(packed)[k], a, err_msg=k)
    resumed = restore(cfg, {k: np.array(v) for k, v in packed.arrays().items()},
                      optimizer_state={k: np.array(v) for k, v in packed.optimizer_state().items()})
    generators = [np.random.default_rng() for _ in range(2)]
    for g in generators:
        g.bit_generator.state = rng.bit_generator.state
    assert resumed.fit_epoch(data, 1e-3, generators[0]) == packed.fit_epoch(data, 1e-3, generators[1])
    for k, a in state(packed).items():
        np.testing.assert_array_equal(state(resumed)[k], a, err_msg=k)


@pytest.mark.parametrize("changes", [dict(optimizer="sgd", lr=0.1), dict(optimizer="adam", hidden_size=300, hidden_layers=2),
                                     dict(optimizer="momentum", dropout=0.5)])
def test_a_mini_batch_epoch_has_the_same_numbers_whatever_the_blas_threads(changes):
    """float32 mini-batches of an MLP (whole, on one BLAS thread whatever the threads allowed): the
    numbers of one BLAS thread, of two and of four, to the bit."""
    from threadpoolctl import threadpool_limits

    cfg = Config(batch_size=32, dtype="float32", loss="cross_entropy", relu_derivative="correct", biases=True,
                 init="he", train_samples=96, **{"lr": 1e-3, "dropout": 0.2, **changes})
    rng = np.random.default_rng(0)
    data = Split(rng.random((96, 784), np.float32), np.eye(10, dtype=np.float32)[rng.integers(0, 10, 96)])
    results = []
    for threads in (1, 2, 4):
        with threadpool_limits(threads, "blas"):
            rng = np.random.default_rng(1)
            model = build(cfg, rng)
            results.append(([model.fit_epoch(data, cfg.lr, rng) for _ in range(2)], model.arrays()))
    for fits, arrays in results[1:]:
        assert fits == results[0][0]
        for key, array in arrays.items():
            np.testing.assert_array_equal(array, results[0][1][key], err_msg=key)
