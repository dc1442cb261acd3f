"""Plain reference loops, written the way the authors' code ran the same work: whole numpy arrays in memory,
a torch Dataset returning one sample per __getitem__ (so the DataLoader collates every batch sample by sample),
models in torch's default contiguous layout, float32, plain autograd (no inference mode, nothing frozen).

Each function does exactly the work of one madvae code path, so that the two can be timed and compared.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from madvae.attacks import whitebox  # restores torch's zero_gradients before advertorch is imported


class SampleDataset(Dataset):
    """Numpy arrays served one sample at a time."""

    def __init__(self, *arrays):
        self.arrays = arrays

    def __len__(self):
        return len(self.arrays[0])

    def __getitem__(self, index):
        return tuple(torch.from_numpy(np.asarray(array[index])) for array in self.arrays)


def loader(arrays, batch_size: int, shuffle: bool = False) -> DataLoader:
    return DataLoader(SampleDataset(*arrays), batch_size=batch_size, shuffle=shuffle)


# -- classifier training -------------------------------------------------------------------------------------
def train_classifier(model, optimizer, batches, device) -> None:
    model.train()
    for x, y in batches:
        x, y = x.to(device), y.to(device)
        logits = model(x)
        loss = F.nll_loss(F.log_softmax(logits, 1), y)  # the original's log-softmax output + NLL
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss.item()  # the original logged the loss of every batch


# -- VAE training ----------------------------------------------------------------------------------------------
def vae_loss(variant, weights, recon, target, z, mean, logvar, labels, classifier, proximity, distance):
    """The paper's objectives (section 2.2) written out directly; returns (total, {term: value})."""
    terms = {"reconstruction": F.binary_cross_entropy(recon, target),
             "kl": torch.mean(-0.5 * (1 + logvar - mean ** 2 - torch.exp(logvar)))}
    total = terms["reconstruction"] + weights.beta * terms["kl"]
    if variant in ("classification", "combined"):
        terms["classification"] = F.nll_loss(F.log_softmax(classifier(recon), 1), labels)
        total = total + weights.gamma * terms["classification"]
    if variant in ("proximity-distance", "combined"):
        terms["proximity"] = torch.norm(z - proximity[labels], dim=1).mean()
        to_all = torch.norm(z[:, None, :] - distance[None, :, :], dim=2)  # batch x classes
        others = torch.ones_like(to_all)
        others[torch.arange(len(labels), device=labels.device), labels] = 0
        terms["distance"] = (to_all * others).sum() / others.sum()
        total = total + weights.alpha * terms["proximity"] - weights.sigma * terms["distance"]
    terms["total"] = total
    return total, terms


def vae_step(model, optimizer, x_in, target, labels, *, loss, weights, classifier, centres, centre_optims,
             clip: float = 1.0) -> dict:
    """madvae.train.train_step's signature, so that the two are called alike."""
    recon, z, mean, logvar = model(x_in)
    total, terms = vae_loss(loss, weights, recon, target, z, mean, logvar, labels, classifier,
                            centres.get("proximity_centres"), centres.get("distance_centres"))
    optimizer.zero_grad()
    for centre_optim in centre_optims.values():
        centre_optim.zero_grad()
    total.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    for name, centre_optim in centre_optims.items():
        torch.nn.utils.clip_grad_norm_([centres[name]], clip)
        centre_optim.step()
    optimizer.step()
    return {name: value.item() for name, value in terms.items()}


def train_vae(model, optimizer, batches, device, *, identity: bool, **step) -> None:
    model.train()
    for x_clean, x_adv, y in batches:
        x_clean, x_adv, y = x_clean.to(device), x_adv.to(device), y.to(device)
        vae_step(model, optimizer, x_clean if identity else x_adv, x_clean, y, **step)


# -- attacks -------------------------------------------------------------------------------------------------
def attack(name: str, model, x, y, params: dict):
    """advertorch's attack classes called directly (R-FGSM as the MAD-VAE code built it from FGSM)."""
    bounds = {"clip_min": 0.0, "clip_max": 1.0}
    if name == "fgsm":
        return whitebox.GradientSignAttack(model, eps=params["eps"], **bounds).perturb(x, y)
    if name == "rfgsm":
        noise = torch.randn_like(x)
        start = torch.clamp(x + params["alpha"] * (noise.sign() if params["noise"] == "sign" else noise), 0, 1)
        return whitebox.GradientSignAttack(model, eps=params["eps"] - params["alpha"], **bounds).perturb(start, y)
    if name == "cw":
        return whitebox.CarliniWagnerL2Attack(model, num_classes=10, **params, **bounds).perturb(x, y)
    if name == "mifgsm":
        return whitebox.LinfMomentumIterativeAttack(model, eps=params["eps"], nb_iter=params["nb_iter"],
                                                    eps_iter=params["eps_iter"], decay_factor=params["decay"],
                                                    **bounds).perturb(x, y)
    if name == "pgd":
        return whitebox.LinfPGDAttack(model, **params, **bounds).perturb(x, y)
    if name == "single-pixel":
        return whitebox.SinglePixelAttack(model, max_pixels=params["max_pixels"], **bounds).perturb(x, y)
    raise ValueError(name)


def attack_all(name, model, batches, params, device) -> np.ndarray:
    return np.concatenate([attack(name, model, x.to(device), y.to(device), params).detach().cpu().numpy()
                           for x, y in batches])


# -- evaluation ----------------------------------------------------------------------------------------------
def predict_purified(vae, classifier, batches, device) -> np.ndarray:
    vae.eval()
    classifier.eval()
    return np.concatenate([classifier(vae(x.to(device))[0]).argmax(1).cpu().numpy() for (x,) in batches])


# -- Overpowered attack --------------------------------------------------------------------------------------
def cw_margin(logits, y):
    """logit of the true class minus the best other logit, per row."""
    rows = torch.arange(len(y), device=y.device)
    others = logits.clone()
    others[rows, y] = float("-inf")
    return logits[rows, y] - others.max(1).values


def overpowered(vae, classifier, x, y, *, norm, steps, noise_samples, generators, threshold, lr=0.05,
                lam_init=1000.0, lam_lr=10000.0):
    """Jalal et al.'s latent attack with one restart, every step run, one classifier call per noise draw, each
    image's noise from its own generator (as madvae draws it). Returns (best G(z), its noise-averaged margin): in
    budget first, then the lowest margin (madvae's rule)."""
    vae.eval()
    classifier.eval()
    z = vae.encode(x)[0].detach().requires_grad_(True)
    lam = torch.full((len(x),), lam_init, device=x.device)
    optimizer = torch.optim.Adam([z], lr=lr)
    best, best_margin = x.clone(), torch.zeros(len(x), device=x.device)
    best_score = torch.full((len(x),), float("inf"), device=x.device)
    for step in range(steps):
        gen = vae.decode(z)
        mse = ((gen - x) ** 2).flatten(1).mean(1)
        dist = torch.where(mse > threshold / 2, mse, -torch.ones_like(mse))
        noise = torch.cat([torch.randn((noise_samples, 1, *gen.shape[1:]), generator=g, device=x.device)
                           for g in generators], 1)
        noise = noise / noise.flatten(2).norm(dim=2)[..., None, None, None] * norm
        margin = torch.stack([cw_margin(classifier(gen + r), y) for r in noise]).mean(0)
        within = mse <= threshold
        done = within & (margin <= -1)
        score = margin.detach() + 1e4 * (~within).float()
        better = score < best_score
        best_score = torch.where(better, score, best_score)
        best[better], best_margin[better] = gen.detach()[better], margin.detach()[better]
        if step == steps - 1:
            break
        active = (~done).float()
        loss = margin.sum() + (lam * dist * active).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        lam = (lam + lam_lr / 100 * dist.detach() * active).clamp_min(0.0)  # madvae's per-row LAM step
    return best, best_margin
