#!/usr/bin/env python
"""Speed and memory figures of mnist_exp, printed as a table and as JSON.

    MNIST_EXP_DATA_DIR=../shared/data/mnist python scripts/bench.py [--quick | --smoke] [--json out.json]

Measures, in one run on this machine:
- the exact default path (reference.train_epoch) against the documented procedure written
  plainly (reference.literal_epoch): microseconds per training step, and the largest
  difference in any metric, for 1000 samples x 20 epochs and 60000 samples x 1 epoch;
- mini-batch training (models.NetworkModel) of one epoch on all 60,000 images, float32/float64,
  batch sizes 32-256, and batch 128 on one BLAS thread: seconds, GFLOP/s (an epoch of
  784-100-10 is about 19.2 GFLOP) and the share of the speed of plain GEMMs of the same shape,
  dtype and threads, measured here too;
- time to the first epoch with a cold and a warm data cache; process startup; the whole
  default run as a user starts it (best and median of 5), the time of its epochs, and what its
  figure costs alone;
  peak memory (max RSS) of a default and a 60,000 run;
- the general network against scikit-learn and PyTorch where importable (bench_peers.py):
  best_mlp's network and the tutorial's size, one epoch each, interleaved;
- best_cnn's network: an epoch, its split by layer, and PyTorch's where importable (bench_cnn.py).
Each comparison (fast vs plain loop, epoch vs GEMMs) runs as 5 pairs, one right after the
other. Reported: best times and their ratio, and the median and range of the paired ratios
(each pair sees one machine load; this VM's speed drifts). One pair only for 60,000 x 1.
"""

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Tuple

import numpy as np
from threadpoolctl import threadpool_limits

from mnist_exp.nn import reference
from mnist_exp.config import Config, DataConfig
from mnist_exp.data.datasets import cache_dir, load_dataset, split
from mnist_exp.runner.networks import build

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_cnn  # noqa: E402  (beside this script)
import bench_peers  # noqa: E402



@dataclass
class Sizes:
    """How much to measure: the full set, --quick, or --smoke (seconds; checks the script runs)."""

    exact: List[Tuple[int, int]]  # (training samples, epochs) of the exact-path comparisons
    batches: Tuple[int, ...]  # mini-batch sizes timed with the default BLAS threads
    images: int = 60000  # images in a timed mini-batch epoch
    repeats: int = 5  # this VM's speed drifts by 25% or more: pairs of runs, then their median
    peer_rounds: int = 3  # interleaved epochs of each implementation, per network
    peer_images: int = 60000  # images in an epoch of the peer and CNN comparisons
    busy_cnn_images: int = 10240  # images in a CNN epoch timed with and without a competing process


SIZES = {"full": Sizes([(1000, 20), (60000, 1)], (32, 64, 128, 256)), "quick": Sizes([(1000, 20)], (128,)),
         "smoke": Sizes([(100, 2)], (128,), images=1024, repeats=1, peer_rounds=1, peer_images=256, busy_cnn_images=256)}


def epoch_gflop(images: int) -> float:
    """Forward and backward multiply-adds of a 784-100-10 epoch: ~19.2 GFLOP for 60,000 images."""
    return images * 2 * 2 * (784 * 100 + 100 * 10) / 1e9


def data_config() -> DataConfig:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from mnist_exp.config import CONF_DIR, register

    register()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return OmegaConf.to_object(compose("config")).data


def best_of(repeats: int, fn) -> float:
    """The fastest of `repeats` timings: shared machines add noise, never speed."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def exact_path(dataset, n_train: int, epochs: int, epoch_fn) -> tuple:
    """(seconds per training step, metrics array) of the reference run with `epoch_fn`."""
    train_set = split(dataset.train_images, dataset.train_labels, n_train)
    test_set = split(dataset.test_images, dataset.test_labels, 1000)
    rng = np.random.default_rng(884736743)
    weights = reference.init_weights(rng, 100)
    rows, seconds = [], 0.0
    for _ in range(epochs):
        start = time.perf_counter()
        train_metrics = epoch_fn(weights, train_set, 0.005, rng)
        seconds += time.perf_counter() - start
        rows.append(train_metrics + reference.evaluate(weights, test_set))
    return seconds / (n_train * epochs), np.array(rows)


def bench_exact(dataset, sizes: Sizes) -> list:
    """Fast and plain runs alternate, so each ratio compares two runs under the same load."""
    results = []
    for n_train, epochs in sizes.exact:
        pairs = [(exact_path(dataset, n_train, epochs, reference.train_epoch),
                  exact_path(dataset, n_train, epochs, reference.literal_epoch))
                 for _ in range(sizes.repeats if n_train <= 1000 else 1)]
        (fast, fast_rows), (plain, plain_rows) = pairs[0]
        ratios = sorted(p[0] / f[0] for f, p in pairs)
        results.append({"samples": n_train, "epochs": epochs,
                        "fast_us_per_step": min(f[0] for f, _ in pairs) * 1e6,
                        "plain_us_per_step": min(p[0] for _, p in pairs) * 1e6,
                        "speedup": min(p[0] for _, p in pairs) / min(f[0] for f, _ in pairs),
                        "paired_speedup": ratios[len(ratios) // 2], "paired_range": [ratios[0], ratios[-1]],
                        "max_metric_difference": float(np.abs(fast_rows - plain_rows).max()),
                        "same_accuracies": bool((fast_rows[:, [1, 3]] == plain_rows[:, [1, 3]]).all()),
                        "same_table_to_3_decimals": bool((fast_rows.round(3) == plain_rows.round(3)).all())})
    return results


def gemm_seconds(batch: int, dtype, batches: int) -> float:
    """Time of `batches` products of the epoch's main shape, (batch, 784) @ (784, 100)."""
    rng = np.random.default_rng(0)
    a, b = rng.random((batch, 784)).astype(dtype), rng.random((784, 100)).astype(dtype)
    a @ b
    start = time.perf_counter()
    for _ in range(batches):
        a @ b
    return time.perf_counter() - start


def bench_minibatch(dataset, sizes: Sizes) -> list:
    """Every batch size with the default BLAS threads, and batch 128 on one thread (as each job
    of a two-worker joblib sweep runs), against GEMMs on as many threads."""
    results = []
    for dtype in ("float32", "float64"):
        train_set = split(dataset.train_images, dataset.train_labels, sizes.images, dtype=np.dtype(dtype))
        warm_up = split(dataset.train_images, dataset.train_labels, 2000, dtype=np.dtype(dtype))
        for batch, threads in [(b, None) for b in sizes.batches] + [(128, 1)]:
            with threadpool_limits(threads, "blas"):
                case = minibatch_case(train_set, warm_up, dtype, batch, sizes.repeats)
                results.append(case | {"blas_threads": threads})
    return results


def minibatch_case(train_set, warm_up, dtype: str, batch: int, repeats: int) -> dict:
    """Epochs and GEMMs alternate; shares: best epoch over best GEMM, and the paired median."""
    images = len(train_set.x)
    rng = np.random.default_rng(0)
    model = build(Config(batch_size=batch, lr=0.1, dtype=dtype, train_samples=images), rng)
    model.fit_epoch(warm_up, 0.1, rng)
    batches, gemm_flop, flop = -(-images // batch), 2 * batch * 784 * 100, epoch_gflop(images)
    pairs = []
    for _ in range(repeats):
        epoch = best_of(1, lambda: model.fit_epoch(train_set, 0.1, rng))
        pairs.append((epoch, gemm_flop * batches / gemm_seconds(batch, np.dtype(dtype), batches) / 1e9))
    shares = sorted(flop / epoch / gemm for epoch, gemm in pairs)
    seconds, gemm = min(epoch for epoch, _ in pairs), max(g for _, g in pairs)
    return {"dtype": dtype, "batch_size": batch, "images": images, "seconds_per_epoch": seconds,
            "gflops": flop / seconds, "gemm_gflops": gemm, "share_of_gemm": flop / seconds / gemm,
            "paired_share": shares[len(shares) // 2], "paired_range": [shares[0], shares[-1]]}


COMPETITOR = "import time\nend = time.monotonic() + float({seconds})\nwhile time.monotonic() < end:\n    pass\n"


class Competitor:
    """One busy process (a Python loop spinning on one core), bounded: it ends by itself after
    `seconds` even if this script dies, and is killed when the block ends."""

    def __init__(self, seconds: float = 120.0):
        self.seconds = seconds

    def __enter__(self):
        self.process = subprocess.Popen([sys.executable, "-c", COMPETITOR.format(seconds=self.seconds)])
        time.sleep(0.2)  # running before the timing starts
        return self

    def __exit__(self, *exc):
        self.process.kill()
        self.process.wait()


def bench_busy(dataset, sizes: Sizes) -> dict:
    """A mini-batch epoch with one competing busy process against the same epoch quiet on one
    BLAS thread (and quiet with the default threads), interleaved: the MLP (784-100-10, float32,
    batch 128) and best_cnn's network. Ratios by round: busy / quiet one-thread."""
    train_set = split(dataset.train_images, dataset.train_labels, sizes.images, dtype=np.float32)
    cnn_set = split(dataset.train_images, dataset.train_labels, sizes.busy_cnn_images, dtype=np.float32)
    rng = np.random.default_rng(0)
    mlp = build(Config(batch_size=128, lr=0.1, dtype="float32", train_samples=sizes.images), rng)
    cnn = bench_cnn.model_of(len(cnn_set.y))
    cases = {"mlp": lambda: mlp.fit_epoch(train_set, 0.1, rng), "cnn": lambda: cnn.fit_epoch(cnn_set, 1e-3, rng)}
    figures = {}
    for name, epoch in cases.items():
        epoch()  # warm-up
        times = {"quiet_1_thread": [], "quiet": [], "busy": []}
        for _ in range(sizes.repeats):
            for case in times:
                with threadpool_limits(1 if case == "quiet_1_thread" else None, "blas"), (
                        Competitor() if case == "busy" else contextlib.nullcontext()):
                    times[case].append(best_of(1, epoch))
        ratios = sorted(b / q for b, q in zip(times["busy"], times["quiet_1_thread"]))
        figures[name] = {"seconds": times, "busy_over_quiet_1_thread": [ratios[0], ratios[len(ratios) // 2], ratios[-1]],
                         "images": len(train_set.y) if name == "mlp" else len(cnn_set.y)}
    return figures


def busy_summary(figures: dict) -> List[str]:
    lines = []
    for name, r in figures.items():
        low, median, high = r["busy_over_quiet_1_thread"]
        best = {case: min(t) for case, t in r["seconds"].items()}
        lines.append(f"busy machine, {name} epoch on {r['images']:,} images: quiet 1 thread {best['quiet_1_thread']:.2f} s,"
                     f" quiet {best['quiet']:.2f} s, one competing busy process {best['busy']:.2f} s: busy / quiet "
                     f"one-thread {median:.2f}x by round ({low:.2f}-{high:.2f}x)")
    return lines


def bench_first_epoch(cfg: DataConfig) -> dict:
    """Load the data, then train the first epoch of the default run: cold, then warm cache."""
    source = cache_dir(cfg)  # holds verified files: main() loaded the data set already
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["XDG_CACHE_HOME"] = str(Path(tmp) / "xdg")  # no parsed arrays yet
        cold = DataConfig(**{**vars(cfg), "dir": str(Path(tmp) / "data")})
        shutil.copytree(source, cold.dir, ignore=shutil.ignore_patterns(".*"))
        for state in ("cold", "warm"):
            start = time.perf_counter()
            dataset = load_dataset(cold)
            loaded = time.perf_counter() - start
            train_set = split(dataset.train_images, dataset.train_labels, 1000)
            rng = np.random.default_rng(884736743)
            reference.train_epoch(reference.init_weights(rng, 100), train_set, 0.005, rng)
            figures[state] = {"data_load_ms": loaded * 1e3, "first_epoch_s": time.perf_counter() - start}
    return figures


def timed_process(args) -> dict:
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], check=True, capture_output=True, cwd=tempfile.gettempdir())
    return {"seconds": time.perf_counter() - start}


def figure_seconds(metrics: Path) -> dict:
    """Importing matplotlib and drawing curves.png from a run's metrics, in a fresh process."""
    code = ("import sys, time; from pathlib import Path; start = time.perf_counter();"
            "from mnist_exp.runner.plots import plot_curves; from mnist_exp.record import read_metrics;"
            "plot_curves(read_metrics(Path(sys.argv[1])), 'timing', Path(sys.argv[2]));"
            "print(time.perf_counter() - start)")
    out = subprocess.run([sys.executable, "-c", code, str(metrics), str(metrics.with_name("timing.png"))],
                         check=True, capture_output=True, text=True, cwd=tempfile.gettempdir())
    return {"seconds": float(out.stdout)}


def default_runs(runs: str, repeats: int) -> dict:
    """The default run as a user starts it, `repeats` times: best and median seconds."""
    times = [timed_process(["-m", "mnist_exp", f"hydra.run.dir={runs}/timed{i}"])["seconds"] for i in range(repeats)]
    return {"seconds": min(times), "median": sorted(times)[len(times) // 2], "runs": len(times),
            "best_run": f"timed{times.index(min(times))}"}


def default_run_parts(runs: str, best_run: str) -> dict:
    """Where the best default run's time went: its epochs (from its metrics.csv); and what its
    figure costs alone, in a fresh process (in a run, its helper imports matplotlib meanwhile)."""
    timed = Path(runs) / best_run / "metrics.csv"
    epochs = sum(float(line.split(",")[-1]) for line in timed.read_text().splitlines()[1:])
    return {"epochs_seconds": epochs, "figure": figure_seconds(timed)}


def max_rss_mb(args) -> float:
    """Peak memory of one child process running `args`."""
    code = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True);"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code, sys.executable, *args], check=True, capture_output=True,
                         text=True, cwd=tempfile.gettempdir())
    return int(out.stdout) / 1024  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer cases (about a minute)")
    parser.add_argument("--smoke", action="store_true", help="tiny cases (seconds): checks that the script runs")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--busy", action="store_true", help="only the busy-machine comparison")
    parser.add_argument("--peer-python", help="the Python of a virtualenv with PyTorch ($MNIST_EXP_PEER_PYTHON)")
    args = parser.parse_args()
    sizes = SIZES["smoke" if args.smoke else "quick" if args.quick else "full"]
    if os.environ.get("MNIST_EXP_DATA_DIR"):  # the timed runs start in another directory
        os.environ["MNIST_EXP_DATA_DIR"] = os.path.abspath(os.environ["MNIST_EXP_DATA_DIR"])
    if args.peer_python:
        os.environ["MNIST_EXP_PEER_PYTHON"] = args.peer_python
    cfg = data_config()
    dataset = load_dataset(cfg)
    if args.busy:
        figures = {"busy_machine": bench_busy(dataset, sizes)}
        print("\n".join(busy_summary(figures["busy_machine"])))
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2) + "\n")
        return
    with tempfile.TemporaryDirectory() as runs:
        default_run = ["-m", "mnist_exp", f"hydra.run.dir={runs}/default"]
        big_run = ["-m", "mnist_exp", f"train_samples={sizes.images}", "test_samples=10000", "epochs=1",
                   "batch_size=128", "lr=0.1", "dtype=float32", f"hydra.run.dir={runs}/big"]
        figures = {
            "exact_path": bench_exact(dataset, sizes),
            "minibatch": bench_minibatch(dataset, sizes),
            "busy_machine": bench_busy(dataset, sizes),
            "startup": {"import_app": timed_process(["-c", "import mnist_exp.cli.main"]),
                        "cfg_job": timed_process(["-m", "mnist_exp", "--cfg", "job"])},
            "default_run_warm_cache": default_runs(runs, sizes.repeats),
            "first_epoch": bench_first_epoch(cfg),
            "peak_memory_mb": {"default_run": max_rss_mb(default_run), "minibatch_epoch": max_rss_mb(big_run)},
            "peers": bench_peers.measure(dataset, sizes.peer_rounds, sizes.peer_images),
            "cnn": bench_cnn.measure(dataset, sizes.peer_rounds, sizes.peer_images),
            "machine": {"cpus": os.cpu_count(), "numpy": np.__version__,
                        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE")},
        }
        figures["default_run_parts"] = default_run_parts(runs, figures["default_run_warm_cache"]["best_run"])
    report(figures)
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


def report(f: dict) -> None:
    print("exact default path (fast vs the plain documented loop)")
    for r in f["exact_path"]:
        low, high = r["paired_range"]
        print(f"  {r['samples']:>5} samples x {r['epochs']:>2} epochs: {r['fast_us_per_step']:6.1f} us/step vs "
              f"{r['plain_us_per_step']:6.1f} us/step: {r['speedup']:.1f}x (paired runs: median "
              f"{r['paired_speedup']:.1f}x, {low:.1f}-{high:.1f}x); largest metric difference "
              f"{r['max_metric_difference']:.1e}, same accuracies: {r['same_accuracies']}")
    print(f"mini-batch epoch on {f['minibatch'][0]['images']:,} images (784-100-10)")
    for r in f["minibatch"]:
        low, high = r["paired_range"]
        threads = ", 1 BLAS thread" if r["blas_threads"] == 1 else ""
        print(f"  {r['dtype']} batch {r['batch_size']:>3}{threads}: {r['seconds_per_epoch']:5.2f} s/epoch, "
              f"{r['gflops']:5.1f} GFLOP/s = {r['share_of_gemm']:.0%} of the same GEMMs' {r['gemm_gflops']:.1f} "
              f"GFLOP/s (paired runs: median {r['paired_share']:.0%}, {low:.0%}-{high:.0%})")
    for state, r in f["first_epoch"].items():
        print(f"first epoch, {state} data cache: data load {r['data_load_ms']:.0f} ms, first epoch done at "
              f"{r['first_epoch_s']:.2f} s")
    parts, run = f["default_run_parts"], f["default_run_warm_cache"]
    print(f"startup: import {f['startup']['import_app']['seconds']:.2f} s, --cfg job "
          f"{f['startup']['cfg_job']['seconds']:.2f} s; whole default run (20 epochs, figure, record) "
          f"{run['seconds']:.2f} s (median of {run['runs']}: {run['median']:.2f} s): its 20 epochs (training and "
          f"evaluation) {parts['epochs_seconds']:.2f} s; curves.png alone in a fresh process (matplotlib import and "
          f"drawing; a run's helper imports matplotlib during the epochs) {parts['figure']['seconds']:.2f} s")
    print("\n".join(busy_summary(f["busy_machine"])))
    print("\n".join(bench_peers.summary(f["peers"])))
    print("\n".join(bench_cnn.summary(f["cnn"])))
    print(f"peak memory: default run {f['peak_memory_mb']['default_run']:.0f} MB, one {f['minibatch'][0]['images']:,}"
          f"-image float32 epoch {f['peak_memory_mb']['minibatch_epoch']:.0f} MB")


if __name__ == "__main__":
    main()
