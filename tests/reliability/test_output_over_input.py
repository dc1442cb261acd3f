"""A command whose output is one of its own inputs is refused before any work, whatever the spelling (the same
path, a relative path, a symlink, a hard link): one line, exit 2, and the input byte for byte as it was."""
from __future__ import annotations

import os

import pytest
import torch
from typer.testing import CliRunner

from madvae.checkpoint import save_checkpoint
from madvae.cli import app
from madvae.generate import make_adversarial_set
from madvae.models import DefenseVAE


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, clean_test_set, random_classifier):
    folder = tmp_path_factory.mktemp("inputs")
    adversarial = folder / "fgsm.h5"
    make_adversarial_set(adversarial, input_path=clean_test_set, classifier_path=random_classifier, attack="fgsm",
                         limit=8, device="cpu", seed=0, progress=False)
    torch.manual_seed(0)
    vae = save_checkpoint(folder / "vae.pt", kind="vae", arch="defense-vae", model=DefenseVAE(),
                          config={"loss": "vanilla"}, meta={"training_sets": []})
    return {"clean": clean_test_set, "adv": adversarial, "classifier": random_classifier, "vae": vae}


def spellings(target, tmp_path):
    """The same file as a plain path, a relative path, a symlink and a hard link."""
    link, hard = tmp_path / "link", tmp_path / "hard"
    link.symlink_to(target)
    try:
        os.link(target, hard)
    except OSError:  # another filesystem: no hard links there
        hard = None
    relative = os.path.relpath(target)
    return [p for p in (str(target), relative, str(link), None if hard is None else str(hard)) if p]


COMMANDS = {
    "gen over its input set": (lambda f: ["gen", "--attack", "fgsm", "--input", f["clean"], "--classifier",
                                          f["classifier"], "--device", "cpu", "--out"], "clean"),
    "gen over its classifier": (lambda f: ["gen", "--attack", "fgsm", "--input", f["clean"], "--classifier",
                                           f["classifier"], "--device", "cpu", "--out"], "classifier"),
    "classifier over its training set": (lambda f: ["classifier", "--train", f["clean"], "--epochs", "1",
                                                    "--device", "cpu", "--out"], "clean"),
    "train over its set": (lambda f: ["train", str(f["adv"]), "--device", "cpu", "--out"], "adv"),
    "attack over its set": (lambda f: ["attack", "--set", f["adv"], "--classifier", f["classifier"], "--vae",
                                       f["vae"], "--device", "cpu", "--out"], "adv"),
    "attack over its classifier": (lambda f: ["attack", "--set", f["adv"], "--classifier", f["classifier"],
                                              "--device", "cpu", "--out"], "classifier"),
    "attack over its vae": (lambda f: ["attack", "--set", f["adv"], "--classifier", f["classifier"], "--vae",
                                       f["vae"], "--device", "cpu", "--out"], "vae"),
}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_an_output_that_is_an_input_is_refused(name, inputs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    build, victim = COMMANDS[name]
    target = inputs[victim]
    before = target.read_bytes()
    for out in spellings(target, tmp_path):
        outcome = CliRunner().invoke(app, [*map(str, build(inputs)), out])
        lines = outcome.output.strip().splitlines()
        assert outcome.exit_code == 2 and len(lines) == 1, (out, outcome.output)
        assert "would destroy the input" in lines[0], lines[0]
        assert target.read_bytes() == before
        assert not list(target.parent.glob(".*.tmp"))
