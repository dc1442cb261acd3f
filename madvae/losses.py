"""Loss terms of Defense-VAE and MAD-VAE (paper section 2.2), as small pure functions.

Where we differ from the paper or the authors' code, every weight is an option of ``madvae train``:

- The paper writes alpha for the classification weight in 2.2.1 (and alpha again for proximity in 2.2.2);
  the original code weighted classification by 0.1. Here it is ``gamma`` (the paper's name in 2.2.3).
- The original code used a distance weight of 1e-4 for proximity-distance and 1e-5 for combined; the paper
  gives sigma = 1e-5. We default to 1e-5 for both.
- The paper's distance loss adds ||c_i - c_j|| between centres; the original code (and we) use only
  ||z - c_j||, with a separate learned centre set for the distance term.
- The centres' SGD rates decay as in the original code (its MinExponentialLR): x0.1 each epoch, floored at
  1e-5 (proximity 0.5 -> 0.05 -> ..., distance 1e-4 -> 1e-5). ``--centre-lr-decay 1`` keeps them fixed, as
  madvae did before; ``--centre-lr-floor`` moves the floor.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from madvae.registry import USES_CENTRES, USES_CLASSIFIER, VARIANTS

NUM_CLASSES = 10
TERMS = ("reconstruction", "kl", "classification", "proximity", "distance", "total")


@dataclass(frozen=True)
class LossWeights:
    """alpha: proximity, sigma: distance, beta: KL, gamma: classification (paper text defaults)."""
    alpha: float = 0.01
    sigma: float = 1e-5
    beta: float = 0.1
    gamma: float = 0.1

    def as_dict(self) -> dict:
        return asdict(self)


def _euclidean(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """||a - b|| over the last dim; clamped under the root so the gradient stays finite at a == b."""
    return ((a - b) ** 2).sum(dim=-1).clamp_min(1e-12).sqrt()


def reconstruction_loss(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Lr = mean over batch and pixels of -[t log r + (1 - t) log(1 - r)] (target = the clean image)."""
    return F.binary_cross_entropy(recon, target, reduction="mean")


def kl_loss(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Lkl = mean over batch and latent dims of -0.5 (1 + logvar - mean^2 - exp(logvar)),
    i.e. KL(N(mean, exp(logvar)) || N(0, 1)) per dimension, averaged (as the original code)."""
    return (-0.5 * (1 + logvar - mean.pow(2) - logvar.exp())).mean()


def classification_loss(classifier: torch.nn.Module, recon: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Lc = mean cross-entropy of the (frozen) classifier on the reconstruction vs the true label."""
    return F.cross_entropy(classifier(recon), labels)


def proximity_loss(z: torch.Tensor, labels: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Lp = mean over the batch of ||z_n - c_{y_n}|| (centres: classes x latent)."""
    return _euclidean(z, centres[labels]).mean()


def distance_loss(z: torch.Tensor, labels: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Ld = mean over the batch and the k - 1 other classes j != y_n of ||z_n - c_j||."""
    distances = _euclidean(z[:, None, :], centres[None, :, :])  # batch x classes
    others = torch.ones_like(distances, dtype=torch.bool)
    others[torch.arange(len(labels), device=labels.device), labels] = False
    return distances[others].mean()


def total_loss(variant: str, weights: LossWeights, *, recon, target, z, mean, logvar, labels,
               classifier=None, proximity_centres=None, distance_centres=None):
    """Return (total, terms) for one batch. terms holds detached tensors for every term the variant uses.

    vanilla, identity:  Lr + beta Lkl        (identity is trained clean -> clean)
    classification:     Lr + beta Lkl + gamma Lc
    proximity-distance: Lr + beta Lkl + alpha Lp - sigma Ld
    combined:           Lr + beta Lkl + gamma Lc + alpha Lp - sigma Ld
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown loss variant {variant!r}")
    terms = {"reconstruction": reconstruction_loss(recon, target), "kl": kl_loss(mean, logvar)}
    total = terms["reconstruction"] + weights.beta * terms["kl"]
    if variant in USES_CLASSIFIER:
        terms["classification"] = classification_loss(classifier, recon, labels)
        total = total + weights.gamma * terms["classification"]
    if variant in USES_CENTRES:
        terms["proximity"] = proximity_loss(z, labels, proximity_centres)
        terms["distance"] = distance_loss(z, labels, distance_centres)
        total = total + weights.alpha * terms["proximity"] - weights.sigma * terms["distance"]
    terms["total"] = total
    return total, {name: value.detach() for name, value in terms.items()}


def init_centres(latent_dim: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Learned class centres, NUM_CLASSES x latent, drawn from N(0, 1) as in the original code."""
    return torch.randn(NUM_CLASSES, latent_dim, generator=generator)
