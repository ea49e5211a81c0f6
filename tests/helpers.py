"""Helpers for the tests: tiny synthetic IDX data sets, a loopback HTTP server, the CLI."""

import gzip
import http.server
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from mnist_exp.data import idx
from mnist_exp.config import DataConfig, FileSpec


def make_files(n_train: int = 50, n_test: int = 20, seed: int = 0) -> dict:
    """Role -> (file name, decompressed IDX bytes) of a small random MNIST-shaped data set."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": idx.encode_images(rng.integers(0, 256, (n_train, 28, 28))),
        "train_labels": idx.encode_labels(rng.integers(0, 10, n_train)),
        "test_images": idx.encode_images(rng.integers(0, 256, (n_test, 28, 28))),
        "test_labels": idx.encode_labels(rng.integers(0, 10, n_test)),
    }
    return {role: (f"tiny-{role}", raw) for role, raw in arrays.items()}


def data_config(files: dict, directory: Path, mirrors=(), **kw) -> DataConfig:
    specs = {role: FileSpec(name=name, md5=idx.md5(raw)) for role, (name, raw) in files.items()}
    return DataConfig(name="tiny", dir=str(directory), mirrors=list(mirrors), **specs, **kw)


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves server.routes[path] = (behaviour, body); records every request path."""

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.server.requests.append(self.path)
        behaviour, body = self.server.routes.get(self.path, (404, b"not found"))
        if behaviour == "stall":
            time.sleep(self.server.stall_seconds)
            return
        if behaviour in ("trickle", "trickle headers", "endless"):
            self._drip(behaviour, body)
            return
        status = behaviour if isinstance(behaviour, int) else 200
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if behaviour == "truncate":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def _drip(self, behaviour, body):
        """A mirror that never finishes: a byte every 0.2 s (of the body, or of the headers), or
        data without end; each stops after `drip_seconds` so no test leaves it running."""
        end = time.time() + self.server.drip_seconds
        try:
            if behaviour == "trickle headers":
                for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 10_000:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.2)
                    if time.time() > end:
                        return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)) if behaviour == "trickle" else str(1 << 40))
            self.end_headers()
            chunk = b"\0" * (1 << 16)
            for i in range(len(body) if behaviour == "trickle" else 1 << 30):
                self.wfile.write(body[i:i + 1] if behaviour == "trickle" else chunk)
                if behaviour == "trickle":
                    self.wfile.flush()
                    time.sleep(0.2)
                if time.time() > end:
                    return
        except OSError:  # the client gave up
            return

    def log_message(self, *args):  # keep test output quiet
        pass


class LoopbackServer:
    def __init__(self):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.routes, self.httpd.requests, self.httpd.stall_seconds = {}, [], 3.0
        self.httpd.drip_seconds = 20.0
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}/"

    def serve(self, prefix: str, name: str, body: bytes, behaviour="ok") -> None:
        self.httpd.routes[f"/{prefix}{name}"] = (behaviour, body)

    def serve_dataset(self, prefix: str, files: dict, behaviour="ok") -> None:
        for name, raw in files.values():
            self.serve(prefix, f"{name}.gz", gzip.compress(raw), behaviour)

    @property
    def requests(self) -> list:
        return self.httpd.requests

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def cli_env(env=None) -> dict:
    """The environment a user's shell gives the app: without HYDRA_FULL_ERROR, which a developer
    may have set and which turns the one-line errors under test into tracebacks."""
    full_env = dict(os.environ, **(env or {}))
    full_env.pop("HYDRA_FULL_ERROR", None)
    return full_env


def run_cli(args, cwd, env=None, module="mnist_exp", timeout=300):
    """Run the installed app as a user would, in a subprocess."""
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=cli_env(env),
                          capture_output=True, text=True, timeout=timeout)


def start(args, cwd, stdout=subprocess.PIPE, env=None, **popen) -> subprocess.Popen:
    """Start the app as run_cli does, without waiting: to signal or kill it meanwhile
    (start_new_session=True in `popen`: its whole process group, workers too)."""
    return subprocess.Popen([sys.executable, "-m", "mnist_exp", *args], cwd=cwd, env=cli_env(env),
                            stdout=stdout, stderr=subprocess.PIPE, text=True, **popen)


def run_in_process(args, cwd, monkeypatch) -> subprocess.CompletedProcess:
    """The command line called in this process (no interpreter start, no imports: ~0.1-0.5 s
    where a subprocess takes ~2 s), for what ends before a run trains: refusals of bad input.
    Each call is a fresh invocation (cli/invocation.py). End-to-end paths keep run_cli."""
    import contextlib
    import io

    from mnist_exp.cli.main import main

    monkeypatch.chdir(cwd)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.setattr(sys, "argv", ["mnist_exp", *args])
    out, err, code = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())
