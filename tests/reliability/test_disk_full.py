"""A full disk while writing (simulated with a file-size limit, RLIMIT_FSIZE): one clear line, exit 2, no file
under the output name, no temporary left, earlier outputs untouched, and no crash on the way out."""
from __future__ import annotations

import hashlib
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
    done = subprocess.run([sys.executable, "-m", "madvae", *args], preexec_fn=_small_disk, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])  # not -11: no crash at exit
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0] == (f"madvae: error: {out}: cannot write: File too large (check free "
                                            "space and permissions; nothing was written)"), done.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["earlier.h5"]  # no output, no temporary
    assert _digest(earlier) == before
