#!/usr/bin/env python
"""best_cnn's network: one training epoch, where it goes, and PyTorch's same network.

    MNIST_EXP_DATA_DIR=../shared/data/mnist python scripts/bench_cnn.py [--repeats N] [--threads T] [--json F]

The network of experiment=best_cnn (conv 5x5 1->16, pool 2, ReLU, conv 5x5 16->32, pool 2, ReLU,
dense 128, ReLU, dense 10), Adam, float32, batch 128, all 60,000 images. Timed: this project's
NetworkModel.fit_epoch and, where torch is importable, a PyTorch CPU loop of the same layers
with as many intra-op threads as BLAS has here (--threads sets both; default: BLAS's own),
in interleaved rounds. Then one epoch's batches timed layer by layer: convolutions forward and
backward (and within them the im2col copies, and alone the GEMMs they contain), pooling, the rest. scripts/bench.py runs this too.
"""

import importlib.util
import os
import sys
import time
from collections import defaultdict
from typing import Callable, Dict, List

import numpy as np
from threadpoolctl import threadpool_info

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_peers import (BATCH, interleaved, peer_python, products_seconds, ratio_text,  # noqa: E402
                         run_from_command_line, torch_loop, torch_process)

from mnist_exp.config import Config  # noqa: E402
from mnist_exp.nn.conv import Conv2D  # noqa: E402
from mnist_exp.nn.layers import Training  # noqa: E402
from mnist_exp.nn.losses import loss_and_grad  # noqa: E402
from mnist_exp.nn.models import _batch  # noqa: E402
from mnist_exp.runner.networks import build  # noqa: E402

CNN = dict(arch="cnn", channels=[16, 32], kernel_size=5, pool=2, dense_width=128, batch_size=BATCH,
           loss="cross_entropy", relu_derivative="correct", biases=True, init="he", dropout=0.0,
           optimizer="adam", lr=1e-3, dtype="float32")


def model_of(images: int):
    return build(Config(**CNN, train_samples=images), np.random.default_rng(0))


def ours(train_set) -> Callable[[], None]:
    model, rng = model_of(len(train_set.y)), np.random.default_rng(0)
    return lambda: model.fit_epoch(train_set, CNN["lr"], rng)


def torch_epoch(x: np.ndarray, labels: np.ndarray, threads: int) -> Callable[[], None]:
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    nn, layers, cin = torch.nn, [], 1
    for cout in CNN["channels"]:
        layers += [nn.Conv2d(cin, cout, CNN["kernel_size"], padding=CNN["kernel_size"] // 2), nn.MaxPool2d(2),
                   nn.ReLU()]
        cin = cout
    model = nn.Sequential(*layers, nn.Flatten(), nn.Linear(7 * 7 * cin, 128), nn.ReLU(), nn.Linear(128, 10))
    opt, loss_fn = torch.optim.Adam(model.parameters(), lr=CNN["lr"]), nn.CrossEntropyLoss()
    inputs, targets = torch.from_numpy(x.reshape(-1, 1, 28, 28)), torch.from_numpy(labels.astype(np.int64))
    return torch_loop(model, opt, loss_fn, inputs, targets)


def layer_parts(train_set) -> Dict[str, float]:
    """One epoch's batches (after 10 warm-up ones), each layer's forward and backward timed in
    place and summed by kind; with the gathering, the loss, Adam's step, and the convolutions'
    GEMMs timed alone (same shapes, threads and count)."""
    model = model_of(len(train_set.y))
    rng, n = np.random.default_rng(1), len(train_set.y)
    order, buffers, stack = rng.permutation(n), model._buffers(train_set), model.stack
    training, parts, starts = Training(rng), defaultdict(float), list(range(0, n, BATCH))
    counting = [False]
    for conv in stack.of_kind(Conv2D):  # the im2col copies inside the convolutions, timed where they run
        for name in ("_im2col", "_im2col_rows", "_offset_rows"):  # the last: the first conv's, pooled_conv.py
            if hasattr(conv, name):
                setattr(conv, name, timed(getattr(conv, name), parts, counting))
    lowest = next(i for i, layer in enumerate(stack.layers) if layer.params)
    warm = min(10, len(starts))  # warm-up batches, not counted
    for i, start in enumerate(starts[:warm] + starts):
        count, clock = i >= warm, time.perf_counter()
        counting[0] = count
        x, y = _batch(train_set, order, start, BATCH, buffers)
        parts["gather"] += (time.perf_counter() - clock) * count
        for layer in stack.layers:
            clock = time.perf_counter()
            x = layer.forward(x, training)
            parts[f"{layer.kind} forward"] += (time.perf_counter() - clock) * count
        clock = time.perf_counter()
        _, dy = loss_and_grad(x, y, CNN["loss"])
        parts["loss"] += (time.perf_counter() - clock) * count
        for j in range(len(stack.layers) - 1, lowest - 1, -1):
            clock = time.perf_counter()
            dy = stack.layers[j].backward(dy, need_dx=j > lowest)
            parts[f"{stack.layers[j].kind} backward"] += (time.perf_counter() - clock) * count
        clock = time.perf_counter()
        model.optimizer.step(stack.parameters(), CNN["lr"])
        parts["adam step"] += (time.perf_counter() - clock) * count
    parts["conv GEMMs alone"] = conv_gemms(stack, len(starts))
    return dict(parts)


def timed(method, parts: dict, counting: list):
    """`method`, adding its seconds to parts["im2col (within conv)"] while counting[0] is true."""
    def run(*args):
        clock = time.perf_counter()
        result = method(*args)
        parts["im2col (within conv)"] += (time.perf_counter() - clock) * counting[0]
        return result
    return run


def conv_gemms(stack, batches: int) -> float:
    """The convolutions' products of a training step, `batches` times: forward, weight gradient,
    and (above the first) the input gradient, on arrays of the im2col shapes."""
    rng, products, side = np.random.default_rng(0), [], 28
    for i, layer in enumerate(stack.of_kind(Conv2D)):
        kh, kw, cin, cout = layer.params["w"].shape
        pixels = BATCH * side * side
        cols, dy = rng.random((pixels, kh * kw * cin), np.float32), rng.random((pixels, cout), np.float32)
        w = rng.random((kh * kw * cin, cout), np.float32)
        products += [(cols, w), (dy.T, cols)]
        if i:
            products.append((rng.random((pixels, kh * kw * cout), np.float32), rng.random((kh * kw * cout, cin),
                                                                                      np.float32)))
        side //= 2
    return products_seconds(products, batches)


def prototype(train_set) -> Callable[[], None]:
    """The same network written plainly in NumPy, as a first prototype would be: whole batches,
    im2col by sliding windows and one GEMM per product, pooling by reshape (a tie's gradient goes
    to every maximum), Adam per array."""
    from numpy.lib.stride_tricks import sliding_window_view as windows

    rng, x_all, y_all = np.random.default_rng(0), train_set.x.reshape(-1, 28, 28, 1), train_set.y
    shapes = [(5, 5, 1, 16), (16,), (5, 5, 16, 32), (32,), (1568, 128), (128,), (128, 10), (10,)]
    params = [rng.normal(0, np.sqrt(2 / np.prod(s[:-1])), s).astype(np.float32) if len(s) > 1 else
              np.zeros(s, np.float32) for s in shapes]
    m, v, t = [np.zeros_like(p) for p in params], [np.zeros_like(p) for p in params], [0]

    def im2col(x):  # (n, h, w, c) -> (n*h*w, 25c)
        padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))
        return windows(padded, (5, 5), axis=(1, 2)).transpose(0, 1, 2, 4, 5, 3).reshape(-1, 25 * x.shape[3])

    def conv_pool_relu(x, w, b):
        n, h, wd, _ = x.shape
        cols = im2col(x)
        y = (cols @ w.reshape(-1, w.shape[3]) + b).reshape(n, h, wd, -1)
        windows4 = y.reshape(n, h // 2, 2, wd // 2, 2, -1)
        pooled = windows4.max(axis=(2, 4))
        first = (windows4 == pooled[:, :, None, :, None]).reshape(n, h // 2, 2, wd // 2, 2, -1)
        return np.maximum(pooled, 0), (cols, windows4.shape, first, pooled > 0)

    def conv_pool_relu_back(dout, w, cache, need_dx):
        cols, shape, first, positive = cache
        dp = dout * positive
        d = (first * dp[:, :, None, :, None]).reshape(shape[0], shape[1] * 2, shape[3] * 2, -1)  # ties: each max
        d2 = d.reshape(-1, w.shape[3])
        dw, db = (cols.T @ d2).reshape(w.shape), d2.sum(axis=0)
        dx = None
        if need_dx:
            turned = w[::-1, ::-1].transpose(0, 1, 3, 2).reshape(-1, w.shape[2])
            dx = (im2col(d) @ turned).reshape(*d.shape[:3], w.shape[2])
        return dw, db, dx

    def epoch():
        order = rng.permutation(len(y_all))
        for start in range(0, len(order), BATCH):
            rows = order[start:start + BATCH]
            x, y = x_all[rows], y_all[rows]
            w1, b1, w2, b2, w3, b3, w4, b4 = params
            h1, c1 = conv_pool_relu(x, w1, b1)
            h2, c2 = conv_pool_relu(h1, w2, b2)
            flat = h2.reshape(len(x), -1)
            h3 = np.maximum(flat @ w3 + b3, 0)
            logits = h3 @ w4 + b4
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            dlog = (p / p.sum(axis=1, keepdims=True) - y) / len(x)
            dh3 = (dlog @ w4.T) * (h3 > 0)
            dflat = dh3 @ w3.T
            dw2, db2, dh1 = conv_pool_relu_back(dflat.reshape(h2.shape), w2, c2, True)
            dw1, db1, _ = conv_pool_relu_back(dh1, w1, c1, False)
            grads = [dw1, db1, dw2, db2, flat.T @ dh3, dh3.sum(0), h3.T @ dlog, dlog.sum(0)]
            t[0] += 1
            for p_, g, m_, v_ in zip(params, grads, m, v):
                m_[...] = 0.9 * m_ + 0.1 * g
                v_[...] = 0.999 * v_ + 0.001 * g * g
                p_ -= 1e-3 * (m_ / (1 - 0.9 ** t[0])) / (np.sqrt(v_ / (1 - 0.999 ** t[0])) + 1e-8)
    return epoch


def thread_counts() -> List[int]:
    """1 and every count up to the cores there are (2 here)."""
    return list(range(1, max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else
                             os.cpu_count() or 1) + 1))


def measure(dataset, repeats: int = 2, images: int = 60000) -> dict:
    """For each thread count: this project's epoch, PyTorch's (in process or in a peer process) and
    the plain prototype's, interleaved; then one epoch layer by layer on the threads BLAS has."""
    from threadpoolctl import threadpool_limits

    from mnist_exp.data.datasets import split

    train_set = split(dataset.train_images, dataset.train_labels, images, dtype=np.float32)
    labels, by_threads = train_set.y.argmax(axis=1), {}
    for threads in thread_counts():
        with threadpool_limits(threads, "blas"):
            epochs = {"mnist_exp": ours(train_set), "prototype": prototype(train_set)}
            if importlib.util.find_spec("torch") is not None:
                epochs["torch"] = torch_epoch(np.ascontiguousarray(train_set.x), labels, threads)
            elif peer_python():
                epochs["torch"] = torch_process("best_cnn", train_set.x, labels, threads, peer_python())
            by_threads[str(threads)] = interleaved(epochs, repeats)
    threads = next((p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"), 1)
    return {"blas_threads": threads, "images": images, "repeats": repeats, "by_threads": by_threads,
            "seconds": by_threads[str(min(threads, max(map(int, by_threads))))], "parts": layer_parts(train_set)}


def summary(r: dict) -> list:
    lines = [f"best_cnn's network: one training epoch on {r['images']:,} images, float32, batch {BATCH}, "
             f"{r['repeats']} interleaved rounds per thread count"]
    for threads, seconds in r.get("by_threads", {"?": r["seconds"]}).items():
        for impl, times in seconds.items():
            s = sorted(times)
            text = (f"  {threads} thread(s) {impl:>9}: best {s[0]:.2f} s/epoch (median {s[len(s) // 2]:.2f}, "
                    f"{s[0]:.2f}-{s[-1]:.2f})")
            if impl == "mnist_exp":
                text += "".join("; " + ratio_text(times, seconds[peer], peer) for peer in ("torch", "prototype")
                                if peer in seconds)
            lines.append(text)
    parts = dict(r["parts"])
    gemms, im2col = parts.pop("conv GEMMs alone"), parts.pop("im2col (within conv)", 0.0)
    shown = ", ".join(f"{k} {v:.2f}" for k, v in sorted(parts.items(), key=lambda kv: -kv[1]) if v >= 0.005)
    lines.append(f"  mnist_exp's epoch layer by layer (s): {shown}; sum {sum(parts.values()):.2f} s; within the "
                 f"convolutions, im2col copies {im2col:.2f} s; their GEMMs alone {gemms:.2f} s")
    return lines


if __name__ == "__main__":
    run_from_command_line(__doc__, measure, summary, repeats=2)
