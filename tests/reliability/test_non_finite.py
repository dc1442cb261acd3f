"""Non-finite or impossible numbers are refused in one line (exit 2 for an option, 65 for a file), never turned into a plausible result:
infinite or NaN rates and weights on the command line and in a config (NaN passes every JSON-schema bound),
seeds outside 0 .. 2**63 - 1, absurd resolutions, and checkpoints whose weights hold NaN."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from madvae.checkpoint import save_checkpoint
from madvae.cli import app
from madvae.models import MagNetClassifier

ROOT = Path(__file__).resolve().parents[2]


def one_line(outcome_output: str) -> str:
    lines = outcome_output.strip().splitlines()
    assert len(lines) == 1, outcome_output
    return lines[0]


@pytest.mark.parametrize("option, value", [("--lr", "inf"), ("--lr", "nan"), ("--beta", "nan"), ("--gamma", "inf"),
                                           ("--alpha", "-inf")])
def test_train_refuses_non_finite_rates_and_weights(option, value, tmp_path, clean_test_set):
    outcome = CliRunner().invoke(app, ["train", str(clean_test_set), "--loss", "identity", option, value,
                                       "--device", "cpu", "--out", str(tmp_path / "v.pt")])
    assert outcome.exit_code == 2 and "finite" in one_line(outcome.output)
    assert not list(tmp_path.iterdir())


def test_classifier_refuses_an_infinite_rate(tmp_path, clean_test_set):
    outcome = CliRunner().invoke(app, ["classifier", "--train", str(clean_test_set), "--lr", "inf", "--device", "cpu",
                                       "--out", str(tmp_path / "c.pt")])
    assert outcome.exit_code == 2 and "finite" in one_line(outcome.output)


@pytest.mark.parametrize("argv", [["gen", "--seed", "-1"], ["gen", "--seed", str(2**64)],
                                  ["classifier", "--seed", "-1"], ["embed", "x.h5", "--dpi", "100000"]])
def test_out_of_range_integers_are_usage_errors(argv, tmp_path):
    done = subprocess.run([sys.executable, "-m", "madvae", *argv, "--out", str(tmp_path / "o")], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and "madvae: error:" in one_line(done.stderr), done.stderr
    assert "Invalid value for" in done.stderr and argv[-2] in done.stderr


def test_nan_weights_are_refused(tmp_path, clean_test_set):
    model = MagNetClassifier()
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    broken = save_checkpoint(tmp_path / "nan.pt", kind="classifier", arch="magnet", model=model, config={})
    outcome = CliRunner().invoke(app, ["attack", "--set", str(clean_test_set), "--classifier", str(broken),
                                       "--device", "cpu", "--out", str(tmp_path / "r.json")])
    line = one_line(outcome.output)
    assert outcome.exit_code == 65 and "NaN or Inf" in line and str(broken) in line
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("setting", ["vae: {lr: .inf}", "vae: {beta: .nan}"])
def test_config_with_a_non_finite_number_is_refused(setting, tmp_path):
    overlay = tmp_path / "bad.yaml"
    overlay.write_text(setting + "\n")
    done = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", str(overlay), "--config",
                           f"results_dir={tmp_path / 'results'}"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode != 0
    key = setting.split(":")[0] + "." + setting.split("{")[1].split(":")[0]
    assert f"config.{key}" in done.stdout + done.stderr and "finite" in done.stdout + done.stderr
