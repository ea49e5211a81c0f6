#!/usr/bin/env python
"""The general network against its peers: one training epoch on all 60,000 images.

    MNIST_EXP_DATA_DIR=../shared/data/mnist python scripts/bench_peers.py [--repeats N] [--threads T] [--json F]

Two networks, float32, batch 128, the same BLAS/intra-op thread count for all:
- best_mlp's: 784-512-512-10, ReLU, dropout 0.2, biases, cross-entropy, Adam at 1e-3;
- the tutorial's size: 784-100-10, ReLU, dropout 0.5, no biases, squared error, plain SGD.
Timed: this project's NetworkModel.fit_epoch, scikit-learn's MLPClassifier.partial_fit (one epoch;
it has no dropout) and a PyTorch CPU loop of the same layers, each where importable, in
interleaved rounds (one epoch of each per round: each round sees one machine load).
Reported: best seconds per epoch, the median and range over rounds, ratios to scikit-learn
(paired by round), and where this project's epoch goes (its parts timed alone, batch by batch).
scripts/bench.py runs this too when scikit-learn is importable. PyTorch's default wheel brings
CUDA libraries (several GB): install its CPU build in a separate virtualenv, not the project's.
"""

import argparse
import importlib.util
import json
import os
import sys
import time
from typing import Callable, Dict, List, Optional

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from bench_torch import BATCH, torch_loop  # noqa: F401 (beside this script; bench_cnn.py imports both from here)
from mnist_exp.config import Config
from mnist_exp.nn.layers import Dense, Training
from mnist_exp.nn.losses import loss_and_grad
from mnist_exp.nn.models import _batch
from mnist_exp.runner.networks import build

NETWORKS = {
    "best_mlp": dict(hidden=(512, 512), dropout=0.2, biases=True, loss="cross_entropy", optimizer="adam", lr=1e-3),
    "tutorial_size": dict(hidden=(100,), dropout=0.5, biases=False, loss="sse", optimizer="sgd", lr=0.1),
}


def model_of(net: dict, images: int):
    cfg = Config(hidden_size=net["hidden"][0], hidden_layers=len(net["hidden"]), batch_size=BATCH, lr=net["lr"],
                 loss=net["loss"], relu_derivative="correct", biases=net["biases"], init="he",
                 dropout=net["dropout"], optimizer=net["optimizer"], dtype="float32", train_samples=images)
    return build(cfg, np.random.default_rng(0))


def ours(net: dict, train_set) -> Callable[[], None]:
    model, rng = model_of(net, len(train_set.y)), np.random.default_rng(0)
    return lambda: model.fit_epoch(train_set, net["lr"], rng)


def sklearn_epoch(net: dict, x: np.ndarray, labels: np.ndarray) -> Callable[[], None]:
    import warnings

    from sklearn.neural_network import MLPClassifier

    solver = dict(solver="adam") if net["optimizer"] == "adam" else dict(solver="sgd", momentum=0.0,
                                                                         nesterovs_momentum=False)
    clf = MLPClassifier(hidden_layer_sizes=net["hidden"], alpha=0.0, batch_size=BATCH, learning_rate_init=net["lr"],
                        shuffle=True, random_state=0, **solver)
    classes = np.arange(10)

    def epoch():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.partial_fit(x, labels, classes=classes)
    return epoch


def torch_epoch(net: dict, x: np.ndarray, y: np.ndarray, labels: np.ndarray, threads: int) -> Callable[[], None]:
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    sizes, layers = (784, *net["hidden"]), []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        layers += [torch.nn.Linear(fan_in, fan_out, bias=net["biases"]), torch.nn.ReLU(),
                   torch.nn.Dropout(net["dropout"])]
    model = torch.nn.Sequential(*layers, torch.nn.Linear(sizes[-1], 10, bias=net["biases"]))
    opt = (torch.optim.Adam if net["optimizer"] == "adam" else torch.optim.SGD)(model.parameters(), lr=net["lr"])
    inputs = torch.from_numpy(x)
    targets = torch.from_numpy(labels.astype(np.int64)) if net["loss"] == "cross_entropy" else torch.from_numpy(y)
    loss_fn = torch.nn.CrossEntropyLoss() if net["loss"] == "cross_entropy" else torch.nn.MSELoss()

    return torch_loop(model, opt, loss_fn, inputs, targets)


def epoch_parts(net: dict, train_set) -> Dict[str, float]:
    """Where this project's epoch goes: one epoch's batches (after 20 warm-up batches), each
    part timed in place: gathering the batch, forward (dropout draws included), loss, backward,
    the optimiser's step; and, for scale, the dense layers' GEMMs alone (same shapes, threads
    and count), which forward and backward contain. All 784 inputs (an SGD epoch would leave
    out the blank pixels' rows)."""
    model = model_of(net, len(train_set.y))
    rng, n = np.random.default_rng(1), len(train_set.y)
    order = rng.permutation(n)
    buffers = model._buffers(train_set)
    stack, opt = model.stack, model.optimizer
    training = Training(rng, None, descend=opt.plain)
    parts = dict.fromkeys(["gather", "forward", "loss", "backward", "step"], 0.0)
    starts = list(range(0, n, BATCH))
    warm = min(20, len(starts))  # warm-up batches, not counted
    for i, start in enumerate(starts[:warm] + starts):
        times = [time.perf_counter()]
        x, y = _batch(train_set, order, start, BATCH, buffers)
        times.append(time.perf_counter())
        out = stack.forward(x, training)
        times.append(time.perf_counter())
        _, dout = loss_and_grad(out, y, net["loss"])
        if training.descend:
            dout *= net["lr"]
        times.append(time.perf_counter())
        stack.backward(dout)
        times.append(time.perf_counter())
        opt.step(stack.parameters(), net["lr"], lr_applied=training.descend)
        times.append(time.perf_counter())
        if i >= warm:
            for part, begin, end in zip(parts, times, times[1:]):
                parts[part] += end - begin
    return {**parts, "gemms_alone": gemm_seconds(stack, len(starts))}


def gemm_seconds(stack, batches: int) -> float:
    """The products of a training step of the stack's dense layers, `batches` times: x W forward;
    dy W^T (all but the first layer) and x^T dy backward."""
    rng, products = np.random.default_rng(0), []
    for i, layer in enumerate(stack.of_kind(Dense)):
        w = layer.params["w"]
        x, dy = rng.random((BATCH, w.shape[0]), w.dtype), rng.random((BATCH, w.shape[1]), w.dtype)
        products += [(x, w), (x.T, dy)] + ([(dy, w.T)] if i else [])
    return products_seconds(products, batches)


def products_seconds(products: list, batches: int) -> float:
    """Seconds of `batches` rounds of the products (a, b), after one round to warm up."""
    for a, b in products:
        a @ b
    start = time.perf_counter()
    for _ in range(batches):
        for a, b in products:
            a @ b
    return time.perf_counter() - start


def available() -> List[str]:
    found = [name for name, module in (("sklearn", "sklearn"), ("torch", "torch")) if importlib.util.find_spec(module)]
    return ["mnist_exp"] + found + (["torch"] if "torch" not in found and peer_python() else [])


def measure(dataset, repeats: int = 3, images: int = 60000) -> dict:
    """Every network, every available implementation, `repeats` interleaved rounds."""
    from mnist_exp.data.datasets import split

    train_set = split(dataset.train_images, dataset.train_labels, images, dtype=np.float32)
    x, y = np.ascontiguousarray(train_set.x), train_set.y
    labels = y.argmax(axis=1)
    threads = next((p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"), 1)
    results = {"blas_threads": threads, "images": images, "repeats": repeats, "implementations": available(),
               "networks": {}}
    for name, net in NETWORKS.items():
        epochs = {"mnist_exp": ours(net, train_set)}
        if "sklearn" in results["implementations"]:
            epochs["sklearn"] = sklearn_epoch(net, x, labels)
        if "torch" in results["implementations"]:
            epochs["torch"] = (torch_epoch(net, x, y, labels, threads) if importlib.util.find_spec("torch")
                               else torch_process(name, x, labels, threads, peer_python()))
        results["networks"][name] = {"seconds": interleaved(epochs, repeats), "parts": epoch_parts(net, train_set)}
    return results


def interleaved(epochs: Dict[str, Callable[[], None]], repeats: int) -> Dict[str, List[float]]:
    """Seconds of each implementation's epoch, one of each per round, after a warm-up epoch each.
    An epoch that returns a number (a peer process: its own timing, without the pipe) gives that."""
    rounds = {impl: [] for impl in epochs}
    for fn in epochs.values():
        fn()
    for _ in range(repeats):
        for impl, fn in epochs.items():
            start = time.perf_counter()
            seconds = fn()
            rounds[impl].append(seconds if isinstance(seconds, float) else time.perf_counter() - start)
    return rounds


def peer_python() -> Optional[str]:
    """The Python of the virtualenv holding PyTorch ($MNIST_EXP_PEER_PYTHON or --peer-python), if any."""
    return os.environ.get("MNIST_EXP_PEER_PYTHON") or None


def torch_process(network: str, x: np.ndarray, labels: np.ndarray, threads: int, python: str) -> Callable[[], float]:
    """An epoch of `network` in PyTorch, in scripts/bench_torch.py run by `python` (kept running:
    each call trains one more epoch there and returns its seconds)."""
    import atexit
    import subprocess
    import tempfile

    folder = tempfile.mkdtemp(prefix="bench-torch-")
    np.save(f"{folder}/x.npy", np.ascontiguousarray(x, np.float32))
    np.save(f"{folder}/labels.npy", labels)
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_torch.py")
    peer = subprocess.Popen([python, script, network, str(threads), f"{folder}/x.npy", f"{folder}/labels.npy"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    atexit.register(peer.kill)

    def epoch() -> float:
        peer.stdin.write("epoch\n")
        peer.stdin.flush()
        answer = peer.stdout.readline()
        if not answer:
            raise RuntimeError(f"{script} ended (exit {peer.wait()})")
        return float(answer.split()[0])
    return epoch


def ratio_text(times: List[float], base: List[float], name: str) -> str:
    """'0.62x name's (0.57-0.73x by round)': the median and range of the per-round ratios."""
    ratios = sorted(t / b for t, b in zip(times, base))
    return f"{ratios[len(ratios) // 2]:.2f}x {name}'s ({ratios[0]:.2f}-{ratios[-1]:.2f}x by round)"


def summary(results: dict) -> List[str]:
    lines = [f"one training epoch on {results['images']:,} images, float32, batch {BATCH}, "
             f"{results['blas_threads']} BLAS/intra-op threads, {results['repeats']} interleaved rounds"]
    for name, r in results["networks"].items():
        net = NETWORKS[name]
        sizes = "-".join(map(str, (784, *net["hidden"], 10)))
        lines.append(f"  {name} ({sizes}, {net['optimizer']}):")
        for impl, times in r["seconds"].items():
            s = sorted(times)
            text = f"    {impl:>9}: best {s[0]:.2f} s/epoch (median {s[len(s) // 2]:.2f}, {s[0]:.2f}-{s[-1]:.2f})"
            for peer in ("sklearn", "torch") if impl == "mnist_exp" else ("sklearn",) if impl == "torch" else ():
                if peer in r["seconds"]:
                    text += "; " + ratio_text(times, r["seconds"][peer], peer)
            lines.append(text)
        parts = dict(r["parts"])
        gemms = parts.pop("gemms_alone")
        shown = ", ".join(f"{k} {v:.2f} s" for k, v in parts.items())
        lines.append(f"    mnist_exp's epoch timed part by part: {shown} (sum {sum(parts.values()):.2f} s); "
                     f"its GEMMs alone {gemms:.2f} s")
    return lines


def run_from_command_line(doc: str, measure_fn, summary_fn, repeats: int) -> None:
    """This script's and bench_cnn.py's command line: --repeats, --images, --threads, --json."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--images", type=int, default=60000)
    parser.add_argument("--threads", type=int, help="BLAS and PyTorch threads (default: BLAS's own)")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--peer-python", help="the Python of a virtualenv with PyTorch ($MNIST_EXP_PEER_PYTHON)")
    args = parser.parse_args()
    if args.peer_python:
        os.environ["MNIST_EXP_PEER_PYTHON"] = args.peer_python
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench import data_config

    from mnist_exp.data.datasets import load_dataset

    with threadpool_limits(args.threads, "blas"):
        results = measure_fn(load_dataset(data_config()), args.repeats, args.images)
    print("\n".join(summary_fn(results)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    run_from_command_line(__doc__, measure, summary, repeats=3)
