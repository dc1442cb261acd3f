"""`madvae train --pairs-per-epoch N`: each epoch a fresh random sample of N pairs, every set in proportion, the
same sample for the same (seed, epoch) (what keeps --resume exact), and recorded so that the tables can say it."""
from __future__ import annotations

import numpy as np
import pytest

from madvae.store import open_set, write_set
from madvae.stream import epoch_size, per_set_sample, shuffled_batches
from madvae.table_notes import defense_notes


def tagged_set(path, n, tag, split="train"):
    """Images whose first pixel names their set (tag) and whose second their index, for telling samples apart."""
    x = np.zeros((n, 1, 28, 28), dtype=np.float32)
    x[:, 0, 0, 0] = tag / 10
    x[:, 0, 0, 1] = np.arange(n) / n
    return write_set(path, x, np.arange(n) % 10, x_adv=x, dataset="mnist-5k", split=split, attack="fgsm",
                     params={"eps": 0.1}, source_classifier_sha256="0" * 64)


def test_per_set_sample_is_proportional_and_exact():
    assert per_set_sample([600, 300, 100], 100) == [60, 30, 10]
    assert per_set_sample([1000, 1000, 1], 10) == [5, 5, 0]
    assert sum(per_set_sample([333, 333, 334], 7)) == 7
    assert per_set_sample([5, 5], None) == [5, 5] and per_set_sample([5, 5], 10) == [5, 5]
    assert per_set_sample([5, 5], 99) == [5, 5]


@pytest.fixture(scope="module")
def readers(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sample")
    paths = [tagged_set(folder / "a.h5", 1000, 1), tagged_set(folder / "b.h5", 600, 2), tagged_set(folder / "c.h5", 400, 3)]
    opened = [open_set(p) for p in paths]
    yield opened
    for reader in opened:
        reader.close()


def drawn(readers, epoch, per_epoch, seed=0):
    batches = list(shuffled_batches(readers, 64, seed=seed, epoch=epoch, names=["x_clean"], per_epoch=per_epoch))
    images = np.concatenate([b["x_clean"] for b in batches])
    return [(round(float(t) * 10), round(float(i) * 1000)) for t, i in images[:, 0, 0, :2]]


def test_an_epoch_draws_exactly_n_pairs_from_every_set(readers):
    pairs = drawn(readers, epoch=0, per_epoch=500)
    assert len(pairs) == 500 == epoch_size(readers, per_epoch=500)
    counts = {tag: sum(t == tag for t, _ in pairs) for tag in (1, 2, 3)}
    assert counts == {1: 250, 2: 150, 3: 100}
    assert len(set(pairs)) == 500  # no pair twice in one epoch


def test_each_epoch_draws_afresh_and_the_same_epoch_draws_the_same(readers):
    first, again, second = drawn(readers, 0, 500), drawn(readers, 0, 500), drawn(readers, 1, 500)
    assert first == again
    assert set(first) != set(second)
    assert drawn(readers, 0, 500, seed=1) != first


def test_without_a_sample_every_pair_comes_once_in_the_same_order_as_before(readers):
    everything = drawn(readers, 0, None)
    assert len(everything) == 2000 == len(set(everything)) == epoch_size(readers)
    assert drawn(readers, 0, 5000) == everything  # a sample larger than the sets is every pair


def test_training_records_the_sample_and_the_table_says_it(tmp_path):
    from madvae.train import train_vae

    sets = [tagged_set(tmp_path / "a.h5", 300, 1), tagged_set(tmp_path / "b.h5", 100, 2)]
    info = train_vae(sets, tmp_path / "vae.pt", loss="vanilla", epochs=2, batch_size=32, pairs_per_epoch=80,
                     device="cpu", progress=False)
    assert info["config"]["pairs_per_epoch"] == 80
    assert info["pairs_per_epoch"] == 80 and info["pairs_seen"] == 160 and info["n_train"] == 400
    assert [row["steps"][-1]["images"] for row in info["history"]] == [80, 160]
    training = {"loss": "vanilla", "epochs": 2, "batch_size": 32, "n_train": 400, "pairs_per_epoch": 80,
                "pairs_seen": 160, "sets": []}
    notes = " ".join(defense_notes(["vanilla"], {"vanilla": {"defense": {"training": training}}}))
    assert "each epoch a random 80 of the 400 pairs" in notes
    assert "160 pairs seen in 6 steps (paper 2,700,000 in 5,275)" in notes


def test_pairs_per_epoch_below_one_is_refused(tmp_path):
    from madvae.errors import MadvaeError
    from madvae.train import train_vae

    path = tagged_set(tmp_path / "a.h5", 50, 1)
    with pytest.raises(MadvaeError, match="pairs per epoch 0"):
        train_vae([path], tmp_path / "vae.pt", loss="vanilla", epochs=1, pairs_per_epoch=0, device="cpu",
                  progress=False)
