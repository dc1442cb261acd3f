"""The madvae HDF5 set format: one file per set, written atomically, validated and read lazily.

See docs/format.md for the specification. Nothing here ever loads a whole set into memory.
"""
from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import sys
import traceback
from pathlib import Path

import h5py
import numpy as np

from madvae import __version__
from madvae.errors import MadvaeError
from madvae.registry import CLASS_NAMES
from madvae.schemas import DATASET_ATTRIBUTES, SET_ATTRIBUTES, decode_json_fields, validate
from madvae.util import (commit_output, discard_output, prepare_output, refuse_special_file, system_errno, utc_now,
                         write_error)

ENCODING_TYPE = "madvae.set"
ENCODING_VERSION = "1.0"
IMAGE_SHAPE = (1, 28, 28)
NUM_CLASSES = 10
DIMENSIONS = {"x_clean": ("sample", "channel", "height", "width"), "x_adv": ("sample", "channel", "height", "width"),
              "y": ("sample",)}
CHUNK = 256  # samples per HDF5 chunk: ~800 KB of float32 images, inside the 64-1,024 range of the spec
REQUIRED_ATTRS = ("encoding-type", "encoding-version", "creator", "creator_version", "created",
                  "dataset", "split", "attack", "params", "seed", "n", "complete")


def _file_locking():
    """HDF5 file locking fails on some network filesystems (NFS); MADVAE_HDF5_LOCKING=0 turns it off."""
    return os.environ.get("MADVAE_HDF5_LOCKING", "1").lower() not in ("0", "false", "no")


class SetWriter:
    """Write a set of ``n`` samples batch by batch; the file appears under ``path`` only when complete.

    Use as a context manager: leaving the block normally marks the set complete and renames it into place;
    an exception (or a kill) leaves no file under ``path``."""

    def __init__(self, path, n: int, *, dataset: str, split: str, attack: str = "none", params: dict | None = None,
                 seed: int = 0, source_classifier_sha256: str = "", provenance: dict | None = None):
        if n <= 0:
            raise MadvaeError("refusing to write an empty set (0 samples)", path)
        if attack != "none" and not source_classifier_sha256:
            raise ValueError("adversarial sets must name the classifier they were crafted on")
        self.path = Path(path)
        self.n = n
        self.has_adv = attack != "none"
        self._attrs = {
            "encoding-type": ENCODING_TYPE, "encoding-version": ENCODING_VERSION,
            "creator": "madvae", "creator_version": __version__, "created": utc_now(),
            "dataset": dataset, "split": split, "attack": attack,
            "params": json.dumps(params or {}, sort_keys=True), "seed": int(seed), "n": int(n),
            "source_classifier_sha256": source_classifier_sha256,
        }
        self.provenance = dict(provenance or {})
        self._ranges: dict[str, list[float]] = {}
        self._written = 0
        self._tmp = None
        self._file = None
        # each dataset opened once, for the writer's life: a Dataset object made per write writes its cached chunks
        # when freed, where HDF5's error (disk full) is lost, and the next write then fails reading the unwritten
        # chunk back ("filter returned failure during read"). Held open, they fail inside write() with the errno.
        self._datasets: dict[str, h5py.Dataset] = {}

    def __enter__(self):
        self._tmp = prepare_output(self.path)
        with self._abort_on_error():
            self._file = h5py.File(self._tmp, "w", locking=_file_locking())
            chunk = min(CHUNK, self.n)
            names = ["x_clean", "x_adv"] if self.has_adv else ["x_clean"]
            for name in names:
                self._create(name, (self.n, *IMAGE_SHAPE), "float32", (chunk, *IMAGE_SHAPE))
            self._create("y", (self.n,), "int64", (chunk,))
        return self

    @contextlib.contextmanager
    def _abort_on_error(self):
        """Any failure deletes the temporary file; OS errors (disk full, quota) become one clear line."""
        try:
            yield
        except BaseException as exc:
            self._abort()
            if _write_failed(exc):
                raise write_error(exc, self.path) from exc
            raise

    def _create(self, name, shape, dtype, chunks):
        ds = self._file.create_dataset(name, shape=shape, dtype=dtype, chunks=chunks, compression="gzip",
                                       compression_opts=4, shuffle=True, fletcher32=True)
        for dim, label in zip(ds.dims, DIMENSIONS[name]):  # every axis named, as NeXus and anndata do
            dim.label = label
        self._ranges[name] = [np.inf, -np.inf]
        self._datasets[name] = ds

    def set_provenance(self, **items) -> None:
        """Add provenance items (timings, hashes) before the set is closed."""
        self.provenance.update(items)

    def write(self, x_clean, y, x_adv=None) -> None:
        """Append one batch (numpy arrays or CPU tensors)."""
        arrays = {"x_clean": np.asarray(x_clean, dtype=np.float32), "y": np.asarray(y, dtype=np.int64)}
        if self.has_adv:
            if x_adv is None:
                raise ValueError("this set is adversarial: write() needs x_adv")
            arrays["x_adv"] = np.asarray(x_adv, dtype=np.float32)
        count = len(arrays["y"])
        stop = self._written + count
        if stop > self.n:
            raise ValueError(f"writing {stop} samples into a set declared with {self.n}")
        for name, values in arrays.items():
            if len(values) != count:
                raise ValueError(f"batch arrays differ in length ({name})")
            low, high = self._ranges[name]
            self._ranges[name] = [min(low, float(values.min())), max(high, float(values.max()))]
            try:
                with _quiet_unraisable():  # a failing write also fails to free h5py's temporaries
                    self._datasets[name][self._written:stop] = values
            except (OSError, RuntimeError) as exc:  # disk full, quota, lost mount
                if not _write_failed(exc):
                    raise
                # h5py's frames in the traceback hold the dataset open; release them now, while the file is
                # open, or the later close fails and freeing them at exit crashes HDF5 (seen: SIGSEGV)
                with _quiet_unraisable():
                    traceback.clear_frames(exc.__traceback__)
                raise write_error(exc, self.path) from None
        self._written = stop

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self._abort()
            return False
        with self._abort_on_error():
            if self._written != self.n:
                raise MadvaeError(f"only {self._written} of {self.n} samples were written", self.path)
            for name, (low, high) in self._ranges.items():
                self._datasets[name].attrs["min"] = low
                self._datasets[name].attrs["max"] = high
            for key, value in self._attrs.items():
                self._file.attrs[key] = value
            self._file.attrs["provenance"] = json.dumps(self.provenance, sort_keys=True)
            names = CLASS_NAMES.get(self._attrs["dataset"])
            if names:
                self._file.attrs["class_names"] = np.array(names, dtype=h5py.string_dtype())
            # last: a reader trusts nothing without it; an integer 1 (not HDF5's boolean enum) reads the same in
            # h5py, h5dump, MATLAB and R; sets written before hold the boolean true
            self._file.attrs["complete"] = np.int64(1)
            self._file.flush()  # what is still cached is written now: a failure raises here, before close and rename
            self._datasets = {}
            self._file.close()
            self._file = None
        commit_output(self._tmp, self.path)
        return False

    def _abort(self):
        if self._file is not None:
            with _quiet_unraisable():
                self._datasets = {}
                try:
                    self._file.close()
                except Exception:  # the file is being thrown away; its close error adds nothing
                    pass
                self._file = None
        discard_output(self._tmp)


def _write_failed(exc: BaseException) -> bool:
    """A write the system refused (disk full, quota, lost mount): h5py raises most as OSError, some (a failed
    flush) as RuntimeError that only quotes the errno."""
    return isinstance(exc, OSError) or (isinstance(exc, RuntimeError) and system_errno(exc) is not None)


@contextlib.contextmanager
def _quiet_unraisable():
    """h5py objects of a file that can no longer be written (disk full) fail to flush when freed, and print each
    failure as a traceback (through sys.excepthook from Cython, sys.unraisablehook otherwise). The one-line
    error already says what happened."""
    previous = sys.unraisablehook, sys.excepthook
    sys.unraisablehook = lambda unraisable: None
    sys.excepthook = lambda *exc_info: None
    try:
        yield
    finally:
        sys.unraisablehook, sys.excepthook = previous


def write_set(path, x_clean, y, x_adv=None, **attrs) -> Path:
    """Write a whole in-memory set at once (small sets, tests)."""
    with SetWriter(path, len(y), **attrs) as writer:
        for start in range(0, len(y), CHUNK):
            sl = slice(start, start + CHUNK)
            writer.write(x_clean[sl], y[sl], None if x_adv is None else x_adv[sl])
    return Path(path)


class SetReader:
    """An open, validated set. Arrays are read on demand, a slice at a time."""

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.exists():
            raise MadvaeError("no such file", self.path)
        if self.path.is_dir():
            raise MadvaeError("is a folder, not an HDF5 set", self.path)
        refuse_special_file(self.path)
        try:
            self._file = h5py.File(self.path, "r", locking=_file_locking())
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.ENOLCK) or "unable to lock file" in str(exc):
                raise MadvaeError("cannot lock the file: another process holds it for writing, or the filesystem "
                                  "(NFS) has no working locks", self.path,
                                  "wait for the writer; on NFS set MADVAE_HDF5_LOCKING=0") from exc
            raise MadvaeError("not a readable HDF5 file (truncated, empty or another format)", self.path,
                              "regenerate it with `madvae gen`") from exc
        try:
            self._validate()
        except BaseException:
            self._file.close()
            raise

    # -- validation ---------------------------------------------------------------------------
    def _fail(self, problem, hint=None):
        raise MadvaeError(problem, self.path, hint)

    def _validate(self):
        attrs = self._file.attrs
        kind = _text(attrs.get("encoding-type"))
        if kind != ENCODING_TYPE:
            self._fail(f"not a madvae set (encoding-type is {kind!r}, expected {ENCODING_TYPE!r})")
        version = _text(attrs.get("encoding-version"))
        if version.split(".")[0] != ENCODING_VERSION.split(".")[0]:
            self._fail(f"unsupported encoding-version {version!r} (this madvae reads {ENCODING_VERSION})",
                       "upgrade madvae or regenerate the set")
        if _plain(attrs.get("complete", False)) in (False, None):  # any other value is the schema's to judge
            self._fail("incomplete set: no 'complete' flag (the job writing it did not finish)",
                       "delete it and rerun the job")
        missing = [key for key in REQUIRED_ATTRS if key not in attrs]
        if missing:
            self._fail(f"missing attributes {', '.join(missing)}")
        self.attrs = {key: _plain(value) for key, value in attrs.items()}
        decoded = decode_json_fields(self.attrs, SET_ATTRIBUTES, self.path, noun="attribute")
        if isinstance(decoded["n"], int) and decoded["n"] <= 0:
            self._fail(f"declares {decoded['n']!r} samples; a set holds at least one", "an empty set cannot be used")
        validate(decoded, SET_ATTRIBUTES, self.path, noun="attribute")
        self.params, self.provenance = decoded["params"], decoded.get("provenance", {})
        self.n = self.attrs["n"]
        self.has_adv = self.attrs["attack"] != "none"
        expected = {"x_clean": ((self.n, *IMAGE_SHAPE), np.float32), "y": ((self.n,), np.int64)}
        if self.has_adv:
            expected["x_adv"] = ((self.n, *IMAGE_SHAPE), np.float32)
            if not self.attrs.get("source_classifier_sha256"):
                self._fail("adversarial set without source_classifier_sha256")
        for name, (shape, dtype) in expected.items():
            self._check_link(name)
            if name not in self._file or not isinstance(self._file[name], h5py.Dataset):
                self._fail(f"dataset {name!r} is missing")
            ds = self._file[name]
            self._check_layout(name, ds)
            if ds.shape != shape:
                self._fail(f"dataset {name!r} has shape {ds.shape}, expected {shape}")
            if ds.dtype != dtype:
                self._fail(f"dataset {name!r} has dtype {ds.dtype}, expected {np.dtype(dtype)}")
            if "min" not in ds.attrs or "max" not in ds.attrs:
                self._fail(f"dataset {name!r} has no min/max attributes")
            declared = {key: _plain(ds.attrs[key]) for key in ("min", "max")}
            validate(declared, DATASET_ATTRIBUTES, self.path, where=f"{name}.", noun="attribute")
            low, high = declared["min"], declared["max"]
            bounds = (0, NUM_CLASSES - 1) if name == "y" else (0.0, 1.0)
            if not (bounds[0] <= low <= high <= bounds[1]):
                self._fail(f"dataset {name!r} declares values in [{low}, {high}], outside {list(bounds)}")
            self._check_storage(name, ds)
        self.dataset = self.attrs["dataset"]
        self.split = self.attrs["split"]
        self.attack = self.attrs["attack"]

    def _check_link(self, name):
        """The data must live in this file, so that its SHA-256 covers it: a soft or external link would read
        another dataset or another file."""
        link = self._file.get(name, getlink=True)
        if link is not None and not isinstance(link, h5py.HardLink):
            kind = "an external link" if isinstance(link, h5py.ExternalLink) else "a soft link"
            self._fail(f"dataset {name!r} is {kind}; a set's data must be stored in the file itself",
                       "regenerate the set with madvae gen")

    def _check_layout(self, name, ds):
        """Contiguous or chunked storage inside the file, chunks of at most CHUNK samples: external storage
        would read any file on disk (and leak it into error lines), a virtual dataset other files, and one huge
        gzip chunk would inflate to gigabytes from a small file."""
        if ds.is_virtual:
            self._fail(f"dataset {name!r} is a virtual dataset (data in other files)", "regenerate the set")
        if ds.external:
            self._fail(f"dataset {name!r} uses external storage (data in other files)", "regenerate the set")
        if ds.chunks is not None and (ds.chunks[0] > CHUNK or ds.chunks[1:] != ds.shape[1:]):
            self._fail(f"dataset {name!r} has chunks of shape {ds.chunks}; the format allows at most {CHUNK} "
                       f"samples of shape {ds.shape[1:]} per chunk", "regenerate the set")

    def _check_storage(self, name, ds):
        """Unwritten chunks read back as fill values (zeros, label 0) that pass every value check, so a file
        declaring 10^9 samples it never stored would be trained on for hours; counting the stored chunks costs
        milliseconds and allocates nothing."""
        if ds.chunks is None:
            stored, needed, unit = ds.id.get_storage_size(), ds.size * ds.dtype.itemsize, "bytes"
        else:
            stored, unit = ds.id.get_num_chunks(), "chunks"
            needed = math.prod(-(-size // chunk) for size, chunk in zip(ds.shape, ds.chunks))
        if stored < needed:
            self._fail(f"dataset {name!r} stores {stored} of the {needed} {unit} its shape {ds.shape} needs "
                       "(declared but never written)", "the file is truncated or forged; regenerate it")

    # -- reading ------------------------------------------------------------------------------
    @property
    def chunk_len(self) -> int:
        return self._file["y"].chunks[0]

    def __len__(self):
        return self.n

    def read(self, start: int, stop: int, names=None) -> dict:
        """Read samples [start, stop) and check their values (a file can lie in its attributes)."""
        names = names or (["x_clean", "x_adv", "y"] if self.has_adv else ["x_clean", "y"])
        out = {}
        for name in names:
            try:
                values = self._file[name][start:stop]
            except (OSError, KeyError) as exc:
                self._fail(f"cannot read {name}[{start}:{stop}] ({exc})", "the file is corrupt; regenerate it")
            if name == "y":
                bad = (values < 0) | (values >= NUM_CLASSES)
                if bad.any():
                    self._fail(f"label {int(values[bad][0])} outside 0-9 in y[{start}:{stop}]")
            elif not (np.isfinite(values).all() and values.min() >= 0.0 and values.max() <= 1.0):
                self._fail(f"{name}[{start}:{stop}] holds values outside [0, 1] or NaN/Inf")
            out[name] = values
        return out

    def batches(self, batch_size: int, limit: int | None = None, names=None):
        """Contiguous batches in file order, first ``limit`` samples only if given."""
        stop_all = self.n if limit is None else min(limit, self.n)
        for start in range(0, stop_all, batch_size):
            yield self.read(start, min(start + batch_size, stop_all), names)

    def close(self):
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def open_set(path) -> SetReader:
    return SetReader(path)


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def _plain(value):
    """HDF5 attribute -> plain Python value."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
