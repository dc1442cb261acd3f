import inspect

import pytest
import torch

from madvae.attacks import ATTACKS, KINDS, STORED_ATTACKS, resolve_params, run_attack
from madvae.attacks.overpowered import noise_seeds
from madvae.defense import Target
from madvae.models import DefenseVAE
from madvae.checkpoint import load_checkpoint
from madvae.errors import MadvaeError
from madvae.store import open_set

# small, fast settings; the invariants do not depend on iteration counts
FAST = {"cw": ["max_iterations=5", "binary_search_steps=1"], "mifgsm": ["nb_iter=5"], "pgd": ["nb_iter=5"],
        "single-pixel": ["max_pixels=5"], "pgd-e2e": ["nb_iter=2", "restarts=1"], "bpda": ["nb_iter=2"],
        "eot": ["nb_iter=2", "eot_samples=1"]}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_every_attack_takes_the_one_call_signature(name, batch_and_model):
    """fn(target, x, y, **params) -> x_adv for every kind: a Target with a VAE goes in, a batch of images in [0, 1]
    of x's shape comes out and x is untouched."""
    spec = ATTACKS[name]
    assert spec.kind in KINDS and list(inspect.signature(spec.function()).parameters)[:3] == ["target", "x", "y"]
    x, y, model = batch_and_model
    x, y = x[:4], y[:4]
    original = x.clone()
    params, extra = resolve_params(name, "quick" if spec.kind == "latent" else "test", FAST.get(name)), {}
    if spec.kind == "latent":  # one run per norm: the evaluation loops over the preset's norms
        params = {**{k: v for k, v in params.items() if k != "norms"}, "norm": params["norms"][0], "steps": 2}
        extra = {"image_seeds": noise_seeds(0, range(len(x)), params["norm"])}
    torch.manual_seed(0)
    x_adv = run_attack(name, Target(model, DefenseVAE().eval(), samples=1 if name == "eot" else 0), x, y, params,
                       **extra)
    assert torch.equal(x, original) and x_adv.shape == x.shape and not x_adv.requires_grad
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    if name not in ("cw", "single-pixel", "autoattack", "square"):  # unchanged where they find nothing
        assert not torch.equal(x_adv, x)


@pytest.fixture(scope="module")
def batch_and_model(clean_test_set, random_classifier):
    with open_set(clean_test_set) as reader:
        data = reader.read(0, 16)
    model = load_checkpoint(random_classifier).build_model()
    return torch.from_numpy(data["x_clean"]), torch.from_numpy(data["y"]), model


@pytest.mark.parametrize("name", sorted(STORED_ATTACKS))
def test_attack_invariants(name, batch_and_model):
    x, y, model = batch_and_model
    params = resolve_params(name, "test", FAST.get(name))
    if name == "rfgsm":
        params["noise"] = "sign"  # the bounded variant; the Gaussian one is checked below
    original = x.clone()
    torch.manual_seed(1)
    x_adv = run_attack(name, Target(model), x, y, params)
    assert torch.equal(x, original), "the input batch was modified"
    assert x_adv.shape == x.shape and x_adv.dtype == torch.float32
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    if STORED_ATTACKS[name].bounded_by_eps or name == "rfgsm":
        assert (x_adv - x).abs().max() <= params["eps"] + 1e-6
    torch.manual_seed(1)
    again = run_attack(name, Target(model), x, y, params)
    assert torch.equal(again, x_adv), "same seed must give identical images"


def test_gaussian_rfgsm_takes_a_gaussian_first_step(batch_and_model):
    x, y, model = batch_and_model
    params = resolve_params("rfgsm", "test")
    torch.manual_seed(0)
    x_adv = run_attack("rfgsm", Target(model), x, y, params)
    # FGSM part is bounded by eps - alpha; the Gaussian noise part is unbounded, so distances differ per pixel
    distances = (x_adv - x).abs().flatten()
    assert distances.max() > params["eps"] - params["alpha"] + 1e-3
    assert len(torch.unique(distances.round(decimals=4))) > 10


def test_batched_single_pixel_equals_advertorch(batch_and_model):
    from madvae.attacks import whitebox

    x, y, model = batch_and_model
    torch.manual_seed(7)
    reference = whitebox.SinglePixelAttack(model, max_pixels=20, clip_min=0.0, clip_max=1.0).perturb(x, y)
    torch.manual_seed(7)
    ours = whitebox.single_pixel(model, x, y, max_pixels=20, images_per_step=50)
    assert torch.equal(ours, reference)


def test_zero_gradients_patch():
    import importlib

    from madvae.attacks import whitebox  # noqa: F401  (installs the patch)

    gradcheck = importlib.import_module("torch.autograd.gradcheck")
    t = torch.ones(3, requires_grad=True)
    (t * 2).sum().backward()
    gradcheck.zero_gradients([t])
    assert torch.equal(t.grad, torch.zeros(3))
    import advertorch.attacks.fast_adaptive_boundary as fab

    assert fab.zero_gradients is gradcheck.zero_gradients


def test_presets_hold_the_paper_grid():
    assert [resolve_params("fgsm", f"train-{i}")["eps"] for i in range(3)] == [0.25, 0.3, 0.35]
    assert [resolve_params("cw", f"train-{i}")["confidence"] for i in range(3)] == [5, 10, 15]
    assert resolve_params("rfgsm", "train-2") == {"eps": 0.35, "alpha": 0.05, "noise": "gaussian"}
    assert resolve_params("pgd", "test") == {"eps": 0.3, "nb_iter": 40, "eps_iter": 0.01, "rand_init": True}
    cw = resolve_params("cw", "test")
    assert (cw["max_iterations"], cw["binary_search_steps"], cw["confidence"]) == (1500, 9, 10)
    quick = resolve_params("cw", "test", quick=True)
    assert quick["max_iterations"] < 1500 and quick["confidence"] == 10
    assert resolve_params("fgsm", "test", ["eps=0.1"])["eps"] == 0.1


@pytest.mark.parametrize("attack,preset,overrides,message", [
    ("fgsm", "test", ["eps=-0.1"], "out of range"),
    ("fgsm", "test", ["eps=1.5"], "out of range"),
    ("fgsm", "test", ["eps=nan"], "NaN"),
    ("fgsm", "test", ["eps=abc"], "eps=abc is not a number"),
    ("fgsm", "test", ["nb_iter=3"], "no parameter 'nb_iter'"),
    ("fgsm", "test", ["eps"], "name=value"),
    ("fgsm", "train-7", [], "no preset"),
    ("rfgsm", "test", ["alpha=0.4"], "alpha < eps"),
    ("pgd", "test", ["rand_init=maybe"], "rand_init=maybe is not true or false"),
    ("deepfool", "test", [], "unknown attack"),
])
def test_bad_parameters(attack, preset, overrides, message):
    with pytest.raises(MadvaeError, match=message):
        resolve_params(attack, preset, overrides)
