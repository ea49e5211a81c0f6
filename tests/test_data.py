import gzip
import multiprocessing
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import data_config
from mnist_exp.data import idx
from mnist_exp.config import DataConfig
from mnist_exp.data.datasets import _file_lock, cache_dir, load_dataset, scale, split
from mnist_exp.errors import DataError


def write_cache(directory: Path, files: dict, packed=True) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, raw in files.values():
        if packed:
            (directory / f"{name}.gz").write_bytes(gzip.compress(raw))
        else:
            (directory / name).write_bytes(raw)


@pytest.mark.parametrize("packed", [True, False])
def test_valid_cache_loads_without_any_network_access(tmp_path, tiny_files, server, packed):
    write_cache(tmp_path, tiny_files, packed)
    dataset = load_dataset(data_config(tiny_files, tmp_path, [server.url]))
    assert server.requests == []
    assert dataset.train_images.shape == (50, 784) and dataset.test_labels.shape == (20,)
    assert dataset.checksums == {name: idx.md5(raw) for name, raw in tiny_files.values()}


def test_warm_load_reuses_parsed_arrays_until_the_file_changes(tmp_path, tiny_files, server):
    write_cache(tmp_path, tiny_files)
    cfg = data_config(tiny_files, tmp_path, [server.url])
    first = load_dataset(cfg)
    path = tmp_path / f"{tiny_files['train_images'][0]}.gz"
    stat = path.stat()
    path.write_bytes(b"x" * stat.st_size)  # damaged, but same size and time: the parsed copy serves
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    np.testing.assert_array_equal(load_dataset(cfg).train_images, first.train_images)
    assert server.requests == []
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # changed: checked again, and replaced
    server.serve_dataset("", tiny_files)
    np.testing.assert_array_equal(load_dataset(cfg).train_images, first.train_images)
    assert server.requests == [f"/{path.name}"]


@pytest.mark.slow
def test_cold_cache_downloads_each_file_once(tmp_path, tiny_files, server):
    server.serve_dataset("m/", tiny_files)
    cfg = data_config(tiny_files, tmp_path / "cache", [server.url + "m/"])
    first = load_dataset(cfg)
    assert sorted(server.requests) == sorted(f"/m/{name}.gz" for name, _ in tiny_files.values())
    second = load_dataset(cfg)
    assert len(server.requests) == 4  # the second load used the cache
    np.testing.assert_array_equal(first.train_images, second.train_images)


def test_bad_cached_file_is_downloaded_again(tmp_path, tiny_files, server):
    write_cache(tmp_path, tiny_files, packed=False)
    name = tiny_files["train_labels"][0]
    (tmp_path / name).write_bytes(idx.encode_labels(np.zeros(50)))  # right shape, wrong content
    server.serve_dataset("", tiny_files)
    dataset = load_dataset(data_config(tiny_files, tmp_path, [server.url]))
    assert server.requests == [f"/{name}.gz"]
    assert not (tmp_path / name).exists()  # the bad copy no longer shadows the good one
    assert idx.md5(idx.encode_labels(dataset.train_labels)) == idx.md5(tiny_files["train_labels"][1])


def test_bad_cache_and_bad_mirror_give_one_clear_error(tmp_path, tiny_files, server):
    write_cache(tmp_path, tiny_files)
    name = tiny_files["test_images"][0]
    (tmp_path / f"{name}.gz").write_bytes(b"<html>503</html>")
    server.serve("", f"{name}.gz", b"<html>503</html>")
    with pytest.raises(DataError) as info:
        load_dataset(data_config(tiny_files, tmp_path, [server.url]))
    message = str(info.value)
    assert message.startswith(f"{name}: the cached copy is bad (")
    assert f"could not download {name}.gz; tried {server.url}{name}.gz:" in message
    assert "\n" not in message


def test_unreachable_mirrors_name_the_missing_file(tmp_path, tiny_files, closed_port_url):
    cfg = data_config(tiny_files, tmp_path, [closed_port_url], retries=1)
    name = tiny_files["train_images"][0]
    with pytest.raises(DataError, match=f"{name}: not in {tmp_path}, and could not download .*connection failed"):
        load_dataset(cfg)


def test_unwritable_cache_dir_is_a_clear_error(tmp_path, tiny_files, server):
    (tmp_path / "a_file").write_text("not a directory")
    cfg = data_config(tiny_files, tmp_path / "a_file" / "cache", [server.url])
    with pytest.raises(DataError, match="cannot write to the data cache .*a_file/cache"):
        load_dataset(cfg)


def _load_in_child(cfg: DataConfig, results) -> None:
    results.put(int(load_dataset(cfg).train_images.sum()))


def test_processes_sharing_a_cold_cache_download_each_file_once(tmp_path, tiny_files, server):
    server.serve_dataset("", tiny_files)
    cfg = data_config(tiny_files, tmp_path / "shared-cache", [server.url])
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    children = [ctx.Process(target=_load_in_child, args=(cfg, results)) for _ in range(4)]
    for child in children:
        child.start()
    sums = [results.get(timeout=60) for _ in children]
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    assert len(set(sums)) == 1
    assert sorted(server.requests) == sorted(f"/{name}.gz" for name, _ in tiny_files.values())


def test_cache_dir_prefers_config_then_environment_then_user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_EXP_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir(DataConfig(dir=str(tmp_path / "cfg"))) == tmp_path / "cfg"
    assert cache_dir(DataConfig()) == tmp_path / "env"
    monkeypatch.delenv("MNIST_EXP_DATA_DIR")
    assert cache_dir(DataConfig(name="mnist")) == tmp_path / "xdg" / "mnist_exp" / "mnist"


def test_split_takes_the_first_samples_scaled_and_one_hot():
    images = np.array([[0] * 783 + [255], [51] * 784, [1] * 784], dtype=np.uint8)
    labels = np.array([3, 0, 9], dtype=np.uint8)
    s = split(images, labels, 2)
    assert s.x.dtype == np.float64 and s.x.shape == (2, 784)
    assert s.x[0, -1] == 1.0 and s.x[1, 0] == pytest.approx(0.2)
    np.testing.assert_array_equal(s.y.argmax(axis=1), [3, 0])
    np.testing.assert_array_equal(s.y.sum(axis=1), [1, 1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scaled_bytes_equal_the_float64_quotient_in_the_split_dtype(dtype):
    every_byte = np.arange(256, dtype=np.uint8)
    expected = (every_byte / 255.0).astype(dtype)  # the walkthrough's x / 255, then the run's dtype
    np.testing.assert_array_equal(scale(every_byte, np.empty(256, dtype)), expected)
    s = split(every_byte.reshape(1, 256).repeat(2, axis=0), np.array([1, 2], np.uint8), 2, dtype=dtype)
    assert s.x.dtype == dtype and (s.x[0] == expected).all() and (s.pixels[1] == every_byte).all()


HOLD_LOCK = """
import sys, time
from pathlib import Path
from mnist_exp.data.datasets import _file_lock
with _file_lock(Path(sys.argv[1]), "downloading f.gz into the test cache", 60):
    print("held", flush=True)
    time.sleep(60)
"""


@pytest.mark.slow
def test_a_waiting_job_names_the_lock_holder_and_gives_up_after_its_patience(tmp_path, caplog):
    lock = tmp_path / ".f.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(DataError, match=f"waiting for pid {holder.pid} .*downloading f.gz into the test cache"):
            with _file_lock(lock, "downloading f.gz", patience=1.5):
                pass
        assert f"waiting for pid {holder.pid}" in caplog.text
        holder.send_signal(signal.SIGKILL)  # a dead holder's lock is free at once
        holder.wait(timeout=30)
        with _file_lock(lock, "downloading f.gz", patience=0.5):
            assert f"pid {os.getpid()}" in lock.read_text()
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_downloads_part_files_are_removed_by_the_next_download(tmp_path, tiny_files, server):
    server.serve_dataset("", tiny_files)
    name = tiny_files["train_images"][0]
    stale = tmp_path / f".{name}.gz.x1y2.part"
    stale.write_bytes(b"half a file")
    load_dataset(data_config(tiny_files, tmp_path, [server.url]))
    assert not stale.exists()
    assert not list(tmp_path.glob("*.part")) and not list(tmp_path.glob(".*.part"))
