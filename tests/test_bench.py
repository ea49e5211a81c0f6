"""scripts/bench.py runs as the README writes it. Its figures are timings: none is asserted."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_smoke_bench_runs_with_a_relative_data_dir_and_checks_the_exact_path(mnist_dir, tmp_path):
    env = dict(os.environ, MNIST_EXP_DATA_DIR=os.path.relpath(mnist_dir, REPO))  # as in the README
    out = tmp_path / "figures.json"
    result = subprocess.run([sys.executable, "scripts/bench.py", "--smoke", "--json", str(out)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    assert "exact default path" in result.stdout and "peak memory" in result.stdout
    exact = figures["exact_path"][0]
    assert exact["same_accuracies"] and exact["max_metric_difference"] < 1e-12  # fast path = plain loop
    assert [(r["dtype"], r["blas_threads"]) for r in figures["minibatch"]] == [
        ("float32", None), ("float32", 1), ("float64", None), ("float64", 1)]
    assert figures["default_run_warm_cache"]["seconds"] > figures["default_run_parts"]["epochs_seconds"] > 0
    assert figures["first_epoch"]["warm"]["data_load_ms"] > 0 and figures["peak_memory_mb"]["default_run"] > 0
    ours = figures["peers"]["networks"]["best_mlp"]
    assert ours["seconds"]["mnist_exp"][0] > 0 and set(ours["parts"]) == {"gather", "forward", "loss", "backward", "step", "gemms_alone"}
    assert "best_mlp (784-512-512-10, adam)" in result.stdout
    cnn = figures["cnn"]
    assert cnn["seconds"]["mnist_exp"][0] > 0 and cnn["parts"]["conv forward"] > 0 and cnn["parts"]["conv GEMMs alone"] > 0
    assert "best_cnn's network: one training epoch" in result.stdout
    assert set(cnn["by_threads"]["1"]) >= {"mnist_exp", "prototype"}  # and torch where importable or given
    busy = figures["busy_machine"]
    assert set(busy) == {"mlp", "cnn"} and all(len(r["busy_over_quiet_1_thread"]) == 3 for r in busy.values())
    assert "one competing busy process" in result.stdout
