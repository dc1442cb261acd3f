"""Adaptive attacks (madvae.attacks.adaptive) and their evaluation (madvae.evaluate.adaptive).

Tiny MLP models stand in for MagNet and the Defense-VAE: the attacks only need encode/decode and a classifier,
and tiny models train in a second or two, so the sanity checks run on real digits within the test budget."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from typer.testing import CliRunner

from madvae.attacks import ADAPTIVE_ATTACKS, resolve_params, run_attack
from madvae.defense import Target
from madvae.attacks.adaptive import bpda_gradient, eot_gradient
from madvae.checkpoint import save_checkpoint
from madvae.cli import app
from madvae.data import load_source
from madvae.errors import MadvaeError
from madvae.defense import make_purifier, mean_decoding, sampled_decoding
from madvae.evaluate.adaptive import evaluate_adaptive
from madvae.models import DefenseVAE
from madvae.outcomes import decode_bits


class TinyVAE(nn.Module):
    """DefenseVAE's interface (encode, decode, forward -> (recon, z, mean, logvar)) on a small MLP."""

    def __init__(self, latent=16):
        super().__init__()
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.BatchNorm1d(128), nn.ReLU())
        self.mean_head, self.logvar_head = nn.Linear(128, latent), nn.Linear(128, latent)
        self.decoder = nn.Sequential(nn.Linear(latent, 128), nn.ReLU(), nn.Linear(128, 784), nn.Sigmoid())

    def encode(self, x):
        features = self.encoder(x)
        return self.mean_head(features), self.logvar_head(features)

    def decode(self, z):
        return self.decoder(z).view(-1, 1, 28, 28)

    def forward(self, x, sample=None):
        mean, logvar = self.encode(x)
        sample = self.training if sample is None else sample
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar) if sample else mean
        return self.decode(z), z, mean, logvar


def tiny_classifier():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Dropout(0.2), nn.Linear(128, 10))


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def digits():
    x, y = load_source("mnist-5k", "test")
    return torch.from_numpy(x[:64]), torch.from_numpy(y[:64])


@pytest.fixture(scope="module")
def trained(one_thread):
    """(classifier, vae) trained for a few seconds on 1,000 mnist-5k training digits, in eval mode."""
    x, y = (torch.from_numpy(a[:1000]) for a in load_source("mnist-5k", "train"))
    torch.manual_seed(0)
    classifier, vae = tiny_classifier(), TinyVAE()
    optimizers = torch.optim.Adam(classifier.parameters(), 1e-3), torch.optim.Adam(vae.parameters(), 3e-3)
    for epoch in range(10):
        for start in range(0, 1000, 50):
            xb, yb = x[start:start + 50], y[start:start + 50]
            recon, _, mean, logvar = vae(xb)
            kl = -0.5 * (1 + logvar - mean ** 2 - logvar.exp()).sum()
            losses = (F.cross_entropy(classifier(xb), yb), F.binary_cross_entropy(recon, xb, reduction="sum") + kl)
            for optimizer, loss in zip(optimizers, losses):
                if epoch < 5 or optimizer is optimizers[1]:  # the classifier needs fewer epochs
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
    for optimizer in optimizers:
        optimizer.zero_grad(set_to_none=True)
    return classifier.eval(), vae.eval()


def accuracy(classifier, x, y, vae=None):
    with torch.no_grad():
        return (classifier(mean_decoding(vae, x)).argmax(1) == y).float().mean().item()


FAST = {"nb_iter": 3, "eps_iter": 0.1, "restarts": 2, "eot_samples": 2}


@pytest.mark.parametrize("name", sorted(ADAPTIVE_ATTACKS))
def test_attack_invariants(name, digits):
    torch.manual_seed(0)
    classifier, vae = tiny_classifier().train(), TinyVAE().train()  # train mode: the attack must restore it
    vae.decoder[0].weight.requires_grad_(False)  # a mixed set of flags, each to be given back as it was
    modes = [m.training for m in (*classifier.modules(), *vae.modules())]
    flags = [p.requires_grad for p in (*classifier.parameters(), *vae.parameters())]
    x, y = digits[0][:16], digits[1][:16]
    original = x.clone()
    params = resolve_params(name, "test", {k: v for k, v in FAST.items() if k in ADAPTIVE_ATTACKS[name].presets["test"]})
    target = Target(classifier, vae, 2 if name == "eot" else 0)
    torch.manual_seed(1)
    x_adv = run_attack(name, target, x, y, params)
    assert torch.equal(x, original), "the input batch was modified"
    assert x_adv.shape == x.shape and x_adv.dtype == torch.float32
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert (x_adv - x).abs().max() <= params["eps"] + 1e-6
    assert [m.training for m in (*classifier.modules(), *vae.modules())] == modes
    assert [p.requires_grad for p in (*classifier.parameters(), *vae.parameters())] == flags
    assert all(p.grad is None for p in (*classifier.parameters(), *vae.parameters()))
    torch.manual_seed(1)
    assert torch.equal(run_attack(name, target, x, y, params), x_adv), "not reproducible"


def test_without_a_vae_every_pgd_attack_is_the_same_plain_pgd(digits):
    torch.manual_seed(0)
    classifier = tiny_classifier().eval()
    x, y = digits[0][:16], digits[1][:16]
    results = []
    for name in sorted(name for name, spec in ADAPTIVE_ATTACKS.items() if spec.module == "adaptive"):
        torch.manual_seed(1)
        params = resolve_params(name, "test", {"nb_iter": 3, "eps_iter": 0.1, "restarts": 1})
        results.append(run_attack(name, Target(classifier), x, y, params))
    assert all(torch.equal(results[0], other) for other in results[1:])


def test_bpda_gradient_is_the_classifier_gradient_at_the_vae_output(digits):
    torch.manual_seed(0)
    classifier, vae = tiny_classifier().eval(), TinyVAE().eval()
    x, y = digits[0][:8], digits[1][:8]
    grad, loss, _ = bpda_gradient(classifier, vae, x, y)
    purified = mean_decoding(vae, x).detach().requires_grad_(True)
    expected_loss = F.cross_entropy(classifier(purified), y, reduction="none")
    (expected,) = torch.autograd.grad(expected_loss.sum(), purified)
    assert torch.allclose(grad, expected, atol=1e-7) and torch.allclose(loss, expected_loss.detach())
    leaf = x.clone().requires_grad_(True)  # and it is not the true end-to-end gradient
    (end_to_end,) = torch.autograd.grad(
        F.cross_entropy(classifier(mean_decoding(vae, leaf)), y, reduction="sum"), leaf)
    assert not torch.allclose(grad, end_to_end)


def test_eot_gradient_equals_one_graph_over_all_draws_and_samples_like_the_purifier(digits):
    torch.manual_seed(0)
    classifier, vae = tiny_classifier().eval(), TinyVAE().eval()
    x, y = digits[0][:8], digits[1][:8]
    torch.manual_seed(3)
    grad, loss, _ = eot_gradient(classifier, vae, x, y, eot_samples=3, samples=2)
    torch.manual_seed(3)  # the same draws, every one kept in a single graph
    leaf = x.clone().requires_grad_(True)
    mean, logvar = vae.encode(leaf)
    losses = [F.cross_entropy(classifier(sampled_decoding(vae, mean, logvar, 2)), y, reduction="none")
              for _ in range(3)]
    (expected,) = torch.autograd.grad(torch.stack(losses).mean(0).sum(), leaf)
    assert torch.allclose(grad, expected, atol=1e-6, rtol=1e-4)
    assert torch.allclose(loss, torch.stack(losses).mean(0).detach(), atol=1e-6)
    with torch.no_grad():  # the attacked randomness is the evaluated defense's
        torch.manual_seed(5)
        ours = sampled_decoding(vae, *vae.encode(x), 4)
        torch.manual_seed(5)
        assert torch.equal(ours, make_purifier(vae, 4)(x))


def test_adaptive_attack_beats_the_defense_unaware_one(trained, digits):
    classifier, vae = trained
    x, y = digits
    assert accuracy(classifier, x, y, vae) > 0.6, "the tiny defense must work on clean digits for this to mean much"
    params = {"eps": 0.1, "nb_iter": 10, "eps_iter": 0.025, "restarts": 1}
    torch.manual_seed(0)
    unaware = run_attack("pgd-e2e", Target(classifier), x, y, params)  # plain PGD on the classifier alone
    torch.manual_seed(0)
    adaptive = run_attack("pgd-e2e", Target(classifier, vae), x, y, params)
    assert accuracy(classifier, adaptive, y, vae) < accuracy(classifier, unaware, y, vae)


def test_accuracy_does_not_increase_with_eps(trained, digits):
    classifier, vae = trained
    x, y = digits
    curve = []
    for eps in (0.0, 0.05, 0.1, 0.2, 0.3):
        torch.manual_seed(0)
        x_adv = run_attack("pgd-e2e", Target(classifier, vae), x, y, {"eps": eps, "nb_iter": 5, "eps_iter": eps / 3,
                                                                 "restarts": 1})
        curve.append(accuracy(classifier, x_adv, y, vae))
    assert curve[0] == accuracy(classifier, x, y, vae)  # eps 0 leaves the digits as they are
    assert all(later <= earlier for earlier, later in zip(curve, curve[1:])), curve
    assert curve[-1] < curve[0]


@pytest.fixture(scope="module")
def vae_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "vae.pt"
    return save_checkpoint(path, kind="vae", arch="defense-vae", model=DefenseVAE(), config={"loss": "combined"})


@pytest.mark.parametrize("attack, samples", [("pgd-e2e", 0), ("bpda", 0), ("eot", 2)])
def test_evaluate_adaptive_writes_the_four_metric_groups(attack, samples, clean_test_set, random_classifier,
                                                         vae_checkpoint, tmp_path):
    out = tmp_path / "r.json"
    result = evaluate_adaptive(clean_test_set, random_classifier, out, attack=attack, vae_path=vae_checkpoint,
                               params=["nb_iter=1", "eot_samples=1"] if attack == "eot" else ["nb_iter=1"],
                               quick=True, samples=samples, device="cpu", batch_size=4, limit=6, progress=False)
    written = json.loads(out.read_text())
    assert written == result
    assert written["kind"] == "adaptive" and written["attack"] == attack and written["n"] == 6
    assert written["params"]["nb_iter"] == 1 and written["quick"] is True
    assert written["defense"]["name"] == "combined" and written["defense"]["samples"] == samples
    assert set(written["metrics"]) == {"clean", "no_defense", "defended", "defended_clean"}
    for values in written["metrics"].values():
        assert set(values) == {"accuracy", "agreement"} and all(0 <= v <= 1 for v in values.values())
    # the per-image outcomes are the metrics, image by image, for the first n digits of the clean set
    outcomes = written["outcomes"]
    assert outcomes["images"] == {"clean_set_sha256": written["set_sha256"], "start": 0, "count": 6}
    for group, values in written["metrics"].items():
        for metric, which in (("accuracy", "correct"), ("agreement", "agree")):
            assert decode_bits(outcomes[which][group], 6).mean() == pytest.approx(values[metric])


@pytest.mark.parametrize("attack", ["pgd-e2e", "bpda"])
def test_mean_defense_attacks_refuse_to_score_a_sampled_defense(attack, clean_test_set, random_classifier,
                                                                 vae_checkpoint, tmp_path):
    """Attacking the posterior-mean defense and scoring the K-sample one would mix two defenses in one number."""
    outcome = CliRunner().invoke(app, ["attack", "--mode", attack, "--set", str(clean_test_set), "--classifier",
                                       str(random_classifier), "--vae", str(vae_checkpoint), "--samples", "4",
                                       "--device", "cpu", "--out", str(tmp_path / "r.json")])
    lines = outcome.output.strip().splitlines()
    assert outcome.exit_code == 2 and len(lines) == 1, outcome.output
    assert "posterior-mean defense" in lines[0] and "--mode eot" in lines[0]
    assert not (tmp_path / "r.json").exists()


def test_evaluate_adaptive_without_a_defense(clean_test_set, random_classifier, tmp_path):
    result = evaluate_adaptive(clean_test_set, random_classifier, tmp_path / "r.json", attack="eot",
                               params={"nb_iter": 2}, device="cpu", limit=4, progress=False)
    assert result["defense"] == {"name": "none"} and set(result["metrics"]) == {"clean", "no_defense"}


@pytest.mark.parametrize("kwargs, needle", [
    ({"attack": "pgd"}, "unknown adaptive attack"),
    ({"attack": "bpda", "params": ["nb_iter=0"]}, "out of range"),
    ({"attack": "bpda", "params": ["eps=1.5"]}, "out of range"),
    ({"attack": "bpda", "params": ["eps=nan"]}, "out of range"),
    ({"attack": "bpda", "params": ["eot_samples=2"]}, "no parameter"),
    ({"attack": "pgd-e2e", "params": ["restarts"]}, "name=value"),
    ({"attack": "pgd-e2e", "params": ["restarts=two"]}, "restarts=two is not a whole number"),
    ({"attack": "eot", "samples": 0, "vae": True}, "samples >= 1"),
    ({"attack": "pgd-e2e", "samples": -1}, "--samples"),
    ({"attack": "pgd-e2e", "batch_size": 0}, "--batch-size"),
])
def test_bad_input_is_a_clear_error(kwargs, needle, clean_test_set, random_classifier, vae_checkpoint, tmp_path):
    vae_path = vae_checkpoint if kwargs.pop("vae", False) else None
    with pytest.raises(MadvaeError, match=needle):
        evaluate_adaptive(clean_test_set, random_classifier, tmp_path / "r.json", vae_path=vae_path, device="cpu",
                          progress=False, **kwargs)
    assert not (tmp_path / "r.json").exists()


def test_quick_cut_is_announced_in_the_params():
    full, quick = resolve_params("eot"), resolve_params("eot", quick=True)
    assert full["nb_iter"] == 40 and full["eot_samples"] == 8 and quick["nb_iter"] < full["nb_iter"]
    assert resolve_params("pgd-e2e", "test", ["eps=0"])["eps"] == 0.0  # the start of an eps curve
    assert np.isclose(resolve_params("bpda", "test", {"eps_iter": "0.02"})["eps_iter"], 0.02)
