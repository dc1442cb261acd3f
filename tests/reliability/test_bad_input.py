"""Malformed inputs across every command: each must end in ONE line `madvae: error: ...` naming the file and the
problem, exit code 65 (bad input), no traceback, and nothing written (no output, no hidden temp file, inputs untouched).

Each case builds its own bad input in a fresh folder and runs a command line that would succeed (and write its
output) with the valid counterpart: `test_valid_counterparts_succeed` proves that for the command templates, so a
case can only pass because madvae refused the bad input. Usage errors (option values the parser rejects) go
through `madvae.cli.main` (tests/reliability/bad_input.py holds the harness). Here: broken sets and checkpoints;
test_bad_options.py: result JSONs and option values.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tests.legacy_checkpoints import as_legacy
from madvae import cli
from madvae.checkpoint import save_checkpoint
from madvae.models import build
from tests.reliability.bad_input import (HUGE, NP, N, _RunsCode, attack_cmd, check_refused, classifier_cmd,
                                         embed_cmd, gen_fgsm, poke, registry, replace_dataset, report_cmd,
                                         set_attrs, train_identity)

CASES, case = registry()


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
    as_legacy(save_checkpoint(env.inputs / "a.pt", kind="classifier", arch="A", model=build("classifier", "A"),
                              config={}), lying, arch="magnet")
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


def test_at_least_25_cases():
    assert len(CASES) >= 25


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, env, monkeypatch, capsys):
    check_refused(name, CASES[name], env, monkeypatch, capsys)


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
