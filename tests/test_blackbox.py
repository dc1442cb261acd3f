import json

import numpy as np
import pytest
import torch

import madvae.evaluate.blackbox as ebb
from madvae.attacks import SUBSTITUTE_TRAINING
from madvae.attacks.blackbox import jacobian_augment, train_substitute
from madvae.checkpoint import load_checkpoint, save_checkpoint
from madvae.errors import MadvaeError
from madvae.evaluate.blackbox import evaluate_blackbox_paper, evaluate_blackbox_transfer
from madvae.models import DefenseVAE, build
from madvae.store import write_set

FAST = {"params": {"rounds": 2, "substitute_epochs": 1}, "device": "cpu", "progress": False}


class _Linear(torch.nn.Module):
    """logits = W x: d softmax_k / dx has a sign we can work out by hand for two classes."""

    def __init__(self, weight):
        super().__init__()
        self.weight = torch.nn.Parameter(weight)

    def forward(self, x):
        return x.flatten(1) @ self.weight.T


def test_jacobian_augment_steps_by_lambda_along_the_gradient_sign():
    torch.manual_seed(0)
    w = 0.01 * torch.randn(2, 784)  # small: a saturated softmax has a zero gradient, hence no step
    w[:, 0] = torch.tensor([0.01, -0.01])  # pixel 0 pushes towards class 0
    model = _Linear(w)
    x = torch.rand(6, 1, 28, 28)
    x[:, 0, 0, 0] = 0.5
    labels = torch.tensor([0, 1, 0, 1, 0, 1])
    new = jacobian_augment(model, x, labels, 0.1)
    assert new.shape == x.shape and new.min() >= 0 and new.max() <= 1
    # two classes: d p_0 / dx = p_0 p_1 (w_0 - w_1), d p_1 / dx its negative
    expected_sign = torch.sign(w[0] - w[1]).view(1, 1, 28, 28) * (1 - 2 * labels.view(-1, 1, 1, 1))
    step = new - x
    free = ((x + 0.1 * expected_sign) >= 0) & ((x + 0.1 * expected_sign) <= 1)
    assert torch.allclose(step[free], 0.1 * expected_sign.expand_as(x)[free], atol=1e-6)
    assert torch.allclose(step[:, 0, 0, 0], torch.tensor([0.1, -0.1] * 3))
    assert torch.equal(new[~free], (x + 0.1 * expected_sign).clamp(0, 1)[~free])
    assert model.training


class _Oracle:
    """A fixed random E network: deterministic labels; records every batch it is asked about."""

    def __init__(self):
        torch.manual_seed(123)
        self.model = build("classifier", "E").eval()
        self.sizes = []

    def __call__(self, x):
        self.sizes.append(len(x))
        with torch.no_grad():
            return self.model(x).argmax(1)


def test_train_substitute_counts_queries_and_doubles_the_set():
    oracle = _Oracle()
    x_seed = torch.rand(20, 1, 28, 28)
    model, info = train_substitute("E", oracle, x_seed, rounds=4, epochs=1, seed=0)
    assert oracle.sizes == [20, 20, 40, 80]  # the seed, then only each augmentation's new points
    assert info["queries"] == sum(oracle.sizes) == 160
    assert info["train_size"] == 160 == 20 * 2 ** 3
    assert [h["train_size"] for h in info["history"]] == [20, 40, 80, 160]
    assert not model.training


def test_flip_every_alternates_the_step_sign():
    _, info = train_substitute("E", _Oracle(), torch.rand(4, 1, 28, 28), rounds=5, epochs=1, flip_every=2)
    assert [h.get("step") for h in info["history"]] == [0.1, 0.1, -0.1, -0.1, None]


def _quadrant_images(n, generator):
    """Four flat quadrants of random brightness plus a little noise."""
    levels = torch.rand(n, 2, 1, 2, 1, generator=generator).expand(n, 2, 14, 2, 14).reshape(n, 1, 28, 28)
    return (levels + 0.2 * torch.rand(n, 1, 28, 28, generator=generator) - 0.1).clamp(0, 1)


def test_substitute_learns_a_simple_oracle():
    """Oracle: the brightest quadrant (4 classes). Agreement on fresh images is far above chance (0.25)."""
    def oracle(x):
        return x.view(-1, 2, 14, 2, 14).mean((2, 4)).flatten(1).argmax(1)

    generator = torch.Generator().manual_seed(0)
    model, info = train_substitute("E", oracle, _quadrant_images(40, generator), rounds=3, epochs=10,
                                   batch_size=32, seed=0)
    test = _quadrant_images(500, generator)
    with torch.no_grad():
        agreement = (model(test).argmax(1) == oracle(test)).float().mean().item()
    assert info["queries"] == 160 and agreement > 0.7


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bb")
    torch.manual_seed(0)
    save_checkpoint(folder / "E.pt", kind="classifier", arch="E", model=build("classifier", "E"), config={})
    save_checkpoint(folder / "magnet.pt", kind="classifier", arch="magnet", model=build("classifier", "magnet"),
                    config={})
    save_checkpoint(folder / "vae.pt", kind="vae", arch="defense-vae", model=DefenseVAE(), config={"loss": "vanilla"})
    return folder


def test_paper_mode_json(tmp_path, clean_test_set, checkpoints):
    result = evaluate_blackbox_paper(clean_test_set, checkpoints / "E.pt", tmp_path / "p.json", limit=20,
                                     device="cpu", progress=False)
    assert result["kind"] == "blackbox-paper" and result["substitute"] == "E" and result["n"] == 20
    assert result["attack"] == "fgsm" and result["params"] == {"eps": 0.3}
    assert "white-box on the substitute" in result["note"]
    assert set(result["metrics"]) == {"clean", "no_defense"}  # no VAE, no defended metrics
    assert json.loads((tmp_path / "p.json").read_text()) == result
    with_vae = evaluate_blackbox_paper(clean_test_set, checkpoints / "E.pt", tmp_path / "v.json", limit=8,
                                       vae_path=checkpoints / "vae.pt", device="cpu", progress=False)
    assert set(with_vae["metrics"]) == {"clean", "no_defense", "defended", "defended_clean"}
    assert set(with_vae["metrics"]["defended"]) == {"accuracy", "agreement"}
    assert with_vae["defense"]["name"] == "vanilla"


def test_paper_mode_refuses_non_substitutes(tmp_path, clean_test_set, checkpoints):
    with pytest.raises(MadvaeError, match="vae checkpoint"):
        evaluate_blackbox_paper(clean_test_set, checkpoints / "vae.pt", tmp_path / "x.json", device="cpu")
    with pytest.raises(MadvaeError, match="Table 6"):
        evaluate_blackbox_paper(clean_test_set, checkpoints / "magnet.pt", tmp_path / "x.json", device="cpu")


def test_transfer_mode_holds_out_the_attacker_images(tmp_path, checkpoints, monkeypatch):
    n_set, holdout = 30, 7
    rng = np.random.default_rng(0)
    x = rng.random((n_set, 1, 28, 28), dtype=np.float32)
    x[:, 0, 0, 0] = np.arange(n_set) / 100  # pixel (0, 0) names the image
    y = rng.integers(0, 10, n_set)
    path = write_set(tmp_path / "s.h5", x, y, dataset="d", split="test", seed=0)
    attacked = []
    real_attack = ebb.run_attack

    def spy(name, model, xb, yb, params):
        attacked.extend(np.rint(xb[:, 0, 0, 0].numpy() * 100).astype(int).tolist())
        return real_attack(name, model, xb, yb, params)

    monkeypatch.setattr(ebb, "run_attack", spy)
    result = evaluate_blackbox_transfer(path, checkpoints / "magnet.pt", tmp_path / "t.json", substitute_arch="E",
                                        vae_path=checkpoints / "vae.pt", batch_size=8,
                                        save_substitute=tmp_path / "sub.pt",
                                        **{**FAST, "params": {**FAST["params"], "holdout": holdout}})
    held = result["holdout_indices"]
    assert len(held) == holdout and result["n"] == n_set - holdout
    assert sorted(attacked) == sorted(set(range(n_set)) - set(held))
    assert result["queries"] == result["substitute_training"]["train_size"] == holdout * 2
    assert 0 <= result["substitute_agreement"] <= 1
    assert set(result["metrics"]) == {"clean", "no_defense", "defended", "defended_clean"}
    assert result["params"]["substitute_arch"] == "E" and result["params"]["holdout"] == holdout
    assert load_checkpoint(tmp_path / "sub.pt", expect_kind="classifier", expect_arch="E")
    assert json.loads((tmp_path / "t.json").read_text())["kind"] == "blackbox-transfer"


def test_transfer_mode_bad_input(tmp_path, clean_test_set, checkpoints):
    out = tmp_path / "x.json"
    with pytest.raises(MadvaeError, match="leaves nothing to evaluate"):
        evaluate_blackbox_transfer(clean_test_set, checkpoints / "magnet.pt", out, **{**FAST, "params": {**FAST["params"], "holdout": 64}})
    with pytest.raises(MadvaeError, match="not one of Table 6"):
        evaluate_blackbox_transfer(clean_test_set, checkpoints / "magnet.pt", out, substitute_arch="Z", **FAST)
    with pytest.raises(MadvaeError, match="vae checkpoint"):
        evaluate_blackbox_transfer(clean_test_set, checkpoints / "vae.pt", out, **FAST)
    assert not out.exists()


def test_quick_gives_way_to_the_users_own_settings(tmp_path, clean_test_set, checkpoints):
    """--quick cuts what the user left at its default; a setting the user gave (--param rounds=1) is the one run
    and recorded, never silently replaced by the quick cut."""
    result = evaluate_blackbox_transfer(clean_test_set, checkpoints / "magnet.pt", tmp_path / "q.json", quick=True,
                                        limit=40, params={"rounds": 1, "holdout": 8}, device="cpu", progress=False)
    assert result["params"]["rounds"] == result["substitute_training"]["rounds"] == 1
    assert result["params"]["substitute_epochs"] == SUBSTITUTE_TRAINING.quick["substitute_epochs"] == 5
    assert result["params"]["quick"] is True
