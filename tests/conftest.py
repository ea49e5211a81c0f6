"""Shared fixtures: real MNIST from ../shared, tiny synthetic data, a loopback HTTP server."""

import os
import socket
from pathlib import Path

import pytest

from helpers import LoopbackServer, make_files, run_in_process
from mnist_exp.config import register

register()  # the config schema, which tests composing conf/ with Hydra's compose API need (the CLI registers its own)


@pytest.fixture(scope="session", autouse=True)
def private_user_cache(tmp_path_factory):
    """Parsed-array caches and default data dirs go to a temp dir, not the user's ~/.cache.

    A relative MNIST_EXP_DATA_DIR (as the README writes it) is made absolute: the tests start
    runs from other directories.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
        if os.environ.get("MNIST_EXP_DATA_DIR"):
            patch.setenv("MNIST_EXP_DATA_DIR", str(Path(os.environ["MNIST_EXP_DATA_DIR"]).absolute()))
        yield


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The verified copy of real MNIST that tests and CI point at through MNIST_EXP_DATA_DIR."""
    value = os.environ.get("MNIST_EXP_DATA_DIR")
    if not value:
        pytest.skip("MNIST_EXP_DATA_DIR is unset: point it at ../shared/data/mnist to run real-data tests")
    path = Path(value)
    assert path.is_dir(), f"MNIST_EXP_DATA_DIR={value} is not a directory"
    return path


@pytest.fixture
def tiny_files() -> dict:
    return make_files()


@pytest.fixture
def server():
    srv = LoopbackServer()
    yield srv
    srv.close()


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL where nothing listens: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture
def cli(monkeypatch):
    """cli(args, cwd, env=None): the command line in this process, as run_cli's result (see
    helpers.run_in_process), for refusals; `env` is set for the call."""
    def call(args, cwd, env=None):
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        return run_in_process(args, cwd, monkeypatch)
    return call
