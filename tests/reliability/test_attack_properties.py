"""Property-based invariants of every attack in madvae.attacks.STORED_ATTACKS, on an untrained MagNet and 2-4 images.

For all attacks: x_adv has x's shape and dtype, lies in [0, 1], and x itself is left untouched. For the attacks
bounded by eps (fgsm, mifgsm, pgd; rfgsm with sign noise too): ||x_adv - x||_inf <= eps. Parameters go through
madvae.attacks.resolve_params (the path `madvae gen --param` takes) and the attack through run_attack.
"""
from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from madvae.attacks import STORED_ATTACKS, resolve_params, run_attack
from madvae.defense import Target
from madvae.models import MagNetClassifier

TOL = 1e-6
SETTINGS = settings(max_examples=12, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
BOUNDED = sorted(name for name, spec in STORED_ATTACKS.items() if spec.bounded_by_eps)


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = MagNetClassifier().eval()
    for parameter in net.parameters():
        parameter.requires_grad_(False)
    return net


def batch(seed: int, n: int, edges: bool):
    """n random images (some pixels exactly 0 and 1 when ``edges``: where clipping bites) and labels."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 28, 28, generator=generator)
    if edges:
        mask = torch.rand(x.shape, generator=generator)
        x[mask < 0.2] = 0.0
        x[mask > 0.8] = 1.0
    y = torch.randint(0, 10, (n,), generator=generator)
    return x, y


def attack(name, model, x, y, overrides, seed):
    params = resolve_params(name, "test", [f"{key}={value}" for key, value in overrides.items()])
    original = x.clone()
    torch.manual_seed(seed)  # rand_init, R-FGSM noise, single-pixel order
    x_adv = run_attack(name, Target(model), x, y, params)
    assert torch.equal(x, original), f"{name} modified its input"
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert torch.isfinite(x_adv).all()
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0, (x_adv.min().item(), x_adv.max().item())
    return x_adv


def linf(x_adv, x) -> float:
    return (x_adv - x).abs().amax().item()


images = st.tuples(st.integers(0, 2**31 - 1), st.integers(2, 4), st.booleans())
eps_values = st.floats(0.01, 0.5, allow_nan=False)


def test_the_bounded_attacks_are_the_expected_ones():
    assert BOUNDED == ["fgsm", "mifgsm", "pgd"]


@SETTINGS
@given(images=images, eps=eps_values)
def test_fgsm_stays_within_eps(model, images, eps):
    x, y = batch(*images)
    x_adv = attack("fgsm", model, x, y, {"eps": eps}, images[0])
    assert linf(x_adv, x) <= eps + TOL


@SETTINGS
@given(images=images, eps=eps_values, eps_iter=st.floats(0.005, 0.2), nb_iter=st.integers(1, 5),
       rand_init=st.booleans())
def test_pgd_stays_within_eps(model, images, eps, eps_iter, nb_iter, rand_init):
    x, y = batch(*images)
    x_adv = attack("pgd", model, x, y, {"eps": eps, "eps_iter": eps_iter, "nb_iter": nb_iter,
                                        "rand_init": rand_init}, images[0])
    assert linf(x_adv, x) <= eps + TOL


@SETTINGS
@given(images=images, eps=eps_values, eps_iter=st.floats(0.005, 0.2), nb_iter=st.integers(1, 5),
       decay=st.floats(0.0, 2.0))
def test_mifgsm_stays_within_eps(model, images, eps, eps_iter, nb_iter, decay):
    x, y = batch(*images)
    x_adv = attack("mifgsm", model, x, y, {"eps": eps, "eps_iter": eps_iter, "nb_iter": nb_iter, "decay": decay},
                   images[0])
    assert linf(x_adv, x) <= eps + TOL


@SETTINGS
@given(images=images, eps=eps_values, share=st.floats(0.0, 0.9), noise=st.sampled_from(["gaussian", "sign"]))
def test_rfgsm_range_and_sign_noise_bound(model, images, eps, share, noise):
    x, y = batch(*images)
    x_adv = attack("rfgsm", model, x, y, {"eps": eps, "alpha": share * eps, "noise": noise}, images[0])
    if noise == "sign":  # the paper's formula: alpha + (eps - alpha); gaussian noise (MAD-VAE's code) is unbounded
        assert linf(x_adv, x) <= eps + TOL


@SETTINGS
@given(images=images, confidence=st.floats(0.0, 20.0), lr=st.floats(0.01, 0.2), iterations=st.integers(1, 5),
       abort_early=st.booleans())
def test_cw_range(model, images, confidence, lr, iterations, abort_early):
    x, y = batch(*images)
    attack("cw", model, x, y, {"confidence": confidence, "learning_rate": lr, "max_iterations": iterations,
                               "binary_search_steps": 1, "initial_const": 3.0, "abort_early": abort_early},
           images[0])


@SETTINGS
@given(images=images, max_pixels=st.integers(1, 20))
def test_single_pixel_changes_at_most_one_pixel(model, images, max_pixels):
    x, y = batch(*images)
    x_adv = attack("single-pixel", model, x, y, {"max_pixels": max_pixels}, images[0])
    changed = (x_adv != x).flatten(1)
    assert (changed.sum(1) <= 1).all()
    assert set(x_adv[x_adv != x].tolist()) <= {0.0, 1.0}
