#!/usr/bin/env python
"""PyTorch's side of the benchmarks, as a process of its own: needs only torch and NumPy.

    /work/peers/bin/python scripts/bench_torch.py NETWORK THREADS IMAGES.npy LABELS.npy

PyTorch is no dependency of this project; it lives in a separate virtualenv (see scripts/README.md).
bench_cnn.py and bench_peers.py start this script with that virtualenv's Python
(`--peer-python`, or $MNIST_EXP_PEER_PYTHON) and ask it for one epoch at a time, so its epochs
interleave with this project's. Protocol: each line "epoch" on stdin trains one epoch and
answers "WALL CPU" (seconds) on stdout; end of input ends it. NETWORK: best_cnn, best_mlp or
tutorial_size (the layers of scripts/bench_cnn.py's and bench_peers.py's networks).
"""

import sys
import time

import numpy as np

BATCH = 128


def torch_loop(model, opt, loss_fn, inputs, targets):
    """A PyTorch training epoch over shuffled batches of BATCH, as this project trains."""
    import torch

    def epoch():
        model.train()
        order = torch.randperm(len(inputs))
        for start in range(0, len(inputs), BATCH):
            rows = order[start:start + BATCH]
            opt.zero_grad(set_to_none=True)
            loss_fn(model(inputs[rows]), targets[rows]).backward()
            opt.step()
    return epoch


def network(name: str):
    import torch

    nn = torch.nn
    if name == "best_cnn":  # conv 5x5 1->16, pool, ReLU, conv 5x5 16->32, pool, ReLU, dense 128, dense 10
        layers, cin = [], 1
        for cout in (16, 32):
            layers += [nn.Conv2d(cin, cout, 5, padding=2), nn.MaxPool2d(2), nn.ReLU()]
            cin = cout
        return nn.Sequential(*layers, nn.Flatten(), nn.Linear(7 * 7 * 32, 128), nn.ReLU(), nn.Linear(128, 10)), 1e-3
    hidden, dropout, bias = ((512, 512), 0.2, True) if name == "best_mlp" else ((100,), 0.5, False)
    sizes, layers = (784, *hidden), []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(fan_in, fan_out, bias=bias), nn.ReLU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers, nn.Linear(sizes[-1], 10, bias=bias)), 1e-3 if name == "best_mlp" else 0.1


def main() -> None:
    import torch

    name, threads, images, labels = sys.argv[1], int(sys.argv[2]), np.load(sys.argv[3]), np.load(sys.argv[4])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model, lr = network(name)
    adam = name != "tutorial_size"
    opt = (torch.optim.Adam if adam else torch.optim.SGD)(model.parameters(), lr=lr)
    x = torch.from_numpy(images.reshape(-1, 1, 28, 28) if name == "best_cnn" else images)
    if adam:
        loss_fn, y = torch.nn.CrossEntropyLoss(), torch.from_numpy(labels.astype(np.int64))
    else:
        loss_fn, y = torch.nn.MSELoss(), torch.nn.functional.one_hot(torch.from_numpy(labels.astype(np.int64)), 10).float()
    epoch = torch_loop(model, opt, loss_fn, x, y)
    for line in sys.stdin:
        if line.strip() != "epoch":
            continue
        wall, cpu = time.perf_counter(), time.process_time()
        epoch()
        print(f"{time.perf_counter() - wall} {time.process_time() - cpu}", flush=True)


if __name__ == "__main__":
    main()
