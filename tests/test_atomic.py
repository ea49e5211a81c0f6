"""write_atomic: a writer killed mid-write leaves a temp file; the next writer of that file removes it,
and never a live writer's."""

import signal
import subprocess
import sys
from pathlib import Path

from mnist_exp.files.atomic import write_atomic

WRITER = """
import os, signal, sys
from pathlib import Path
from mnist_exp.files.atomic import write_atomic

def write(tmp):
    tmp.write_bytes(b"half of it")
    print("writing", flush=True)
    if sys.argv[2] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    sys.stdin.readline()  # until the test lets it finish
    tmp.write_bytes(b"the live writer's")

write_atomic(Path(sys.argv[1]), write)
"""


def temp_files(directory: Path):
    return sorted(p.name for p in directory.glob(".*.part"))


def writer(target: Path, how: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target), how], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "writing\n"
    return proc


def test_the_next_writer_removes_the_temp_file_of_a_killed_one(tmp_path):
    target = tmp_path / "summary.json"
    killed = writer(target, "kill")
    assert killed.wait(timeout=30) == -signal.SIGKILL
    assert len(temp_files(tmp_path)) == 1 and not target.exists()
    write_atomic(target, lambda tmp: tmp.write_text("new"))
    assert target.read_text() == "new"
    assert temp_files(tmp_path) == []


def test_a_live_writers_temp_file_stays_and_its_write_completes(tmp_path):
    target = tmp_path / "summary.json"
    other = tmp_path / "other.json"
    live = writer(target, "wait")
    try:
        write_atomic(target, lambda tmp: tmp.write_text("mine"))
        write_atomic(other, lambda tmp: tmp.write_text("other"))
        assert len(temp_files(tmp_path)) == 1  # the live writer's
    finally:
        live.communicate("go\n", timeout=30)
    assert live.returncode == 0
    assert target.read_text() == "the live writer's" and temp_files(tmp_path) == []


def test_temp_files_of_other_names_are_left_alone(tmp_path):
    target = tmp_path / "metrics.csv"
    killed = writer(tmp_path / "checkpoint.npz", "kill")
    killed.wait(timeout=30)
    write_atomic(target, lambda tmp: tmp.write_text("x"))
    assert len(temp_files(tmp_path)) == 1  # checkpoint.npz's: its own next writer removes it
