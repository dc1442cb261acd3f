"""A set's data must be stored in the file itself, in the format's chunks: external storage, external and soft
links, virtual datasets and oversized chunks are refused when the set is opened, with one line naming the file
and the dataset, and nothing read from anywhere else (no file contents in the message)."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from madvae.cli import app
from madvae.errors import MadvaeError
from madvae.store import open_set, write_set

SHAPE = (1, 28, 28)


def valid_set(path, n=8):
    rng = np.random.default_rng(0)
    return write_set(path, rng.random((n, *SHAPE), dtype=np.float32), rng.integers(0, 10, n).astype(np.int64),
                     dataset="mnist-5k", split="test", attack="none", params={}, seed=0)


def replace_x_clean(path, make):
    """Swap the set's x_clean for what ``make(file, shape)`` puts there, with the attributes a reader checks."""
    with h5py.File(path, "r+") as f:
        shape = f["x_clean"].shape
        del f["x_clean"]
        make(f, shape)
        if isinstance(f.get("x_clean"), h5py.Dataset) and "min" not in f["x_clean"].attrs:
            try:
                f["x_clean"].attrs["min"], f["x_clean"].attrs["max"] = 0.0, 1.0
            except (KeyError, OSError):
                pass


def external_storage(f, shape):
    f.create_dataset("x_clean", shape=shape, dtype="float32", external=[("/etc/passwd", 0, h5py.h5f.UNLIMITED)])


def external_link(other):
    def make(f, shape):
        f["x_clean"] = h5py.ExternalLink(str(other), "/x_clean")
    return make


def soft_link(f, shape):
    f.create_dataset("hidden", data=np.zeros(shape, np.float32)).attrs.update({"min": 0.0, "max": 1.0})
    f["x_clean"] = h5py.SoftLink("/hidden")


def virtual(other):
    def make(f, shape):
        layout = h5py.VirtualLayout(shape=shape, dtype="float32")
        layout[:] = h5py.VirtualSource(str(other), "x_clean", shape=shape)
        f.create_virtual_dataset("x_clean", layout).attrs.update({"min": 0.0, "max": 1.0})
    return make


def huge_chunk(f, shape):
    f.create_dataset("x_clean", data=np.zeros(shape, np.float32), chunks=shape, compression="gzip")


@pytest.mark.parametrize("case, needle", [("external storage", "external storage"),
                                          ("external link", "an external link"), ("soft link", "a soft link"),
                                          ("virtual dataset", "virtual dataset"), ("one huge chunk", "chunks of shape")])
def test_data_outside_the_file_or_the_format_is_refused(case, needle, tmp_path):
    other = valid_set(tmp_path / "other.h5", n=300)
    path = valid_set(tmp_path / "set.h5", n=300)
    make = {"external storage": external_storage, "external link": external_link(other), "soft link": soft_link,
            "virtual dataset": virtual(other), "one huge chunk": huge_chunk}[case]
    replace_x_clean(path, make)
    with pytest.raises(MadvaeError, match=needle) as info:
        open_set(path)
    message = str(info.value)
    assert str(path) in message and "x_clean" in message and "root:" not in message
    outcome = CliRunner().invoke(app, ["inspect", str(path)])
    lines = outcome.output.strip().splitlines()
    assert outcome.exit_code == 65 and len(lines) == 1 and needle in lines[0], outcome.output


def test_the_format_own_chunks_are_accepted(tmp_path):
    with open_set(valid_set(tmp_path / "ok.h5", n=300)) as reader:
        assert len(reader) == 300 and reader.read(0, 300)["x_clean"].shape == (300, *SHAPE)
