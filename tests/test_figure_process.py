"""curves.png from the forked helper, and from the run itself whenever the helper cannot."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import matplotlib.image
import pytest

from helpers import cli_env, run_cli
from mnist_exp.runner import figure_process
from mnist_exp.runner.figure_process import FigureHelper
from mnist_exp.record.metrics import EpochMetrics

pytestmark = pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin", reason="no helper here")


def curves(rows, title, path):
    """The figure helper's job for a run's curves.png."""
    return [("plot_curves", {"rows": rows, "title": title, "path": path})]


def rows(n: int):
    return [EpochMetrics(e, 1.0 / (e + 1), 0.5, 1.1 / (e + 1), 0.45, 0.01) for e in range(n)]


def assert_png(path: Path, width=1210, height=506):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.image.imread(path).shape[:2] == (height, width)


def assert_gone(pid: int):
    with pytest.raises(ChildProcessError):  # reaped: no zombie left behind
        os.waitpid(pid, os.WNOHANG)


def test_the_helper_draws_the_figure_and_exits(tmp_path):
    with FigureHelper() as figure:
        pid = figure.pid
        assert pid is not None
        assert figure.draw(curves(rows(20), "by the helper", tmp_path / "curves.png")) is True
    assert_png(tmp_path / "curves.png")
    assert_gone(pid)


@pytest.mark.parametrize("case", ["helper killed", "helper stalled", "2,000 epochs: more than the pipe holds"])
def test_the_run_draws_what_the_helper_cannot_without_blocking(tmp_path, monkeypatch, case):
    monkeypatch.setattr(figure_process, "WAIT_SECONDS", 1.0)  # a stalled helper is given up on after this
    with FigureHelper() as figure:
        pid = figure.pid
        if case.startswith("helper"):
            os.kill(pid, signal.SIGKILL if case == "helper killed" else signal.SIGSTOP)
        epochs = 2000 if case.startswith("2,000") else 5
        assert figure.draw(curves(rows(epochs), case, tmp_path / "curves.png")) is False
    assert_png(tmp_path / "curves.png")
    assert_gone(pid)


def test_a_run_that_fails_leaves_no_helper_behind(tmp_path):
    with pytest.raises(RuntimeError), FigureHelper() as figure:
        pid = figure.pid
        raise RuntimeError("the run failed before its figure")
    assert_gone(pid)
    assert not list(tmp_path.iterdir())


def test_a_disabled_helper_forks_nothing(tmp_path):
    with FigureHelper(enabled=False) as figure:
        assert figure.pid is None
        assert figure.draw(curves(rows(3), "in process", tmp_path / "curves.png")) is False
    assert_png(tmp_path / "curves.png")


def test_a_run_leaves_matplotlib_to_its_helper(mnist_dir, tmp_path):
    """The run itself never imports matplotlib, yet writes its figure."""
    code = ("import sys; from mnist_exp.cli.main import main; sys.argv[0] = 'mnist_exp'\n"
            "try:\n    main()\nfinally:\n    print('matplotlib' in sys.modules)")
    env = cli_env()
    done = subprocess.run([sys.executable, "-c", code, "epochs=2", "train_samples=100", "test_samples=100",
                           f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "False"  # after the log lines
    assert_png(tmp_path / "run" / "curves.png")


KILLED_MID_WRITE = """
import os, signal, sys
from pathlib import Path
from matplotlib.figure import Figure
from mnist_exp.runner import plots
from mnist_exp.record.metrics import EpochMetrics

real = Figure.savefig
def savefig(self, target, **kwargs):  # half the PNG reaches whatever savefig was given, then kill -9
    import io
    whole = io.BytesIO()
    real(self, whole, **kwargs)
    with open(target, "wb") as f:
        f.write(whole.getvalue()[:100])
        f.flush()
    os.kill(os.getpid(), signal.SIGKILL)
Figure.savefig = savefig
rows = [EpochMetrics(e, 1.0, 0.5, 1.0, 0.5, 0.0) for e in range(3)]
plots.plot_curves(rows, "killed", Path(sys.argv[1]))
"""


@pytest.mark.parametrize("before", ["no file", "an old file"])
def test_a_figure_killed_mid_write_leaves_the_old_file_or_none(tmp_path, before):
    """kill -9 while a PNG is written: never a truncated curves.png (the old one, or none)."""
    target = tmp_path / "curves.png"
    if before == "an old file":
        FigureHelper(enabled=False).draw(curves(rows(2), "old", target))
        old = target.read_bytes()
    done = subprocess.run([sys.executable, "-c", KILLED_MID_WRITE, str(target)], capture_output=True)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()
    if before == "an old file":
        assert target.read_bytes() == old
    else:
        assert not target.exists()


def test_no_figure_is_saved_straight_to_its_final_path():
    """Every savefig in the package and scripts is inside figure_files.save, which writes a path atomically."""
    import ast

    root = Path(__file__).resolve().parents[1]
    outside = []
    for source in [*(root / "mnist_exp").rglob("*.py"), *(root / "scripts").glob("*.py")]:
        tree = ast.parse(source.read_text())
        inside = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name == "save" and source.name == "figure_files.py":
                inside |= {id(n) for n in ast.walk(node)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("savefig", "imsave", "print_png", "print_figure") and id(node) not in inside):
                outside.append(f"{source.relative_to(root)}:{node.lineno}")
    assert outside == []


@pytest.fixture
def stalled_run(tmp_path):
    """stalled_run(*args) -> (run process, its figure helper, stopped with SIGSTOP); both are
    killed at the end of the test if still there."""
    started = []
    env = cli_env()

    def start(*args):
        proc = subprocess.Popen([sys.executable, "-m", "mnist_exp", *args, f"hydra.run.dir={tmp_path / 'run'}"],
                                cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        started.append(proc.pid)
        helper = helper_of(proc)
        started.append(helper)
        wait_for(lambda: not files_under(tmp_path, helper), proc, "a helper that let go of the run's files")
        os.kill(helper, signal.SIGSTOP)  # stalled as it imports or draws, not in the instant after its fork
        return proc, helper

    yield start
    for pid in started:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def wait_for(condition, proc: subprocess.Popen, what: str, seconds: float = 120.0):
    deadline = time.monotonic() + seconds
    while not (found := condition()):
        assert time.monotonic() < deadline and proc.poll() is None, f"never: {what}"
        time.sleep(0.02)
    return found


def helper_of(proc: subprocess.Popen) -> int:
    """The run's figure helper: the one child of its main thread."""
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    return int(wait_for(lambda: children.read_text().split(), proc, "a figure helper")[0])


def files_under(directory: Path, pid: int) -> list:
    """The files under `directory` that process `pid` holds open (the run's lock, say)."""
    targets = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            targets.append(os.readlink(fd))
        except OSError:  # closed meanwhile
            pass
    return [t for t in targets if t.startswith(str(directory))]


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def summary_status(run_dir: Path) -> str:
    return json.loads((run_dir / "summary.json").read_text())["status"]


linux_only = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc")


@pytest.mark.slow
@linux_only
def test_ctrl_c_while_the_helper_stalls_ends_the_run_at_once(mnist_dir, tmp_path, stalled_run):
    """The run waits for a stopped helper at its end: Ctrl-C ends the wait, exit 130, interrupted."""
    run_dir = tmp_path / "run"
    proc, helper = stalled_run("epochs=2", "train_samples=300", "test_samples=100")
    wait_for((run_dir / "weights.npz").is_file, proc, "the final writes")  # just before the figures
    time.sleep(0.3)
    began = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert time.monotonic() - began < 5, "Ctrl-C waited for the helper"
    assert "Traceback" not in err, err
    assert summary_status(run_dir) == "interrupted"
    assert not alive(helper)
    done = run_cli([f"resume={run_dir}"], cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert summary_status(run_dir) == "completed"
    assert_png(run_dir / "curves.png")


@linux_only
def test_the_helper_of_a_killed_run_dies_and_the_run_resumes(mnist_dir, tmp_path, stalled_run):
    """kill -9 of a run whose helper is stopped: the helper goes too, and `resume=` is not refused."""
    run_dir = tmp_path / "run"
    proc, helper = stalled_run("epochs=300", "train_samples=2000", "test_samples=100")
    wait_for((run_dir / "checkpoint.npz").is_file, proc, "a checkpoint")
    proc.kill()
    proc.wait(timeout=60)  # not its stderr: a helper left alive would hold the pipe open
    epochs = len((run_dir / "metrics.csv").read_text().splitlines())  # those done, and one more
    done = run_cli([f"resume={run_dir}", f"epochs={epochs}"], cwd=tmp_path, timeout=120)
    assert done.returncode == 0 and "in use" not in done.stderr, done.stderr
    deadline = time.monotonic() + 5
    while alive(helper) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(helper), "the helper outlived its run"


@linux_only
def test_the_helper_keeps_no_descriptor_of_its_parent(tmp_path):
    """Not the run's lock: a flock lasts while any process holds it."""
    from mnist_exp.files import ownership

    run_dir = ownership.claim(tmp_path / "run", fresh=True)
    try:
        with FigureHelper() as figure:
            time.sleep(0.5)  # the helper has started and closed what it does not need
            assert files_under(tmp_path, figure.pid) == []
    finally:
        ownership.release(run_dir)


@pytest.mark.slow
@linux_only
def test_a_stalled_helper_delays_the_run_by_seconds_not_minutes(mnist_dir, tmp_path, stalled_run):
    run_dir = tmp_path / "run"
    proc, _ = stalled_run("epochs=2", "train_samples=300", "test_samples=100")
    wait_for((run_dir / "weights.npz").is_file, proc, "the final writes")
    began = time.monotonic()
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    assert time.monotonic() - began < figure_process.WAIT_SECONDS + 15
    assert figure_process.WAIT_SECONDS <= 30
    assert_png(run_dir / "curves.png")
