import gzip
import struct

import numpy as np
import pytest

from mnist_exp.data import idx
from mnist_exp.errors import DataError


def test_images_round_trip_as_count_by_784_uint8():
    images = np.arange(3 * 28 * 28).reshape(3, 28, 28) % 256
    parsed = idx.parse_images(idx.encode_images(images), "x")
    assert parsed.shape == (3, 784) and parsed.dtype == np.uint8
    np.testing.assert_array_equal(parsed, images.reshape(3, 784))


def test_labels_round_trip():
    parsed = idx.parse_labels(idx.encode_labels(np.array([5, 0, 4, 9])), "x")
    assert parsed.tolist() == [5, 0, 4, 9]


@pytest.mark.parametrize("raw, message", [
    (struct.pack(">4I", 2049, 1, 28, 28) + bytes(784), "wrong IDX magic 2049 (expected 2051)"),
    (struct.pack(">4I", 2051, 2, 28, 28) + bytes(784), "the header promises"),
    (struct.pack(">4I", 2051, 1, 28, 28) + bytes(785), "the header promises"),
    (struct.pack(">4I", 2051, 1, 32, 32) + bytes(1024), "images are 32x32, expected 28x28"),
    (b"\x00\x00", "too short for an IDX header"),
])
def test_bad_image_files_are_refused_naming_the_file(raw, message):
    with pytest.raises(DataError, match="images.idx") as info:
        idx.parse_images(raw, "images.idx")
    assert message in str(info.value)


def test_label_outside_0_to_9_is_refused():
    with pytest.raises(DataError, match="label 10 outside 0..9"):
        idx.parse_labels(idx.encode_labels(np.array([1, 10])), "labels.idx")


def test_read_bytes_accepts_gzip_and_plain_files(tmp_path):
    raw = idx.encode_labels(np.array([1, 2, 3]))
    (tmp_path / "plain").write_bytes(raw)
    (tmp_path / "packed.gz").write_bytes(gzip.compress(raw))
    assert idx.read_bytes(tmp_path / "plain") == raw
    assert idx.read_bytes(tmp_path / "packed.gz") == raw


def test_truncated_gzip_is_a_data_error(tmp_path):
    path = tmp_path / "cut.gz"
    packed = gzip.compress(np.random.default_rng(0).bytes(10000))
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DataError, match="cut.gz: cannot read"):
        idx.read_bytes(path)


def test_decompression_stops_at_the_limit(tmp_path):
    path = tmp_path / "bomb.gz"
    path.write_bytes(gzip.compress(bytes(10_000)))
    with pytest.raises(DataError, match="larger than 1000 bytes once decompressed"):
        idx.read_bytes(path, limit=1000)


def test_real_training_labels_match_the_documented_facts(mnist_dir):
    labels = idx.parse_labels(idx.read_bytes(mnist_dir / "train-labels-idx1-ubyte.gz"), "train labels")
    assert labels[:3].tolist() == [5, 0, 4] and labels[59999] == 8
    assert np.bincount(labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
