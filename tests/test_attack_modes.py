"""`madvae attack --mode ...`: every mode reachable from the CLI, its result kind, and its bad-input lines."""
from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from madvae.checkpoint import save_checkpoint
from madvae.cli import app
from madvae.models import DefenseVAE, build

runner = CliRunner()


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("modes")
    torch.manual_seed(0)
    return {
        "vae": save_checkpoint(folder / "vae.pt", kind="vae", arch="defense-vae", model=DefenseVAE(),
                               config={"loss": "vanilla"}),
        "sub": save_checkpoint(folder / "sub_e.pt", kind="classifier", arch="E", model=build("classifier", "E"),
                               config={}),
    }


def invoke(*args):
    return runner.invoke(app, ["attack", *map(str, args), "--device", "cpu", "--no-progress"])


@pytest.mark.parametrize("mode, extra, kind, attack", [
    ("pgd-e2e", ["--quick", "--limit", "6"], "adaptive", "pgd-e2e"),
    ("blackbox-paper", ["--limit", "6"], "blackbox-paper", "fgsm"),
    ("blackbox-transfer", ["--substitute-arch", "E", "--param", "holdout=4", "--param", "rounds=1",
                           "--param", "substitute_epochs=1", "--limit", "12"], "blackbox-transfer", "fgsm"),
    ("overpowered", ["--param", "steps=2", "--param", "restarts=1", "--param", "noise_samples=2",
                     "--param", "norms=1.0", "--limit", "3"], "overpowered", "overpowered"),
])
def test_each_mode_writes_its_result_kind(tmp_path, clean_test_set, random_classifier, checkpoints, mode, extra,
                                          kind, attack):
    out = tmp_path / "r.json"
    target = ["--substitute", checkpoints["sub"]] if mode == "blackbox-paper" else ["--classifier", random_classifier]
    result = invoke("--mode", mode, "--set", clean_test_set, *target, "--vae", checkpoints["vae"], *extra,
                    "--out", out)
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    assert payload["kind"] == kind and payload["attack"] == attack and payload["defense"]["name"] == "vanilla"
    assert f"{kind} {attack}" in result.output


@pytest.mark.parametrize("args, message", [
    (["--mode", "blackbox-paper"], "needs --substitute"),
    (["--mode", "overpowered", "--classifier", "{clf}"], "give --vae"),
    (["--mode", "pgd-e2e"], "needs --classifier"),
    (["--classifier", "{clf}", "--param", "eps=0.1"], "does not apply to --mode stored"),
    (["--mode", "blackbox-transfer", "--classifier", "{clf}", "--param", "steps=3"], "has no parameter 'steps'"),
    (["--mode", "overpowered", "--classifier", "{clf}", "--vae", "{vae}", "--param", "norms=abc"],
     "not a comma-separated list of numbers"),
])
def test_bad_mode_options_give_one_line_and_no_file(tmp_path, clean_test_set, random_classifier, checkpoints, args,
                                                    message):
    out = tmp_path / "r.json"
    args = [a.format(clf=random_classifier, vae=checkpoints["vae"]) for a in args]
    result = invoke("--set", clean_test_set, *args, "--out", out)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.output
    assert not out.exists()
