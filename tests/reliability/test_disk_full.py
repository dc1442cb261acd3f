"""A full disk while writing (simulated with a file-size limit, RLIMIT_FSIZE, and for real on a small tmpfs): one
clear line, exit 74, no file under the output name, no temporary left, earlier outputs untouched, and no crash on
the way out."""
from __future__ import annotations

import hashlib
import os
import resource
import signal
import subprocess
import sys

import pytest

from madvae.generate import make_clean_set

LIMIT = 300_000  # bytes: below the 3,500-digit train set (about 2 MB) and a MagNet checkpoint (about 3 MB)


def _small_disk():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run_out_of_space(args, reason, **run):
    """Run `madvae ARGS`; it must exit 74 (cannot write) with the one line `cannot write: REASON` for its --out."""
    done = subprocess.run([sys.executable, "-m", "madvae", *args], capture_output=True, text=True, timeout=300, **run)
    assert done.returncode == 74, (done.returncode, done.stderr[-2000:])  # not -11: no crash at exit
    out = args[args.index("--out") + 1]
    assert done.stderr.strip().splitlines() == [f"madvae: error: {out}: cannot write: {reason} (check free space "
                                                "and permissions; nothing was written)"], done.stderr[-2000:]


@pytest.fixture(scope="module")
def small_train_set(tmp_path_factory):
    path = tmp_path_factory.mktemp("full") / "train.h5"
    make_clean_set(path, dataset="mnist-5k", split="train", limit=64)
    return path


@pytest.mark.parametrize("command", [
    ["gen", "--attack", "none", "--dataset", "mnist-5k", "--split", "train", "--no-progress"],
    ["classifier", "--train", "{train}", "--epochs", "1", "--device", "cpu", "--no-progress"],
], ids=["set", "checkpoint"])
def test_full_disk_gives_one_line_and_leaves_nothing(tmp_path, small_train_set, command):
    earlier = tmp_path / "earlier.h5"
    earlier.write_bytes(small_train_set.read_bytes())
    before = _digest(earlier)
    out = tmp_path / "new.out"
    args = [a.format(train=small_train_set) for a in command] + ["--out", str(out)]
    _run_out_of_space(args, "File too large", preexec_fn=_small_disk)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["earlier.h5"]  # no output, no temporary
    assert _digest(earlier) == before


@pytest.fixture
def full_tmpfs(tmp_path):
    """A real filesystem of 256 KiB, which the outputs below overflow (ENOSPC, through HDF5's filters too)."""
    if os.geteuid() != 0:
        pytest.skip("a real full disk needs a tmpfs mounted, which needs root")
    folder = tmp_path / "tmpfs"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


@pytest.fixture(scope="module")
def clean_test_set(tmp_path_factory):
    path = tmp_path_factory.mktemp("full") / "test.h5"
    make_clean_set(path, dataset="mnist-5k", split="test", limit=1000)
    return path


@pytest.mark.parametrize("command", [
    ["gen", "--attack", "none", "--dataset", "mnist-5k", "--split", "train"],
    # batches of 100 in chunks of 256: a chunk is written, read back and written again, the case where HDF5
    # reported the unwritten chunk's "filter returned failure during read" instead of the full disk
    ["gen", "--attack", "fgsm", "--input", "{test}", "--classifier", "{classifier}", "--batch-size", "100"],
    ["classifier", "--train", "{train}", "--epochs", "1"],
], ids=["clean set", "adversarial set", "checkpoint"])
def test_a_really_full_disk_says_no_space_left(full_tmpfs, small_train_set, clean_test_set, random_classifier,
                                               command):
    out = full_tmpfs / "new.out"
    given = {"train": small_train_set, "test": clean_test_set, "classifier": random_classifier}
    args = [a.format(**given) for a in command] + ["--out", str(out), "--device", "cpu", "--no-progress"]
    _run_out_of_space(args, "No space left on device", env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert sorted(p.name for p in full_tmpfs.iterdir()) == []  # no output, no temporary, no lock file
