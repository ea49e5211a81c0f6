#!/usr/bin/env python
"""How long the HTML report takes to build over many runs, and how large it is.

    MNIST_EXP_DATA_DIR=../shared/data/mnist python scripts/bench_report.py [--runs 1000] [--epochs 20] [--browser]

Makes 10 real runs of `--epochs` epochs (a 5 x 2 grid of lr and hidden_size on 100 images),
copies them into one sweep of `--runs` job dirs (their weights left out: the report never
reads them), then builds the report `--repeat` times and prints the best time and the file's
size, split into plotly's JavaScript and the rest. With --browser, also how long headless
chromium takes to load it and to redraw the curves of 50 selected runs. A benchmark, not a
test: nothing is asserted.
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GRID = ["lr=0.001,0.002,0.005,0.01,0.02", "hidden_size=16,32"]


def make_runs(root: Path, runs: int, epochs: int) -> Path:
    """`runs` job dirs in root/sweep, copies of a real 10-job grid."""
    grid = root / "grid"
    done = subprocess.run([sys.executable, "-m", "mnist_exp", "-m", *GRID, f"epochs={epochs}", "train_samples=100",
                           "test_samples=100", f"hydra.sweep.dir={grid}"], cwd=root, capture_output=True, text=True)
    if done.returncode not in (0, 1):  # 1: a job did not complete, which a report must show too
        sys.exit(f"bench_report: the grid failed: {done.stderr.strip().splitlines()[-1:]}")
    sweep = root / "sweep"
    sweep.mkdir()
    shutil.copy(grid / "multirun.yaml", sweep / "multirun.yaml")
    jobs = sorted(p for p in grid.iterdir() if p.is_dir() and p.name.isdigit())
    for i in range(runs):
        shutil.copytree(jobs[i % len(jobs)], sweep / str(i), ignore=shutil.ignore_patterns("*.npz"))
    return sweep


def build(sweep: Path, out: Path, repeat: int) -> float:
    from mnist_exp.report import build_report

    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        build_report(sweep, out)
        best = min(best, time.perf_counter() - start)
    return best


def browse(out: Path) -> dict:
    """Seconds to load the page, and to show the curves of 50 selected runs."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        page = browser.new_page()
        start = time.perf_counter()
        page.goto(out.as_uri())
        page.wait_for_selector("body[data-ready]", timeout=120_000)
        loaded = time.perf_counter() - start
        start = time.perf_counter()
        page.evaluate("""() => { const boxes = [...document.querySelectorAll('#run-table tbody input')].slice(0, 50);
                                 boxes.forEach(b => { b.checked = true; select(+b.closest('tr').dataset.id, true); }); }""")
        curves = time.perf_counter() - start
        traces = page.evaluate("document.getElementById('curves').data.length")
        browser.close()
    return {"load_seconds": loaded, "select_50_seconds": curves, "traces": traces}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--browser", action="store_true", help="also time loading it in headless chromium")
    args = parser.parse_args(argv)
    from plotly.offline import get_plotlyjs

    with tempfile.TemporaryDirectory() as tmp:
        sweep = make_runs(Path(tmp), args.runs, args.epochs)
        out = Path(tmp) / "report.html"
        seconds = build(sweep, out, args.repeat)
        size, plotly = out.stat().st_size, len(get_plotlyjs().encode())
        print(f"report of {args.runs} runs x {args.epochs} epochs: {seconds:.2f} s (best of {args.repeat}), "
              f"{size / 1e6:.2f} MB ({plotly / 1e6:.2f} MB plotly.js, {(size - plotly) / 1e6:.2f} MB the rest)")
        if args.browser:
            figures = browse(out)
            print(f"chromium: loaded in {figures['load_seconds']:.2f} s; 50 runs selected, "
                  f"{figures['traces']} curves drawn in {figures['select_50_seconds']:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
