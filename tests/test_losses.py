"""Each loss term against values computed by hand on tiny batches (2-D latents, known centres)."""
import math

import pytest
import torch

from madvae.losses import (LossWeights, classification_loss, distance_loss, kl_loss, proximity_loss,
                           reconstruction_loss, total_loss)

# three classes suffice for hand computation; the functions take any number of centres
CENTRES = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
Z = torch.tensor([[3.0, 4.0], [3.0, 0.0]])
LABELS = torch.tensor([0, 1])


def test_reconstruction_is_mean_binary_cross_entropy():
    recon = torch.tensor([[0.5, 0.9], [0.2, 0.5]])
    target = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    expected = -(math.log(0.5) + math.log(0.9) + math.log(0.8) + math.log(0.5)) / 4
    assert reconstruction_loss(recon, target).item() == pytest.approx(expected, rel=1e-6)


def test_kl_is_mean_over_batch_and_latent_dims():
    mean = torch.tensor([[0.0, 1.0], [2.0, 0.0]])
    logvar = torch.tensor([[0.0, 0.0], [0.0, math.log(2.0)]])
    # per dim: -0.5 (1 + logvar - mean^2 - exp(logvar)): 0, 0.5, 2, -0.5 (1 + ln 2 - 2)
    per_dim = [0.0, 0.5, 2.0, -0.5 * (1 + math.log(2.0) - 2.0)]
    assert kl_loss(mean, logvar).item() == pytest.approx(sum(per_dim) / 4, rel=1e-6)
    assert kl_loss(torch.zeros(3, 5), torch.zeros(3, 5)).item() == 0.0


def test_classification_is_cross_entropy_of_the_classifier_on_the_reconstruction():
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]])  # softmax rows: (1/4, 3/4), (1/2, 1/2)
    classifier = lambda recon: logits + 0 * recon.sum()  # noqa: E731 - stands in for a frozen network
    value = classification_loss(classifier, torch.ones(2, 1, 28, 28), torch.tensor([1, 0]))
    assert value.item() == pytest.approx(-(math.log(0.75) + math.log(0.5)) / 2, rel=1e-6)


def test_proximity_is_mean_distance_to_own_centre():
    # ||(3,4) - (0,0)|| = 5, ||(3,0) - (3,0)|| = 0
    assert proximity_loss(Z, LABELS, CENTRES).item() == pytest.approx(2.5, abs=1e-5)


def test_distance_is_mean_distance_to_the_other_centres():
    # z0 (class 0) to c1, c2: ||(0,4)|| = 4, ||(3,0)|| = 3; z1 (class 1) to c0, c2: 3, ||(3,-4)|| = 5
    assert distance_loss(Z, LABELS, CENTRES).item() == pytest.approx((4 + 3 + 3 + 5) / 4, rel=1e-6)


def test_gradients_stay_finite_when_z_sits_on_a_centre():
    centres = CENTRES.clone().requires_grad_(True)
    proximity_loss(Z, LABELS, centres).backward()
    assert torch.isfinite(centres.grad).all()


def _terms(variant, weights=LossWeights()):
    torch.manual_seed(0)
    recon = torch.rand(2, 1, 28, 28) * 0.8 + 0.1
    target = (torch.rand(2, 1, 28, 28) > 0.5).float()
    mean, logvar = torch.randn(2, 2), torch.randn(2, 2) * 0.1
    classifier = lambda x: torch.stack([x.mean((1, 2, 3)), -x.mean((1, 2, 3))], 1)  # noqa: E731
    return total_loss(variant, weights, recon=recon, target=target, z=Z, mean=mean, logvar=logvar, labels=LABELS,
                      classifier=classifier, proximity_centres=CENTRES, distance_centres=CENTRES * 2)


@pytest.mark.parametrize("variant, expected_terms", [
    ("vanilla", {"reconstruction", "kl", "total"}),
    ("identity", {"reconstruction", "kl", "total"}),
    ("classification", {"reconstruction", "kl", "classification", "total"}),
    ("proximity-distance", {"reconstruction", "kl", "proximity", "distance", "total"}),
    ("combined", {"reconstruction", "kl", "classification", "proximity", "distance", "total"}),
])
def test_total_is_the_weighted_sum_of_the_variant_terms(variant, expected_terms):
    weights = LossWeights(alpha=0.3, sigma=0.2, beta=0.5, gamma=0.7)
    total, terms = _terms(variant, weights)
    assert set(terms) == expected_terms
    expected = (terms["reconstruction"] + 0.5 * terms["kl"] + 0.7 * terms.get("classification", 0)
                + 0.3 * terms.get("proximity", 0) - 0.2 * terms.get("distance", 0))
    assert total.item() == pytest.approx(float(expected), rel=1e-6)


def test_defaults_are_the_paper_weights():
    assert LossWeights() == LossWeights(alpha=0.01, sigma=1e-5, beta=0.1, gamma=0.1)


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError):
        _terms("bogus")


def test_proximity_centres_move_toward_their_class_means():
    """The training recipe's centre update (SGD lr 0.5, gradient clipped to 1) on fixed 2-D clusters."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat_interleave(20)
    true_means = torch.tensor([[5.0, 0.0], [-5.0, 0.0], [0.0, 5.0]])
    z = true_means[labels] + 0.3 * torch.randn(60, 2, generator=generator)
    class_means = torch.stack([z[labels == k].mean(0) for k in range(3)])
    centres = torch.randn(3, 2, generator=generator).requires_grad_(True)
    optimiser = torch.optim.SGD([centres], lr=0.5)
    start = (centres.detach() - class_means).norm(dim=1)
    for _ in range(40):
        optimiser.zero_grad()
        (0.01 * proximity_loss(z, labels, centres)).backward()
        torch.nn.utils.clip_grad_norm_([centres], 1.0)
        optimiser.step()
    end = (centres.detach() - class_means).norm(dim=1)
    assert (end < start).all()
