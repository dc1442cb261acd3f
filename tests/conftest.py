"""Shared fixtures: small real-MNIST sets from the shipped mnist-5k sample and checkpoints."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from madvae.checkpoint import save_checkpoint
from madvae.generate import make_clean_set
from madvae.models import MagNetClassifier


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module (``pytestmark = pytest.mark.usefixtures("one_thread")``): tiny models and
    batches gain nothing from a second thread, and on a busy 2-core machine two threads spin-wait."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def clean_test_set(tmp_path_factory):
    """The first 64 digits of the mnist-5k test split."""
    path = tmp_path_factory.mktemp("sets") / "test64.h5"
    make_clean_set(path, dataset="mnist-5k", split="test", limit=64)
    return path


@pytest.fixture(scope="session")
def random_classifier(tmp_path_factory):
    """An untrained MagNet: attacks' invariants hold for any model."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "random_magnet.pt"
    save_checkpoint(path, kind="classifier", arch="magnet", model=MagNetClassifier(), config={"note": "untrained"})
    return path


@pytest.fixture(scope="session")
def trained_classifier(tmp_path_factory):
    """MagNet trained on the whole mnist-5k train split (about a minute on 2 cores); returns (ckpt, test set)."""
    from madvae.train_classifier import train_classifier

    folder = tmp_path_factory.mktemp("trained")
    make_clean_set(folder / "train.h5", dataset="mnist-5k", split="train")
    make_clean_set(folder / "test.h5", dataset="mnist-5k", split="test")
    train_classifier(folder / "train.h5", folder / "magnet.pt", test_path=folder / "test.h5", epochs=8,
                     progress=False)
    return folder / "magnet.pt", folder / "test.h5"


def images_and_labels(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, n).astype(np.int64)


@pytest.fixture()
def env(tmp_path, random_classifier):
    """A bad-input case's fresh folder (tests/reliability/bad_input.py): inputs under in/, outputs under out/."""
    from tests.reliability.bad_input import Env

    return Env(tmp_path, random_classifier)
