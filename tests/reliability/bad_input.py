"""The harness of the bad-input tests (test_bad_input.py: files; test_bad_options.py: results and option values):
building broken inputs in a fresh folder, the command templates the cases corrupt, and the check every case
passes. Usage errors (option values the parser rejects) go through `madvae.cli.main`, the console-script entry
point, because only it turns them into one line; every other case goes through `CliRunner().invoke(madvae.cli.app,
...)`."""
from __future__ import annotations

import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from madvae import cli
from madvae.checkpoint import save_checkpoint
from madvae.evaluate.stored import evaluate_set
from madvae.models import DefenseVAE
from madvae.store import write_set

N = 8  # samples in every base set: tiny on purpose
HUGE = 10**9
ADV_SHA = "0" * 64


# --- building inputs -------------------------------------------------------------------------------------------

def write_base(path: Path, *, adv: bool = False, dataset: str = "mnist-5k", seed: int = 0,
               split: str = "test") -> Path:
    """A small valid set (random pixels, labels 0..7); adversarial sets get x_adv = x_clean +- 0.1. Sets for
    `madvae train` need split="train": it refuses the test split."""
    rng = np.random.default_rng(seed)
    x = rng.random((N, 1, 28, 28), dtype=np.float32)
    y = np.arange(N, dtype=np.int64) % 10
    extra = {}
    if adv:
        x_adv = np.clip(x + 0.1 * np.sign(rng.standard_normal(x.shape)), 0, 1).astype(np.float32)
        extra = {"x_adv": x_adv, "attack": "fgsm", "params": {"eps": 0.1}, "source_classifier_sha256": ADV_SHA}
    return write_set(path, x, y, dataset=dataset, split=split, **extra)


def replace_dataset(path: Path, name: str, values=None, *, shape=None, dtype=None, chunks=None) -> None:
    """Swap dataset ``name`` for ``values`` (or an empty chunked one of ``shape``), keeping its min/max attrs so
    only the shape/dtype/data is wrong."""
    with h5py.File(path, "r+") as f:
        attrs = dict(f[name].attrs)
        del f[name]
        if values is not None:
            ds = f.create_dataset(name, data=values)
        else:  # declared, never written: HDF5 allocates nothing, the file stays a few KB
            ds = f.create_dataset(name, shape=shape, dtype=dtype, chunks=chunks, compression="gzip",
                                  shuffle=True, fletcher32=True)
        for key, value in attrs.items():
            ds.attrs[key] = value


def set_attrs(path: Path, **attrs) -> None:
    with h5py.File(path, "r+") as f:
        for key, value in attrs.items():
            if value is None:
                del f.attrs[key.replace("_", "-") if key.startswith("encoding") else key]
            else:
                f.attrs[key.replace("_", "-") if key.startswith("encoding") else key] = value


def poke(path: Path, name: str, index, value) -> None:
    """Write one bad value into the data, leaving the declared min/max attributes valid (a lying file)."""
    with h5py.File(path, "r+") as f:
        f[name][index] = value


class _RunsCode:
    """Unpickling this the unsafe way opens (creates) the marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@dataclass
class Env:
    """One case's folder: inputs under in/, the command's outputs under out/ (created empty)."""
    root: Path
    classifier: Path
    marker: Path | None = None
    inputs: Path = field(init=False)
    out: Path = field(init=False)

    def __post_init__(self):
        self.inputs = self.root / "in"
        self.out = self.root / "out"
        self.inputs.mkdir()
        self.out.mkdir()

    def set(self, name: str, **kw) -> Path:
        return write_base(self.inputs / name, **kw)

    def vae(self) -> Path:
        torch.manual_seed(0)
        return save_checkpoint(self.inputs / "vae.pt", kind="vae", arch="defense-vae", model=DefenseVAE(),
                               config={"loss": "vanilla"})

    def result(self, name: str = "result.json") -> Path:
        """A real whitebox result of `madvae attack` (8 images, untrained classifier)."""
        adv = self.set("adv_for_result.h5", adv=True)
        path = self.inputs / name
        evaluate_set(adv, self.classifier, path, device="cpu", progress=False)
        return path


# --- the cases ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    build: Callable[[Env], tuple[list, list]]  # env -> (argv, needles the error line must contain)
    usage: bool = False  # rejected by the option parser: run through cli.main
    timeout: float = 120.0  # seconds; "fail fast" cases get 10
    code: int | None = None  # the exit code (madvae.errors): 2 for usage cases, else 65 (bad input) unless given


def registry():
    """(cases, case): a test module's own dict of cases and the decorator that adds one to it."""
    cases: dict[str, Case] = {}

    def case(name, **kw):
        def register(build):
            assert name not in cases
            cases[name] = Case(build, **kw)
            return build
        return register
    return cases, case


NP = "--no-progress"


def gen_fgsm(env, *, input=None, classifier=None, extra=()):
    return ["gen", "--attack", "fgsm", "--input", input or env.set("clean.h5"),
            "--classifier", classifier or env.classifier, "--out", env.out / "adv.h5", NP, *extra]


def train_identity(env, *sets, extra=()):
    return ["train", *sets, "--loss", "identity", "--epochs", "1", "--batch-size", "4", "--device", "cpu",
            "--out", env.out / "vae.pt", NP, *extra]


def classifier_cmd(env, train, extra=()):
    return ["classifier", "--train", train, "--epochs", "1", "--batch-size", "4", "--device", "cpu",
            "--out", env.out / "c.pt", NP, *extra]


def attack_cmd(env, set_path, *, classifier=None, extra=()):
    return ["attack", "--set", set_path, "--classifier", classifier or env.classifier, "--device", "cpu",
            "--out", env.out / "result.json", NP, *extra]


def report_cmd(env, path):
    return ["report", path, "--out-dir", env.out / "tables"]


def embed_cmd(env, set_path, extra=()):
    return ["embed", set_path, "--out", env.out / "fig", "--n", "8", "--device", "cpu", NP, *extra]


# --- running a command ----------------------------------------------------------------------------------------

class TookTooLong(BaseException):
    """Raised by the alarm: a BaseException, so no `except Exception` in madvae or the runner swallows it."""


def _alarm(signum, frame):
    raise TookTooLong()


def run_cli(argv, *, usage: bool, monkeypatch, capsys) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of one command line."""
    argv = [str(a) for a in argv]
    if not usage:
        result = CliRunner().invoke(cli.app, argv)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception  # an uncaught exception is a failure of its own: show its traceback
        return result.exit_code, result.stdout, result.stderr
    monkeypatch.setattr(sys, "argv", ["madvae", *argv])
    # main() leaves through os._exit after a failed command (see cli._exit_now); here it must only raise
    monkeypatch.setattr(cli, "_exit_now", lambda code: sys.exit(code), raising=False)
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        cli.main()
    captured = capsys.readouterr()
    return info.value.code, captured.out, captured.err


def snapshot(root: Path) -> dict:
    """Every file (hidden ones too) with its size and modification time, and every folder, under root. A folder's
    own mtime is left out: a temporary file created and removed again changes it, and that is allowed."""
    return {str(p.relative_to(root)): "folder" if p.is_dir() else (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


def check_refused(name, spec: Case, env, monkeypatch, capsys) -> None:
    """Run one case's command line; it must fail in one line naming the problem and leave every file as it was."""
    argv, needles = spec.build(env)
    before = snapshot(env.root)
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, spec.timeout)
    started = time.monotonic()
    try:
        code, out, err = run_cli(argv, usage=spec.usage, monkeypatch=monkeypatch, capsys=capsys)
    except TookTooLong:
        pytest.fail(f"{name}: still running after {spec.timeout} s (must fail fast)")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    elapsed = time.monotonic() - started

    output = (out + err).strip()
    expected = spec.code or (2 if spec.usage else 65)
    assert code == expected, f"exit code {code}, not {expected}: {output}"
    assert out.strip() == "", f"stdout should be empty: {out}"
    lines = output.splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith("madvae: error:"), output
    assert "Traceback" not in output
    for needle in needles:
        assert str(needle) in lines[0], f"{needle!r} not in {lines[0]!r}"
    assert snapshot(env.root) == before, "something was written, created or changed"
    assert list(env.out.iterdir()) == []
    if env.marker is not None:
        assert not env.marker.exists(), "the pickle ran code"
    assert elapsed < spec.timeout


