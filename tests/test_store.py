import json
import os

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from madvae.errors import MadvaeError
from madvae.store import SetWriter, open_set, write_set
from conftest import images_and_labels

ADV = dict(dataset="mnist-5k", split="test", attack="fgsm", params={"eps": 0.3}, seed=3,
           source_classifier_sha256="ab" * 32)


def write_adv(path, n=40):
    x, y = images_and_labels(n)
    x_adv = np.clip(x + 0.1, 0, 1).astype(np.float32)
    write_set(path, x, y, x_adv, **ADV)
    return x, y, x_adv


def test_round_trip_and_attributes(tmp_path):
    path = tmp_path / "s.h5"
    x, y, x_adv = write_adv(path, n=300)
    with open_set(path) as reader:
        assert reader.n == 300 and reader.has_adv and reader.attack == "fgsm"
        assert reader.params == {"eps": 0.3}
        data = reader.read(0, 300)
        np.testing.assert_array_equal(data["x_clean"], x)
        np.testing.assert_array_equal(data["x_adv"], x_adv)
        np.testing.assert_array_equal(data["y"], y)
        assert [len(b["y"]) for b in reader.batches(128)] == [128, 128, 44]
    with h5py.File(path) as f:
        for key in ("encoding-type", "encoding-version", "creator", "creator_version", "created", "dataset",
                    "split", "attack", "params", "seed", "source_classifier_sha256", "complete"):
            assert key in f.attrs, key
        ds = f["x_adv"]
        assert ds.dims[0].label == "sample"
        assert ds.compression == "gzip" and ds.shuffle and ds.fletcher32
        assert 64 <= ds.chunks[0] <= 1024


def test_failed_write_leaves_no_file(tmp_path):
    path = tmp_path / "s.h5"
    x, y = images_and_labels(10)
    with pytest.raises(RuntimeError):
        with SetWriter(path, 10, dataset="d", split="test") as writer:
            writer.write(x[:5], y[:5])
            assert not path.exists()  # nothing under the final name while writing
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_short_write_is_not_marked_complete(tmp_path):
    path = tmp_path / "s.h5"
    x, y = images_and_labels(10)
    with pytest.raises(MadvaeError, match="only 5 of 10"):
        with SetWriter(path, 10, dataset="d", split="test") as writer:
            writer.write(x[:5], y[:5])
    assert list(tmp_path.iterdir()) == []


def _tamper(path, action):
    with h5py.File(path, "r+") as f:
        action(f)


def _replace(name, values, low=None, high=None):
    def action(f):
        del f[name]
        f.create_dataset(name, data=values)
        f[name].attrs["min"] = values.min() if low is None else low
        f[name].attrs["max"] = values.max() if high is None else high
    return action


BAD_SETS = {
    "foreign": (lambda f: f.attrs.__setitem__("encoding-type", "anndata"), "not a madvae set"),
    "version": (lambda f: f.attrs.__setitem__("encoding-version", "9.0"), "unsupported encoding-version"),
    "incomplete": (lambda f: f.attrs.__delitem__("complete"), "incomplete set"),
    "missing-dataset": (lambda f: f.__delitem__("x_adv"), "'x_adv' is missing"),
    "shape": (_replace("x_clean", np.zeros((40, 1, 14, 14), np.float32)), "shape"),
    "dtype": (_replace("x_clean", np.zeros((40, 1, 28, 28), np.float64)), "dtype"),
    "range-declared": (_replace("x_adv", np.full((40, 1, 28, 28), 2.0, np.float32)), "outside"),
    "range-hidden": (_replace("x_adv", np.full((40, 1, 28, 28), 2.0, np.float32), 0.0, 1.0), "outside \\[0, 1\\]"),
    "nan-hidden": (_replace("x_adv", np.full((40, 1, 28, 28), np.nan, np.float32), 0.0, 1.0), "NaN"),
    "labels-hidden": (_replace("y", np.full(40, 12, np.int64), 0, 9), "label 12"),
    "no-classifier": (lambda f: f.attrs.__setitem__("source_classifier_sha256", ""), "source_classifier"),
    "empty": (lambda f: f.attrs.__setitem__("n", 0), "at least one"),
}


@pytest.mark.parametrize("case", sorted(BAD_SETS))
def test_reader_rejects_bad_sets(tmp_path, case):
    path = tmp_path / "s.h5"
    write_adv(path)
    action, message = BAD_SETS[case]
    _tamper(path, action)
    with pytest.raises(MadvaeError, match=message) as info:
        with open_set(path) as reader:
            for _ in reader.batches(16):
                pass
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_reader_rejects_non_hdf5_and_truncated(tmp_path):
    empty = tmp_path / "empty.h5"
    empty.write_bytes(b"")
    text = tmp_path / "text.h5"
    text.write_text("hello")
    good = tmp_path / "good.h5"
    write_adv(good, n=300)
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    for path in (empty, text, truncated, tmp_path / "missing.h5"):
        with pytest.raises(MadvaeError) as info:
            with open_set(path) as reader:
                reader.read(0, reader.n)
        assert str(path) in str(info.value)


def test_checksum_catches_flipped_bytes(tmp_path):
    path = tmp_path / "s.h5"
    write_adv(path, n=300)
    with h5py.File(path) as f:
        offset = f["x_adv"].id.get_chunk_info(0).byte_offset
    raw = bytearray(path.read_bytes())
    raw[offset + 100] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(MadvaeError, match="corrupt"):
        with open_set(path) as reader:
            reader.read(0, 300)


def test_huge_declared_set_is_refused_without_allocating(tmp_path):
    """A set declaring 10^8 images (313 GB of float32) whose chunks were never written is refused at once (its
    fill values would pass every value check), and opening it allocates nothing."""
    import resource

    path = tmp_path / "huge.h5"
    write_adv(path, n=40)
    n = 100_000_000
    with h5py.File(path, "r+") as f:
        for name in ("x_clean", "x_adv"):
            del f[name]
            f.create_dataset(name, shape=(n, 1, 28, 28), dtype="f4", chunks=(256, 1, 28, 28))
            f[name].attrs["min"], f[name].attrs["max"] = 0.0, 1.0
        del f["y"]
        f.create_dataset("y", shape=(n,), dtype="i8", chunks=(256,))
        f["y"].attrs["min"], f["y"].attrs["max"] = 0, 9
        f.attrs["n"] = n
    assert path.stat().st_size < 1_000_000
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(MadvaeError, match=r"stores 0 of the 390625 chunks .* never written"):
        open_set(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 100_000  # KiB: under 100 MB


def test_large_set_reads_a_slice_without_loading_the_rest(tmp_path):
    """A real 3,000-sample set: a 10-sample slice comes back without reading the other chunks."""
    path = tmp_path / "big.h5"
    write_adv(path, n=3000)
    with open_set(path) as reader:
        assert len(reader) == 3000
        assert reader.read(2000, 2010)["x_adv"].shape == (10, 1, 28, 28)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 600), seed=st.integers(0, 2**16), adversarial=st.booleans())
def test_round_trip_property(tmp_path, n, seed, adversarial):
    x, y = images_and_labels(n, seed)
    x_adv = np.flip(x, axis=0).copy() if adversarial else None
    attrs = ADV if adversarial else dict(dataset="mnist", split="train")
    path = tmp_path / f"p{n}_{seed}_{adversarial}.h5"
    write_set(path, x, y, x_adv, **attrs)
    with open_set(path) as reader:
        data = reader.read(0, n)
        assert reader.n == n and reader.has_adv == adversarial
        np.testing.assert_array_equal(data["x_clean"], x)
        np.testing.assert_array_equal(data["y"], y)
        if adversarial:
            np.testing.assert_array_equal(data["x_adv"], x_adv)
    os.remove(path)


def test_writer_refuses_empty_and_records_provenance(tmp_path):
    with pytest.raises(MadvaeError, match="empty"):
        SetWriter(tmp_path / "e.h5", 0, dataset="d", split="test")
    path = tmp_path / "p.h5"
    x, y = images_and_labels(8)
    with SetWriter(path, 8, dataset="d", split="test", provenance={"a": 1}) as writer:
        writer.write(x, y)
        writer.set_provenance(seconds=2.5)
    with open_set(path) as reader:
        assert reader.provenance == {"a": 1, "seconds": 2.5}
        assert json.loads(reader.attrs["params"]) == {}


def test_a_set_reads_without_madvae_every_axis_named_classes_named_complete_an_integer(tmp_path):
    """What h5dump, MATLAB or R see: labelled dimensions, the class names, and `complete` as the integer 1 (not
    HDF5's boolean enum)."""
    import h5py

    from madvae.registry import CLASS_NAMES

    x = np.random.default_rng(0).random((4, 1, 28, 28), dtype=np.float32)
    for dataset, first, last in (("mnist", "0", "9"), ("fashion-mnist", "T-shirt/top", "Ankle boot")):
        path = write_set(tmp_path / f"{dataset}.h5", x, np.arange(4), dataset=dataset, split="test")
        with h5py.File(path, "r") as f:
            assert [d.label for d in f["x_clean"].dims] == ["sample", "channel", "height", "width"]
            assert [d.label for d in f["y"].dims] == ["sample"]
            names = [n.decode() if isinstance(n, bytes) else n for n in f.attrs["class_names"]]
            assert names[0] == first and names[-1] == last and len(names) == 10
            assert list(CLASS_NAMES[dataset]) == names
            complete = f.attrs["complete"]
            assert complete.dtype.kind == "i" and int(complete) == 1


def test_a_set_written_with_the_boolean_complete_flag_still_opens(tmp_path):
    import h5py

    path = write_set(tmp_path / "old.h5", np.zeros((2, 1, 28, 28), dtype=np.float32), np.arange(2),
                     dataset="mnist-5k", split="test")
    with h5py.File(path, "r+") as f:
        f.attrs["complete"] = True
        del f.attrs["class_names"]
    with open_set(path) as reader:
        assert reader.n == 2
    with h5py.File(path, "r+") as f:
        f.attrs["complete"] = 0
    with pytest.raises(MadvaeError, match="incomplete set"):
        open_set(path)
