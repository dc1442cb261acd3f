"""The paper's own data set: the full MNIST IDX files beside the repository (../shared/data/mnist), read as they
are, split 55,000 / 5,000 / 10,000 with the official per-class counts.

Skipped on a machine without that folder, except in CI (CI set): there a missing folder is a failure, so the
test cannot silently stop running.
"""
from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from madvae.cli import app
from madvae.data import VAL_PER_CLASS, load_source, read_idx
from madvae.store import open_set

REPO = Path(__file__).resolve().parents[1]
ROOT = REPO.parent / "shared" / "data" / "mnist"
# LeCun, Cortes and Burges' files: per-class label counts of digits 0-9 (the folder's README lists them too)
TRAIN_FILE_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_FILE_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
SHA256 = {"train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
          "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
          "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
          "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"}


@pytest.fixture(scope="module")
def root() -> Path:
    if not ROOT.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"CI: the full MNIST files are missing ({ROOT})")
        pytest.skip(f"no full MNIST beside the repository ({ROOT})")
    return ROOT


def _hashes(images) -> list[bytes]:
    return [hashlib.sha256(image.tobytes()).digest() for image in images]


def test_the_files_are_the_known_ones(root):
    for stem, digest in SHA256.items():
        with gzip.open(root / f"{stem}.gz", "rb") as handle:
            assert hashlib.sha256(handle.read()).hexdigest() == digest, stem


def test_all_70000_digits_load_with_the_official_counts(root):
    splits = {split: load_source("mnist", split, root=root) for split in ("train", "val", "test")}
    counts = {split: np.bincount(y, minlength=10).tolist() for split, (_, y) in splits.items()}
    assert {split: len(y) for split, (_, y) in splits.items()} == {"train": 55000, "val": 5000, "test": 10000}
    assert counts["test"] == TEST_FILE_COUNTS
    assert counts["val"] == [VAL_PER_CLASS] * 10
    assert [t + v for t, v in zip(counts["train"], counts["val"])] == TRAIN_FILE_COUNTS
    for x, _ in splits.values():
        assert x.shape[1:] == (1, 28, 28) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    # val is held out of the training file: train + val are exactly its 60,000 images, and no image is shared
    hashes = {split: _hashes(x) for split, (x, _) in splits.items()}
    assert not set(hashes["val"]) & (set(hashes["train"]) | set(hashes["test"]))
    training_file = read_idx(root / "train-images-idx3-ubyte.gz")
    assert np.bincount(read_idx(root / "train-labels-idx1-ubyte.gz"), minlength=10).tolist() == TRAIN_FILE_COUNTS
    as_loaded = (training_file.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    assert sorted(hashes["train"] + hashes["val"]) == sorted(_hashes(as_loaded))


def test_gen_writes_a_full_mnist_set_from_the_relative_root(root, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # the command as the README gives it: --root ../shared/data/mnist
    out = tmp_path / "mnist_test100.h5"
    result = CliRunner().invoke(app, ["gen", "--attack", "none", "--dataset", "mnist", "--root",
                                      "../shared/data/mnist", "--split", "test", "--limit", "100", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with open_set(out) as reader:
        assert (reader.n, reader.dataset, reader.split, reader.attack) == (100, "mnist", "test", "none")
        labels = reader.read(0, 100, names=["y"])["y"]
    # the test file's first 100 digits, in file order
    np.testing.assert_array_equal(labels, read_idx(root / "t10k-labels-idx1-ubyte.gz")[:100])
