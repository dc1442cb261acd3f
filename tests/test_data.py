import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

from madvae.data import FASHION_DEFAULT_ROOT, load_source, read_idx
from madvae.errors import MadvaeError


def _hashes(images):
    return {hashlib.sha256(image.tobytes()).hexdigest() for image in images}


def test_mnist_5k_split_is_stratified_disjoint_and_deterministic():
    train_x, train_y = load_source("mnist-5k", "train")
    test_x, test_y = load_source("mnist-5k", "test")
    assert train_x.shape == (3500, 1, 28, 28) and test_x.shape == (1000, 1, 28, 28)
    assert train_x.dtype == np.float32 and train_y.dtype == np.int64
    assert 0.0 <= train_x.min() and train_x.max() <= 1.0 and train_x.max() > 0.99
    assert np.bincount(train_y).tolist() == [350] * 10 and np.bincount(test_y).tolist() == [100] * 10
    assert not _hashes(train_x) & _hashes(test_x)
    # the sample is stored sorted by label; a prefix (--limit) must still hold every class
    assert len(np.unique(train_y[:50])) == 10 and len(np.unique(test_y[:50])) == 10
    again_x, again_y = load_source("mnist-5k", "test")
    np.testing.assert_array_equal(again_x, test_x)
    np.testing.assert_array_equal(again_y, test_y)


@pytest.mark.skipif(not FASHION_DEFAULT_ROOT.exists(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_from_debian_idx_files():
    x, y = load_source("fashion-mnist", "test")
    assert x.shape == (10000, 1, 28, 28) and x.dtype == np.float32
    assert np.bincount(y).tolist() == [1000] * 10
    assert 0.0 <= x.min() and x.max() <= 1.0


def test_missing_sources_say_how_to_get_them(tmp_path):
    with pytest.raises(MadvaeError, match="dataset-fashion-mnist"):
        load_source("fashion-mnist", "train", root=tmp_path)
    with pytest.raises(MadvaeError, match="--download"):
        load_source("mnist", "train", root=tmp_path)
    with pytest.raises(MadvaeError, match="unknown dataset"):
        load_source("cifar", "train")
    with pytest.raises(MadvaeError, match="unknown split"):
        load_source("mnist-5k", "validation")


def _write_idx(path: Path, array: np.ndarray, compress: bool):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


@pytest.mark.parametrize("compress", [False, True])
def test_local_idx_root_for_mnist(tmp_path, compress):
    """`--root` with torchvision's MNIST layout (DIR/MNIST/raw) reads local files, no network."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images = np.arange(5 * 784).reshape(5, 28, 28) % 256
    labels = np.array([3, 1, 4, 1, 5])
    suffix = ".gz" if compress else ""
    for split, prefix in (("train", "train"), ("test", "t10k")):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte{suffix}", images, compress)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte{suffix}", labels, compress)
    x, y = load_source("mnist", "test", root=tmp_path)
    assert x.shape == (5, 1, 28, 28) and y.tolist() == [3, 1, 4, 1, 5]
    np.testing.assert_allclose(x[0, 0, 0, 1], 1 / 255)


def test_idx_reader_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad-idx"
    bad.write_bytes(b"\x00\x00\x09\x01" + (3).to_bytes(4, "big") + b"abc")
    with pytest.raises(MadvaeError, match="magic"):
        read_idx(bad)
    short = tmp_path / "short-idx"
    short.write_bytes(b"\x00\x00\x08\x01" + (10).to_bytes(4, "big") + b"abc")
    with pytest.raises(MadvaeError, match="truncated"):
        read_idx(short)
