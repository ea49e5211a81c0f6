"""arch=cnn through the whole product: config, runs, resume, records, results, load_model, sweeps."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from helpers import run_cli
from mnist_exp.config import Config, validate
from mnist_exp.errors import ConfigError
from mnist_exp.runner import memory

SMALL = ["arch=cnn", "channels=[4,8]", "dense_width=16", "batch_size=32", "lr=0.003", "train_samples=300", "test_samples=200", "val_samples=100",
         "early_stopping=3"]


@pytest.mark.slow
def test_a_cnn_run_resumes_to_the_same_numbers_and_its_record_knows_the_network(mnist_dir, tmp_path):
    whole, part = tmp_path / "whole", tmp_path / "part"
    assert run_cli([*SMALL, "epochs=3", f"hydra.run.dir={whole}"], cwd=tmp_path).returncode == 0
    first = run_cli([*SMALL, "epochs=2", f"hydra.run.dir={part}"], cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "arch=cnn channels=[4, 8] kernel_size=5 pool=2 dense_width=16" in first.stdout
    resumed = run_cli([f"resume={part}", "epochs=3", f"hydra.run.dir={tmp_path / 'extended'}"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    part = tmp_path / "extended"  # a completed run's extension is a new run
    expected = pd.read_csv(whole / "metrics.csv").drop(columns="seconds")
    pd.testing.assert_frame_equal(pd.read_csv(part / "metrics.csv").drop(columns="seconds"), expected)
    assert expected["test_accuracy"].iloc[-1] > 0.5  # 300 images, 3 epochs: far above chance
    with np.load(whole / "weights.npz", allow_pickle=False) as saved:
        shapes = {k: saved[k].shape for k in saved.files}
    assert shapes == {"conv1/w": (5, 5, 1, 4), "conv1/b": (4,), "conv2/w": (5, 5, 4, 8), "conv2/b": (8,),
                      "dense1/w": (7 * 7 * 8, 16), "dense1/b": (16,), "dense2/w": (16, 10), "dense2/b": (10,)}
    card = (whole / "model_card.md").read_text()
    assert "5x5 convolution to 4 channels, 2x2 max pooling, ReLU; 5x5 convolution to 8 channels" in card
    summary = json.loads((whole / "summary.json").read_text())
    assert summary["config"]["arch"] == "cnn" and summary["config"]["channels"] == [4, 8]
    evaluated = run_cli([str(whole), "--test-samples", "200"], cwd=tmp_path, module="mnist_exp.evaluate")
    assert f"test_accuracy={summary['final']['test_accuracy']:.4f}" in evaluated.stdout, evaluated.stderr
    from mnist_exp import load_model, results

    model = load_model(whole)
    images = np.random.default_rng(0).integers(0, 256, (700, 28, 28), dtype=np.uint8)  # two evaluation chunks
    scores = model.predict_proba(images)
    assert scores.shape == (700, 10) and np.allclose(scores.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(model.predict(images), scores.argmax(axis=1))
    runs = results.load_runs([whole, part])
    assert runs["arch"].tolist() == ["cnn", "cnn"] and runs["channels"].tolist() == ["4,8", "4,8"]
    assert runs["kernel_size"].dtype.kind == "i" and runs["dense_width"].tolist() == [16, 16]


BAD = [
    ({"channels": []}, "channels=[] is out of range: channels must be a list of 1 to 4 integers"),
    ({"channels": [0, 8]}, "channels=[0, 8] is out of range"),
    ({"channels": [4, 8, 8, 8, 8]}, "channels=[4, 8, 8, 8, 8] is out of range"),
    ({"kernel_size": 4}, "kernel_size=4 is out of range: kernel_size must be an odd integer from 1 to 27"),
    ({"pool": 0}, "pool=0 is out of range"),
    ({"pool": 4, "channels": [4, 4, 4]}, "pool=4 with 3 convolutions leaves no pixel"),
    ({"dense_width": 0}, "dense_width=0 is out of range"),
    ({"batch_norm": True}, "batch_norm=True is for arch=mlp: the cnn takes batch_norm=false"),
    ({"relu_derivative": "reference"}, "relu_derivative=reference is for arch=mlp"),
]


@pytest.fixture(scope="module")
def cnn_config() -> Config:
    from test_options import compose_config

    return validate(compose_config(["arch=cnn"]))  # passes as composed


@pytest.mark.parametrize("changes, message", BAD)
def test_bad_cnn_settings_are_refused_naming_the_key(changes, message, cnn_config):
    with pytest.raises(ConfigError) as info:
        validate(dataclasses.replace(cnn_config, **changes))
    assert message in str(info.value)


@pytest.mark.parametrize("override, message", [(["kernel_size=4"], "kernel_size=4 is out of range"),
                                               (["channels=16"], "channels"),
                                               (["batch_norm=true"], "batch_norm=True is for arch=mlp")])
def test_bad_cnn_settings_on_the_command_line_are_one_line_with_exit_2(override, message, tmp_path):
    result = run_cli(["arch=cnn", *override, f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "run").exists()


def test_other_spellings_of_the_arch_override(tmp_path):
    unknown = run_cli(["arch=rnn"], cwd=tmp_path)
    assert unknown.returncode == 2 and "arch" in unknown.stderr and "Traceback" not in unknown.stderr
    forced = run_cli(["++arch=cnn", f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)  # Hydra's own refusal
    assert forced.returncode == 2 and "force-add of config groups is not supported: '++arch=cnn'" in forced.stderr
    assert not (tmp_path / "run").exists()
    job = run_cli(["arch=cnn", "lr=0.01", "channels=[8]", "--cfg", "job"], cwd=tmp_path)
    assert job.returncode == 0, job.stderr
    assert "lr: 0.01" in job.stdout and "batch_size: 128" in job.stdout and "- 8\n" in job.stdout


def test_the_memory_estimate_counts_the_convolutions():
    small = Config(arch="cnn", batch_size=128, dtype="float32", train_samples=60000, test_samples=10000)
    wide = Config(arch="cnn", batch_size=60000, channels=[1024, 1024], train_samples=60000)
    assert 300 * 2**20 < memory.estimate(small) < 2**30  # best_cnn's run peaks at ~0.5 GB (max RSS)
    assert memory.estimate(wide) > 2**40
    with pytest.raises(Exception, match=r"channels=\[1024, 1024\], kernel_size=5, dense_width=128, batch_size=60000"):
        memory.check(wide, available=2**34)


@pytest.mark.parametrize("arch", ["cnn", "mlp"])
def test_the_memory_estimate_counts_a_batch_no_larger_than_the_data(arch):
    """batch_size=60000 on 100 images trains batches of 100: the estimate is that of batch_size=100."""
    huge = Config(arch=arch, batch_size=60000, train_samples=100, test_samples=100)
    fitting = Config(arch=arch, batch_size=100, train_samples=100, test_samples=100)
    assert memory.estimate(huge) == memory.estimate(fitting) < 2**30


@pytest.mark.slow
def test_a_sweep_over_both_architectures(mnist_dir, tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli(["-m", "arch=mlp,cnn", "channels=[2]", "dense_width=8", "train_samples=100", "test_samples=50",
                      "epochs=1", f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(sweep / "summary.csv")
    assert sorted(table["arch"]) == ["cnn", "mlp"] and table["final_test_accuracy"].notna().all()


@pytest.mark.slow
def test_best_cnn_preset_runs_as_a_short_smoke_run(mnist_dir, tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli(["experiment=best_cnn", "epochs=1", "train_samples=2000", "test_samples=500",
                      f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert pd.read_csv(run_dir / "metrics.csv")["test_accuracy"].iloc[-1] > 0.7  # 16 batches
    summary = json.loads((run_dir / "summary.json").read_text())
    assert {k: summary["config"][k] for k in ("arch", "channels", "dropout", "lr_schedule", "dtype")} == {
        "arch": "cnn", "channels": [16, 32], "dropout": 0.3, "lr_schedule": "cosine", "dtype": "float32"}
    with np.load(run_dir / "weights.npz", allow_pickle=False) as saved:
        assert saved["conv2/w"].shape == (5, 5, 16, 32) and saved["dense1/w"].shape == (7 * 7 * 32, 128)
