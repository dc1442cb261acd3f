"""The foundation's promise on real data: a MagNet trained on mnist-5k, broken by FGSM."""
import json

import pytest
from typer.testing import CliRunner

from madvae.checkpoint import load_checkpoint
from madvae.cli import app
from madvae.store import open_set
from madvae.train_classifier import accuracy

pytestmark = pytest.mark.slow


def test_trained_classifier_reaches_96_percent_and_fgsm_breaks_it(trained_classifier, tmp_path):
    checkpoint, test_set = trained_classifier
    ckpt = load_checkpoint(checkpoint, expect_kind="classifier")
    assert ckpt.meta["test_accuracy"] >= 0.96
    out = tmp_path / "fgsm.h5"
    result = CliRunner().invoke(app, ["gen", "--attack", "fgsm", "--input", str(test_set), "--classifier",
                                      str(checkpoint), "--out", str(out), "--no-progress", "--seed", "3"])
    assert result.exit_code == 0, result.stderr
    model = ckpt.build_model()
    with open_set(out) as adversarial:
        assert adversarial.n == 1000
        assert accuracy(model, adversarial, "cpu", "x_clean") >= 0.96
        assert accuracy(model, adversarial, "cpu", "x_adv") < 0.3
    summary = json.loads(CliRunner().invoke(app, ["inspect", "--json", str(out)]).stdout)
    assert summary["perturbation"]["linf_max"] <= 0.3 + 1e-6
    assert summary["label_counts"] == [100] * 10
    assert summary["source_classifier_sha256"] == json.loads(
        CliRunner().invoke(app, ["inspect", "--json", str(checkpoint)]).stdout)["sha256"]


def test_attack_command_reports_accuracy_and_agreement(trained_classifier, tmp_path):
    checkpoint, test_set = trained_classifier
    adv = tmp_path / "pgd.h5"
    runner = CliRunner()
    assert runner.invoke(app, ["gen", "--attack", "pgd", "--param", "nb_iter=10", "--limit", "200", "--input",
                               str(test_set), "--classifier", str(checkpoint), "--out", str(adv),
                               "--no-progress"]).exit_code == 0
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["attack", "--set", str(adv), "--classifier", str(checkpoint), "--out", str(out),
                                 "--no-progress"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["n"] == 200 and report["defense"]["name"] == "none"
    assert report["metrics"]["clean"]["agreement"] == 1.0
    assert report["metrics"]["no_defense"]["accuracy"] < 0.3
    assert report["metrics"]["clean"]["accuracy"] >= 0.9
