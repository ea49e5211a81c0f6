import gzip
import time

import pytest

from mnist_exp.data import download
from mnist_exp.data.download import fetch
from mnist_exp.errors import DataError

BODY = b"the payload " * 1000


def accept_body(path):
    if path.read_bytes() != BODY:
        raise DataError("not the expected bytes")


def test_downloads_from_the_first_mirror(server, tmp_path):
    server.serve("a/", "f.bin", BODY)
    target = fetch("f.bin", [server.url + "a/"], tmp_path / "f.bin", accept_body, retries=1)
    assert target.read_bytes() == BODY
    assert server.requests == ["/a/f.bin"]
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]  # no temp file left behind


def test_failing_mirror_falls_back_to_the_next(server, tmp_path):
    server.serve("bad/", "f.bin", b"oops", behaviour=500)
    server.serve("good/", "f.bin", BODY)
    fetch("f.bin", [server.url + "bad/", server.url + "good/"], tmp_path / "f.bin", accept_body,
          retries=2, backoff=0.01)
    assert server.requests == ["/bad/f.bin", "/bad/f.bin", "/good/f.bin"]  # retried, then moved on
    assert (tmp_path / "f.bin").read_bytes() == BODY


def test_corrupt_payload_is_not_kept_and_the_next_mirror_serves(server, tmp_path):
    server.serve("corrupt/", "f.bin", b"<html>error page</html>")
    server.serve("good/", "f.bin", BODY)
    fetch("f.bin", [server.url + "corrupt/", server.url + "good/"], tmp_path / "f.bin", accept_body, retries=3)
    assert server.requests == ["/corrupt/f.bin", "/good/f.bin"]  # bad bytes are not retried


def test_every_mirror_failing_names_the_file_and_each_url(server, closed_port_url, tmp_path):
    server.serve("a/", "f.bin", b"x", behaviour=404)
    target = tmp_path / "f.bin"
    target.write_bytes(b"previous content")
    with pytest.raises(DataError) as info:
        fetch("f.bin", [server.url + "a/", closed_port_url], target, accept_body, retries=1)
    message = str(info.value)
    assert message.startswith("could not download f.bin; tried ")
    assert f"{server.url}a/f.bin: HTTP 404" in message
    assert f"{closed_port_url}f.bin: connection failed" in message
    assert "\n" not in message
    assert target.read_bytes() == b"previous content"  # a failed download never damages the file


def test_connection_dropped_mid_file_is_retried(server, tmp_path):
    server.serve("a/", "f.bin", BODY, behaviour="truncate")
    with pytest.raises(DataError, match="connection dropped mid-file \\(2 attempts\\)"):
        fetch("f.bin", [server.url + "a/"], tmp_path / "f.bin", accept_body, retries=2, backoff=0.01)
    assert len(server.requests) == 2
    assert list(tmp_path.iterdir()) == []


def test_stalling_mirror_times_out(server, tmp_path):
    server.serve("slow/", "f.bin", BODY, behaviour="stall")
    server.httpd.stall_seconds = 2.0
    with pytest.raises(DataError, match="slow/f.bin: timed out"):
        fetch("f.bin", [server.url + "slow/"], tmp_path / "f.bin", accept_body, timeout=0.3, retries=1)


def test_gzip_payload_is_stored_as_served(server, tmp_path):
    packed = gzip.compress(BODY)
    server.serve("", "f.gz", packed)
    fetch("f.gz", [server.url], tmp_path / "f.gz", lambda p: None, retries=1)
    assert (tmp_path / "f.gz").read_bytes() == packed


@pytest.mark.parametrize("behaviour", ["trickle", "trickle headers"])
def test_a_mirror_that_trickles_is_cut_off_at_the_deadline(behaviour, server, tmp_path):
    server.serve("slow/", "f.bin", BODY, behaviour=behaviour)
    began = time.monotonic()
    with pytest.raises(DataError, match=r"not complete after 2 s \(data.deadline\)"):
        fetch("f.bin", [server.url + "slow/"], tmp_path / "f.bin", accept_body, timeout=1.0, retries=1, deadline=2.0)
    assert time.monotonic() - began < 10
    assert list(tmp_path.iterdir()) == []


def test_a_mirror_streaming_without_end_is_refused_at_the_size_cap(server, tmp_path):
    server.serve("big/", "f.bin", b"", behaviour="endless")
    with pytest.raises(DataError, match="not an MNIST file"):
        fetch("f.bin", [server.url + "big/"], tmp_path / "f.bin", accept_body, retries=3, max_bytes=1 << 20)
    assert server.requests == ["/big/f.bin"]  # a payload too large is not retried
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_backoff_between_attempts_is_capped(server, tmp_path, monkeypatch):
    pauses = []  # the backoff's own seam: time.sleep is also called by Popen.wait and server threads
    monkeypatch.setattr(download, "_backoff_sleep", pauses.append)
    server.serve("a/", "f.bin", b"x", behaviour=500)
    with pytest.raises(DataError, match="10 attempts"):
        fetch("f.bin", [server.url + "a/"], tmp_path / "f.bin", accept_body, retries=10)
    assert len(pauses) == 9 and max(pauses) == download.MAX_BACKOFF and sum(pauses) < 60


def test_a_bad_payload_is_named_by_its_url_not_the_temp_file(server, tmp_path):
    server.serve("a/", "f.bin", b"<html>")

    def reject(path):
        raise DataError(f"{path}: MD5 abc does not match the expected def")

    with pytest.raises(DataError) as info:
        fetch("f.bin", [server.url + "a/"], tmp_path / "f.bin", reject, retries=1)
    assert ".part" not in str(info.value) and f"{server.url}a/f.bin: MD5 abc" in str(info.value)


@pytest.mark.parametrize("behaviour", ["trickle", "trickle headers"])
def test_a_trickling_mirror_is_given_up_for_the_next_within_its_speed_window(behaviour, server, tmp_path):
    """Under speed_limit bytes/s for speed_time s (curl's --speed-limit/--speed-time): that mirror
    is given up at once, not retried, and the next one serves; data.deadline stays as it is."""
    server.serve("slow/", "f.bin", BODY, behaviour=behaviour)
    server.serve("good/", "f.bin", BODY)
    began = time.monotonic()
    fetch("f.bin", [server.url + "slow/", server.url + "good/"], tmp_path / "f.bin", accept_body, timeout=5.0,
          retries=3, speed_time=1.0)
    assert time.monotonic() - began < 6
    assert server.requests == ["/slow/f.bin", "/good/f.bin"]
    assert (tmp_path / "f.bin").read_bytes() == BODY


def test_a_trickling_mirror_is_named_with_its_rate(server, tmp_path):
    server.serve("slow/", "f.bin", BODY, behaviour="trickle")
    with pytest.raises(DataError, match=r"slow/f.bin: too slow: under 1024 bytes/s for 1 s"):
        fetch("f.bin", [server.url + "slow/"], tmp_path / "f.bin", accept_body, timeout=5.0, speed_time=1.0)
    assert list(tmp_path.iterdir()) == []


def test_the_speed_floor_costs_a_trickling_mirror_a_minute_at_most():
    assert download.SPEED_TIME <= 60 and download.SPEED_LIMIT >= 1024  # bytes/s; the MNIST files are ~10 MB


@pytest.mark.slow
def test_a_mirror_at_a_steady_rate_above_the_floor_is_not_cut(server, tmp_path):
    server.serve("ok/", "f.bin", BODY, behaviour="trickle")  # 5 bytes/s: above a floor of 2
    server.httpd.drip_seconds = 3.0  # then it drops the connection: a retry would ask again
    with pytest.raises(DataError, match="connection dropped mid-file"):
        fetch("f.bin", [server.url + "ok/"], tmp_path / "f.bin", accept_body, timeout=5.0, retries=1,
              speed_limit=2, speed_time=1.0)
