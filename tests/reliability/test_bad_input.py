"""Malformed inputs across every command: each must end in ONE line `madvae: error: ...` naming the file and the
problem, exit code 2, no traceback, and nothing written (no output, no hidden temp file, inputs untouched).

Each case builds its own bad input in a fresh folder and runs a command line that would succeed (and write its
output) with the valid counterpart: `test_valid_counterparts_succeed` proves that for the command templates, so a
case can only pass because madvae refused the bad input. Usage errors (option values the parser rejects) go
through `madvae.cli.main`, the console-script entry point, because only it turns them into one line; every other
case goes through `CliRunner().invoke(madvae.cli.app, ...)`.
"""
from __future__ import annotations

import json
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
from madvae.models import DefenseVAE, build
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


CASES: dict[str, Case] = {}


def case(name, **kw):
    def register(build):
        assert name not in CASES
        CASES[name] = Case(build, **kw)
        return build
    return register


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


def embed_cmd(env, set_path, extra=()):
    return ["embed", set_path, "--out", env.out / "fig", "--n", "8", "--device", "cpu", NP, *extra]


# HDF5 sets ---------------------------------------------------------------------------------------------------

@case("inspect-truncated-set")
def _(env):
    bad = env.set("truncated.h5")
    data = bad.read_bytes()
    bad.write_bytes(data[:len(data) // 2])
    return ["inspect", bad], [str(bad), "not a readable HDF5"]


@case("attack-empty-set")
def _(env):
    bad = env.inputs / "empty.h5"
    bad.write_bytes(b"")
    return attack_cmd(env, bad), [str(bad), "not a readable HDF5"]


@case("train-foreign-hdf5")
def _(env):
    bad = env.inputs / "foreign.h5"
    with h5py.File(bad, "w") as f:
        f["images"] = np.zeros((4, 28, 28), np.float32)
        f["labels"] = np.arange(4)
        f.attrs["description"] = "somebody else's file"
    return train_identity(env, bad), [str(bad), "not a madvae set"]


@case("inspect-wrong-encoding-type")
def _(env):
    bad = env.set("wrong_type.h5")
    set_attrs(bad, encoding_type="madvae.result")
    return ["inspect", bad], [str(bad), "not a madvae set", "madvae.result"]


@case("gen-encoding-version-9.0")
def _(env):
    bad = env.set("v9.h5")
    set_attrs(bad, encoding_version="9.0")
    return gen_fgsm(env, input=bad), [str(bad), "unsupported encoding-version", "9.0"]


@case("classifier-complete-flag-missing")
def _(env):
    bad = env.set("no_complete.h5")
    set_attrs(bad, complete=None)
    return classifier_cmd(env, bad), [str(bad), "incomplete set"]


@case("embed-complete-flag-false")
def _(env):
    bad = env.set("complete_false.h5")
    set_attrs(bad, complete=False)
    return embed_cmd(env, bad), [str(bad), "incomplete set"]


@case("attack-x_clean-Nx28x28")
def _(env):
    bad = env.set("flat.h5")
    replace_dataset(bad, "x_clean", np.random.default_rng(0).random((N, 28, 28), dtype=np.float32))
    return attack_cmd(env, bad), [str(bad), "x_clean", "shape", "(8, 28, 28)"]


@case("train-x_clean-Nx3x28x28")
def _(env):
    bad = env.set("rgb.h5")
    replace_dataset(bad, "x_clean", np.random.default_rng(0).random((N, 3, 28, 28), dtype=np.float32))
    return train_identity(env, bad), [str(bad), "x_clean", "shape", "(8, 3, 28, 28)"]


@case("inspect-x_clean-float64")
def _(env):
    bad = env.set("float64.h5")
    replace_dataset(bad, "x_clean", np.random.default_rng(0).random((N, 1, 28, 28)))
    return ["inspect", bad], [str(bad), "x_clean", "dtype float64"]


@case("classifier-x_clean-uint8")
def _(env):
    bad = env.set("uint8.h5")
    replace_dataset(bad, "x_clean", np.zeros((N, 1, 28, 28), np.uint8))
    return classifier_cmd(env, bad), [str(bad), "x_clean", "dtype uint8"]


@case("inspect-nan-in-x_clean")
def _(env):
    bad = env.set("nan.h5")
    poke(bad, "x_clean", (N - 1, 0, 5, 5), np.nan)
    return ["inspect", bad], [str(bad), "x_clean", "NaN/Inf"]


@case("gen-inf-in-x_clean")  # caught on read, after the output set is already open: its temp file must go
def _(env):
    bad = env.set("inf.h5")
    poke(bad, "x_clean", (0, 0, 0, 0), np.inf)
    return gen_fgsm(env, input=bad), [str(bad), "x_clean", "NaN/Inf"]


@case("embed-nan-in-x_clean")
def _(env):
    bad = env.set("nan.h5")
    poke(bad, "x_clean", (3, 0, 10, 10), np.nan)
    return embed_cmd(env, bad), [str(bad), "x_clean", "NaN/Inf"]


@case("train-x_adv-value-1.5")  # caught while streaming the first batch of training
def _(env):
    bad = env.set("above_one.h5", adv=True, split="train")
    poke(bad, "x_adv", (2, 0, 14, 14), 1.5)
    return ["train", bad, "--epochs", "1", "--batch-size", "4", "--device", "cpu", "--out", env.out / "vae.pt",
            NP], [str(bad), "x_adv", "outside [0, 1]"]


@case("gen-declared-range-1.5")  # the min/max attributes themselves are out of range: refused on open
def _(env):
    bad = env.set("declared.h5")
    with h5py.File(bad, "r+") as f:
        f["x_clean"].attrs["max"] = 1.5
    return gen_fgsm(env, input=bad), [str(bad), "x_clean", "declares values", "1.5"]


@case("attack-label-12")
def _(env):
    bad = env.set("label12.h5")
    poke(bad, "y", 5, 12)
    return attack_cmd(env, bad), [str(bad), "label 12 outside 0-9"]


@case("classifier-label-minus-1")
def _(env):
    bad = env.set("label_neg.h5")
    poke(bad, "y", 0, -1)
    return classifier_cmd(env, bad), [str(bad), "label -1 outside 0-9"]


@case("inspect-n-attr-1e9", timeout=10)
def _(env):
    bad = env.set("huge_n.h5")
    set_attrs(bad, n=HUGE)
    return ["inspect", bad], [str(bad), str(HUGE)]


@case("attack-x_clean-declares-1e9-samples", timeout=10)
def _(env):
    bad = env.set("huge_ds.h5")
    replace_dataset(bad, "x_clean", shape=(HUGE, 1, 28, 28), dtype="float32", chunks=(256, 1, 28, 28))
    return attack_cmd(env, bad), [str(bad), "x_clean", str(HUGE)]


@case("train-consistent-1e9-sample-set-without-data", timeout=10)
def _(env):
    # every attribute and shape agrees on 10^9 samples, but no chunk was ever written
    bad = env.set("huge_sparse.h5", adv=True)
    for name in ("x_clean", "x_adv"):
        replace_dataset(bad, name, shape=(HUGE, 1, 28, 28), dtype="float32", chunks=(256, 1, 28, 28))
    replace_dataset(bad, "y", shape=(HUGE,), dtype="int64", chunks=(256,))
    set_attrs(bad, n=HUGE)
    return ["train", bad, "--epochs", "1", "--batch-size", "4", "--device", "cpu", "--out", env.out / "vae.pt",
            NP], [str(bad), "never written", "3906250 chunks"]


@case("train-fashion-mnist-mixed-with-mnist-5k")
def _(env):
    good = env.set("mnist5k.h5", adv=True, split="train")
    bad = env.set("fashion.h5", adv=True, seed=1, split="train")
    set_attrs(bad, dataset="fashion-mnist")
    return ["train", good, bad, "--epochs", "1", "--batch-size", "4", "--device", "cpu",
            "--out", env.out / "vae.pt", NP], [str(bad), "'fashion-mnist'", "'mnist-5k'", "one dataset"]


@case("train-text-file-named-h5")
def _(env):
    bad = env.inputs / "notes.h5"
    bad.write_text("x_clean,y\n0.5,3\n")
    return train_identity(env, bad), [str(bad), "not a readable HDF5"]


@case("inspect-text-file-named-h5")  # no HDF5 signature, but named as a set: reported as a broken set
def _(env):
    bad = env.inputs / "notes.h5"
    bad.write_text("x_clean,y\n0.5,3\n")
    return ["inspect", bad], [str(bad), "not a readable HDF5"]


# checkpoints -------------------------------------------------------------------------------------------------

@case("attack-vae-given-as-classifier")
def _(env):
    vae = env.vae()
    return attack_cmd(env, env.set("clean.h5"), classifier=vae), [str(vae), "a classifier is expected"]


@case("attack-classifier-given-as-vae")
def _(env):
    return (attack_cmd(env, env.set("clean.h5"), extra=["--vae", env.classifier]),
            [str(env.classifier), "a vae is expected"])


@case("embed-classifier-given-as-vae")
def _(env):
    return (["embed", env.set("clean.h5"), "--space", "latent", "--vae", env.classifier, "--out", env.out / "fig",
             "--n", "8", "--device", "cpu", NP], [str(env.classifier), "a vae is expected"])


@case("attack-classifier-with-weights-of-another-architecture")
def _(env):
    lying = env.inputs / "lying_magnet.pt"  # substitute A's weights under the name magnet
    payload = torch.load(save_checkpoint(env.inputs / "a.pt", kind="classifier", arch="A",
                                         model=build("classifier", "A"), config={}), weights_only=True)
    torch.save({**payload, "arch": "magnet"}, lying)
    return attack_cmd(env, env.set("clean.h5"), classifier=lying), [str(lying), "do not fit architecture 'magnet'"]


@case("gen-truncated-checkpoint")
def _(env):
    bad = env.inputs / "truncated.pt"
    data = env.classifier.read_bytes()
    bad.write_bytes(data[:len(data) // 2])
    return gen_fgsm(env, classifier=bad), [str(bad), "not a readable checkpoint"]


@case("train-random-bytes-checkpoint")
def _(env):
    bad = env.inputs / "random.pt"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    return (["train", env.set("adv.h5", adv=True, split="train"), "--loss", "classification", "--classifier", bad,
             "--epochs", "1", "--batch-size", "4", "--device", "cpu", "--out", env.out / "vae.pt", NP],
            [str(bad), "not a readable checkpoint"])


def _evil_checkpoint(env) -> Path:
    """A checkpoint-looking pickle that creates env.marker when unpickled unsafely (proved here, then undone)."""
    env.marker = env.root / "pwned"
    evil = env.inputs / "evil.pt"
    torch.save({"format": "madvae.checkpoint", "format_version": 1, "kind": "classifier", "arch": "magnet",
                "payload": _RunsCode(env.marker)}, evil)
    with open(evil, "rb") as handle:
        torch.load(handle, weights_only=False)
    assert env.marker.exists(), "the evil pickle must really run code when loaded unsafely"
    env.marker.unlink()
    return evil


@case("attack-pickle-that-runs-code")
def _(env):
    evil = _evil_checkpoint(env)
    return attack_cmd(env, env.set("clean.h5"), classifier=evil), [str(evil), "unsafe pickle"]


@case("inspect-pickle-that-runs-code")
def _(env):
    evil = _evil_checkpoint(env)
    return ["inspect", evil], [str(evil), "unsafe pickle"]


# result JSON (report) ------------------------------------------------------------------------------------------

def report_cmd(env, path):
    return ["report", path, "--out-dir", env.out / "tables"]


@case("report-invalid-json")
def _(env):
    bad = env.inputs / "broken.json"
    bad.write_text(env.result().read_text()[:-40])
    return report_cmd(env, bad), [str(bad), "not a readable JSON"]


@case("report-json-of-another-encoding-type")
def _(env):
    bad = env.result("other.json")
    data = json.loads(bad.read_text())
    data["encoding-type"] = "madvae.set"
    bad.write_text(json.dumps(data))
    return report_cmd(env, bad), [str(bad), "not a madvae result", "madvae.set"]


@case("report-result-missing-a-metric")
def _(env):
    bad = env.result("missing.json")
    data = json.loads(bad.read_text())
    del data["metrics"]["no_defense"]["agreement"]
    bad.write_text(json.dumps(data))
    return report_cmd(env, bad), [str(bad), "metrics.no_defense.agreement"]


# option values ------------------------------------------------------------------------------------------------

@case("gen-limit-0", usage=True)
def _(env):
    return (["gen", "--attack", "none", "--dataset", "mnist-5k", "--limit", "0", "--out", env.out / "clean.h5"],
            ["--limit", "greater than or equal to 1"])


@case("train-epochs-0", usage=True)
def _(env):
    return train_identity(env, env.set("clean.h5"), extra=["--epochs", "0"]), ["--epochs", "greater than or equal to 1"]


@case("classifier-batch-size-0", usage=True)
def _(env):
    return classifier_cmd(env, env.set("clean.h5"), extra=["--batch-size", "0"]), ["--batch-size", "greater than or equal to 1"]


@case("attack-samples-minus-1", usage=True)
def _(env):
    return attack_cmd(env, env.set("clean.h5"), extra=["--samples", "-1"]), ["--samples", "greater than or equal to 0"]


@case("gen-unknown-attack", usage=True)
def _(env):
    argv = gen_fgsm(env)
    argv[argv.index("fgsm")] = "deepfool"
    return argv, ["--attack", "'deepfool' is not one of"]


@case("embed-n-0", usage=True)
def _(env):
    return embed_cmd(env, env.set("clean.h5"), extra=["--n", "0"]), ["--n", "greater than or equal to 1"]


@case("gen-param-eps-5")
def _(env):
    return gen_fgsm(env, extra=["--param", "eps=5"]), ["eps=5", "out of range"]


@case("gen-param-nb_iter-abc")
def _(env):
    argv = gen_fgsm(env, extra=["--param", "nb_iter=abc"])
    argv[argv.index("fgsm")] = "pgd"
    return argv, ["nb_iter", "'abc'", "not a valid int"]


@case("attack-param-on-stored-mode")
def _(env):
    return attack_cmd(env, env.set("clean.h5"), extra=["--param", "eps=0.3"]), ["--param", "--mode stored"]


@case("attack-overpowered-param-steps-abc")
def _(env):
    return (attack_cmd(env, env.set("clean.h5"), extra=["--mode", "overpowered", "--vae", env.vae(),
                                                         "--param", "steps=abc"]), ["steps=abc", "not a whole number"])


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


@pytest.fixture()
def env(tmp_path, random_classifier):
    return Env(tmp_path, random_classifier)


def test_at_least_25_cases():
    assert len(CASES) >= 25


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, env, monkeypatch, capsys):
    spec = CASES[name]
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
    assert code == 2, f"exit code {code}: {output}"
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


# --- the same command lines with valid inputs do write their outputs ------------------------------------------

CONTROLS = {
    "inspect": lambda env: (["inspect", env.set("ok.h5", adv=True)], None),
    "gen": lambda env: (gen_fgsm(env), env.out / "adv.h5"),
    "classifier": lambda env: (classifier_cmd(env, env.set("ok.h5")), env.out / "c.pt"),
    "train": lambda env: (["train", env.set("a.h5", adv=True, split="train"),
                           env.set("b.h5", adv=True, seed=1, split="train"), "--epochs", "1",
                           "--batch-size", "4", "--device", "cpu", "--out", env.out / "vae.pt", NP],
                          env.out / "vae.pt"),
    "attack": lambda env: (attack_cmd(env, env.set("ok.h5"), extra=["--vae", env.vae()]), env.out / "result.json"),
    "report": lambda env: (report_cmd(env, env.result()), env.out / "tables" / "whitebox.md"),
}


@pytest.mark.parametrize("command", list(CONTROLS))
def test_valid_counterparts_succeed(command, env):
    """The templates the cases corrupt work with valid input (embed is left out: UMAP's compile is slow)."""
    argv, output = CONTROLS[command](env)
    result = CliRunner().invoke(cli.app, [str(a) for a in argv])
    assert result.exit_code == 0, result.output
    if output is not None:
        assert output.exists()
