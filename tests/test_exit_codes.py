"""Exit codes a script can tell apart (madvae.errors, README "The command line"): the parser's usage errors and
madvae's own are 2, a bad input file 65, an output that cannot be written 74 (tests/reliability/test_disk_full.py),
an interrupted job 75 (tests/test_train.py), and an unforeseen failure is not folded into any of them."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from madvae import cli
from madvae.errors import Interrupted, MadvaeError, UsageError, WriteError

MADVAE = Path(sys.executable).parent / "madvae"


def run(*args):
    return subprocess.run([str(MADVAE), *map(str, args)], capture_output=True, text=True, timeout=120)


def test_the_codes_are_distinct():
    codes = [MadvaeError.EXIT_CODE, UsageError.EXIT_CODE, WriteError.EXIT_CODE, Interrupted.EXIT_CODE]
    assert codes == [65, 2, 74, 75]


def test_a_usage_error_of_the_parser_and_of_madvae_is_2(tmp_path):
    assert run("attack", "--no-such-option").returncode == 2
    done = run("attack", "--set", tmp_path / "s.h5", "--out", tmp_path / "r.json", "--preset", "paper")
    assert done.returncode == 2 and "--preset does not apply to --mode stored" in done.stderr


def test_a_bad_input_file_is_65_not_2(tmp_path, random_classifier):
    broken = tmp_path / "broken.h5"
    broken.write_bytes(b"\x89HDF\r\n\x1a\nnot really")
    done = run("attack", "--set", broken, "--classifier", random_classifier, "--out", tmp_path / "r.json")
    assert done.returncode == 65, done.stderr
    assert done.stderr.startswith(f"madvae: error: {broken}:") and len(done.stderr.strip().splitlines()) == 1
    assert run("inspect", tmp_path / "missing.pt").returncode == 65


def test_an_unforeseen_failure_is_not_reported_as_bad_input(monkeypatch, tmp_path):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr("madvae.inspect.inspect_path", broken)
    monkeypatch.setattr(sys, "argv", ["madvae", "inspect", str(tmp_path / "x.pt")])
    with pytest.raises(RuntimeError, match="a bug"):  # Python prints the traceback and exits 1
        cli.main()
