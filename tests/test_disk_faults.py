"""A full disk or a read-only directory: one line, exit code 4, and what was written stays whole.

These mount small tmpfs file systems, which needs root (CI runs as root); elsewhere they skip.
"""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import run_cli

SHORT = ["train_samples=300", "test_samples=100"]


@pytest.fixture
def mount(tmp_path):
    """mount(name, options) -> a fresh tmpfs at tmp_path/name, unmounted after the test."""
    mounted = []

    def make(name: str, options: str) -> Path:
        point = tmp_path / name
        point.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.decode().strip()}")
        mounted.append(point)
        return point

    yield make
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def one_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.slow
def test_a_full_disk_mid_run_is_one_line_and_the_record_can_be_resumed(mnist_dir, mount, tmp_path):
    small = mount("small", "size=1100k")  # room for one checkpoint (640 kB), not for its replacement
    run_dir = small / "run"
    result = run_cli([*SHORT, "epochs=3", f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert result.returncode == 4, result.stderr
    line = one_line(result.stderr)
    assert "No space left on device" in line and "what was written before it is intact" in line
    rows = pd.read_csv(run_dir / "metrics.csv")
    with np.load(run_dir / "checkpoint.npz") as saved:
        done = int(saved["epochs_done"])
    assert done >= 1 and len(rows) >= done and not rows.isna().any().any()
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "failed"
    assert not list(run_dir.glob(".*.part"))  # the half-written replacement is gone

    moved = tmp_path / "moved"
    shutil.copytree(run_dir, moved)
    assert run_cli([f"resume={moved}"], cwd=tmp_path).returncode == 0
    whole = tmp_path / "whole"
    assert run_cli([*SHORT, "epochs=3", f"hydra.run.dir={whole}"], cwd=tmp_path).returncode == 0
    pd.testing.assert_frame_equal(pd.read_csv(moved / "metrics.csv").drop(columns="seconds"),
                                  pd.read_csv(whole / "metrics.csv").drop(columns="seconds"))


def test_a_read_only_output_directory_is_one_line_with_exit_4(mount, tmp_path):
    read_only = mount("ro", "ro,size=1m")
    result = run_cli([*SHORT, "epochs=1", f"hydra.run.dir={read_only / 'run'}"], cwd=tmp_path)
    assert result.returncode == 4
    assert "Read-only file system" in one_line(result.stderr)


def test_a_read_only_working_directory_is_one_line_with_exit_4(mount, tmp_path):
    read_only = mount("ro", "ro,size=1m")
    for args in ([*SHORT, "epochs=1"], ["-m", "lr=0.1,0.2", *SHORT, "epochs=1"]):
        result = run_cli(args, cwd=read_only)
        assert result.returncode == 4, result.stderr
        assert "Read-only file system" in one_line(result.stderr)


def test_a_directory_name_too_long_is_one_line(tmp_path):
    result = run_cli([*SHORT, "epochs=1", f"hydra.run.dir={tmp_path / ('d' * 300)}"], cwd=tmp_path)
    assert result.returncode == 4
    assert "File name too long" in one_line(result.stderr)
