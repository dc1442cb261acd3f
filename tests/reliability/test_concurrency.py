"""Jobs sharing a folder, and HDF5 file locking: two writers at once each leave their own complete set; a set
still open for writing is refused with a clear line, and MADVAE_HDF5_LOCKING=0 (for NFS) turns locking off."""
from __future__ import annotations

import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from madvae.store import open_set


def _madvae(*args, env=None, wait=True):
    cmd = [sys.executable, "-m", "madvae", *map(str, args)]
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    return proc.communicate(timeout=300) + (proc.returncode,) if wait else proc


@pytest.mark.parametrize("locking", ["1", "0"])
def test_two_jobs_write_different_sets_into_one_folder_at_once(tmp_path, random_classifier, locking):
    env = {"MADVAE_HDF5_LOCKING": locking, "OMP_NUM_THREADS": "1"}
    clean = tmp_path / "clean.h5"
    assert _madvae("gen", "--dataset", "mnist-5k", "--split", "test", "--limit", "200", "--out", clean,
                   "--no-progress", env=env)[2] == 0
    jobs = {attack: _madvae("gen", "--attack", attack, "--input", clean, "--classifier", random_classifier,
                            "--out", tmp_path / f"{attack}.h5", "--device", "cpu", "--batch-size", "50",
                            "--no-progress", env=env, wait=False)
            for attack in ("fgsm", "mifgsm")}
    for attack, job in jobs.items():
        _, err = job.communicate(timeout=300)
        assert job.returncode == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean.h5", "fgsm.h5", "mifgsm.h5"]  # no temporaries
    for attack in jobs:
        with open_set(tmp_path / f"{attack}.h5") as reader:
            assert reader.attack == attack and len(reader) == 200
            batch = reader.read(0, 200)
            assert not np.array_equal(batch["x_adv"], batch["x_clean"])


def test_a_set_held_open_for_writing_is_refused_unless_locking_is_off(tmp_path):
    path = tmp_path / "set.h5"
    assert _madvae("gen", "--dataset", "mnist-5k", "--split", "test", "--limit", "8", "--out", path,
                   "--no-progress")[2] == 0
    with h5py.File(path, "r+"):  # another process's writer, as on a shared folder
        out, err, code = _madvae("inspect", path)
        assert code == 65 and len(err.strip().splitlines()) == 1, err
        assert str(path) in err and "cannot lock" in err and "MADVAE_HDF5_LOCKING=0" in err
        out, err, code = _madvae("inspect", path, env={"MADVAE_HDF5_LOCKING": "0"})
        assert code == 0 and "mnist-5k" in out, err
