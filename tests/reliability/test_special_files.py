"""A FIFO or a device given where a set, a checkpoint or a result belongs is refused at once (a FIFO with no writer
would block the command forever, /dev/zero never ends): one line, exit 65, nothing written. Each case runs the
real console command in a subprocess with a time limit, so a regression shows as a failure, not a hung suite."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe.h5"
    os.mkfifo(path)
    return path


CASES = {
    "inspect": lambda bad, ok_set, clf, out: ["inspect", bad],
    "attack --set": lambda bad, ok_set, clf, out: ["attack", "--set", bad, "--classifier", clf, "--out", out / "r.json"],
    "attack --classifier": lambda bad, ok_set, clf, out: ["attack", "--set", ok_set, "--classifier", bad, "--out",
                                                          out / "r.json"],
    "gen --input": lambda bad, ok_set, clf, out: ["gen", "--attack", "fgsm", "--input", bad, "--classifier", clf,
                                                  "--out", out / "s.h5"],
    "train": lambda bad, ok_set, clf, out: ["train", bad, "--loss", "identity", "--out", out / "v.pt"],
    "report": lambda bad, ok_set, clf, out: ["report", bad, "--out-dir", out / "tables"],
}


@pytest.mark.parametrize("special", ["fifo", "/dev/zero"])
@pytest.mark.parametrize("case", list(CASES))
def test_special_files_are_refused_without_blocking(case, special, request, tmp_path, clean_test_set,
                                                    random_classifier):
    bad = request.getfixturevalue("fifo") if special == "fifo" else special
    out = tmp_path / "out"
    out.mkdir()
    argv = [str(a) for a in CASES[case](bad, clean_test_set, random_classifier, out)]
    done = subprocess.run([sys.executable, "-m", "madvae", *argv, "--device", "cpu"] if case != "inspect" and
                          case != "report" else [sys.executable, "-m", "madvae", *argv],
                          capture_output=True, text=True, timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 65 and len(lines) == 1, done.stderr
    assert "not a regular file" in lines[0] and str(bad) in lines[0]
    assert not any(out.rglob("*")), list(out.rglob("*"))
