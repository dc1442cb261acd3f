import json

import numpy as np
import torch

from madvae.checkpoint import save_checkpoint
from madvae.defense import make_purifier
from madvae.evaluate.stored import evaluate_set
from madvae.outcomes import metrics
from madvae.models import DefenseVAE
from madvae.store import write_set


def test_accuracy_and_agreement_differ_on_a_hand_made_case():
    labels = np.array([0, 1, 2, 3])
    clean_predictions = np.array([0, 1, 2, 9])  # the classifier gets the last clean image wrong
    adversarial_predictions = np.array([0, 5, 2, 9])
    m = metrics(adversarial_predictions, labels, clean_predictions)
    assert m == {"accuracy": 0.5, "agreement": 0.75}


class _ConstantClassifier(torch.nn.Module):
    """Predicts class 1 for images brighter than 0.5 on average, else class 0."""

    def forward(self, x):
        bright = (x.flatten(1).mean(1) > 0.5).float()
        return torch.stack([1 - bright, bright], 1).repeat(1, 5)[:, :10]


def test_evaluate_set_counts_both_metrics(tmp_path, monkeypatch):
    n = 10
    x_clean = np.zeros((n, 1, 28, 28), np.float32)
    x_clean[:4] = 1.0  # bright -> class 1
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0])  # image 3 is bright but labelled 0
    x_adv = 1.0 - x_clean  # flips every prediction
    path = write_set(tmp_path / "s.h5", x_clean, y, x_adv, dataset="d", split="test", attack="fgsm",
                     params={}, seed=0, source_classifier_sha256="0" * 64)
    ckpt = save_checkpoint(tmp_path / "c.pt", kind="classifier", arch="E",
                           model=torch.nn.Linear(1, 1), config={})
    import madvae.checkpoint as checkpoint_module

    monkeypatch.setattr(checkpoint_module.Checkpoint, "build_model", lambda self, device="cpu": _ConstantClassifier())
    result = evaluate_set(path, ckpt, tmp_path / "r.json", device="cpu", progress=False)
    assert result["metrics"]["clean"] == {"accuracy": 0.9, "agreement": 1.0}
    assert result["metrics"]["no_defense"] == {"accuracy": 0.1, "agreement": 0.0}
    assert json.loads((tmp_path / "r.json").read_text())["n"] == n


def test_purifier_decodes_the_mean_or_averages_samples():
    torch.manual_seed(0)
    vae = DefenseVAE().eval()
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        mean_output = make_purifier(vae, 0)(x)
        assert torch.equal(mean_output, vae.decode(vae.encode(x)[0]))
        sampled = make_purifier(vae, 4)(x)
    assert sampled.shape == x.shape and not torch.equal(sampled, mean_output)


def test_a_vae_is_not_evaluated_on_a_set_it_was_trained_on(tmp_path, clean_test_set, random_classifier):
    """Scoring a purifier on its own training set reads as a test number; refused in one line, nothing written."""
    from typer.testing import CliRunner

    from madvae.cli import app
    from madvae.generate import make_adversarial_set
    from madvae.util import sha256_file

    adversarial = tmp_path / "fgsm.h5"
    make_adversarial_set(adversarial, input_path=clean_test_set, classifier_path=random_classifier, attack="fgsm",
                         limit=8, device="cpu", seed=1, progress=False)
    torch.manual_seed(0)
    seen = save_checkpoint(tmp_path / "seen.pt", kind="vae", arch="defense-vae", model=DefenseVAE(),
                           config={"loss": "vanilla"},
                           meta={"training_sets": [{"path": str(adversarial), "sha256": sha256_file(adversarial)}]})
    out = tmp_path / "r.json"
    outcome = CliRunner().invoke(app, ["attack", "--set", str(adversarial), "--classifier", str(random_classifier),
                                       "--vae", str(seen), "--device", "cpu", "--out", str(out)])
    lines = outcome.output.strip().splitlines()
    assert outcome.exit_code == 65 and len(lines) == 1, outcome.output
    assert "trained on this very set" in lines[0] and str(adversarial) in lines[0]
    assert not out.exists()
    # another purifier is scored, with per-image outcomes naming the clean images the set was crafted from
    unseen = save_checkpoint(tmp_path / "unseen.pt", kind="vae", arch="defense-vae", model=DefenseVAE(),
                             config={"loss": "vanilla"}, meta={"training_sets": []})
    result = evaluate_set(adversarial, random_classifier, out, vae_path=unseen, device="cpu", progress=False)
    assert result["outcomes"]["images"] == {"clean_set_sha256": sha256_file(clean_test_set), "start": 0, "count": 8}
    assert result["defense"]["training"]["loss"] == "vanilla"


def test_a_set_crafted_on_another_classifier_is_recorded_and_shown_as_transfer(tmp_path, clean_test_set,
                                                                              random_classifier):
    from typer.testing import CliRunner

    from madvae.cli import app
    from madvae.generate import make_adversarial_set
    from madvae.models import MagNetClassifier
    from madvae.report import build_whitebox_table

    adversarial = tmp_path / "fgsm.h5"
    make_adversarial_set(adversarial, input_path=clean_test_set, classifier_path=random_classifier, attack="fgsm",
                         limit=8, device="cpu", seed=1, progress=False)
    torch.manual_seed(5)
    other = save_checkpoint(tmp_path / "other.pt", kind="classifier", arch="magnet", model=MagNetClassifier(),
                            config={})
    same = evaluate_set(adversarial, random_classifier, tmp_path / "same.json", device="cpu", progress=False)
    assert same["transfer"] is False
    outcome = CliRunner().invoke(app, ["attack", "--set", str(adversarial), "--classifier", str(other),
                                       "--device", "cpu", "--out", str(tmp_path / "t" / "x.json")])
    assert outcome.exit_code == 0 and "transfer" in outcome.output
    written = json.loads((tmp_path / "t" / "x.json").read_text())
    assert written["transfer"] is True and written["source_classifier_sha256"] == same["classifier_sha256"]
    table = build_whitebox_table([tmp_path / "t"])
    assert table.rows[0]["attack"] == "FGSM (transfer)" and any("transfer attack" in n for n in table.notes)
