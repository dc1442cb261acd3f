"""White-box attacks through advertorch 0.2.3 -- the only module of madvae that imports advertorch.

advertorch 0.2.3 (its last release) imports ``zero_gradients`` from ``torch.autograd.gradcheck``; torch removed
that helper, so the import fails. We put a same-behaving function back before importing advertorch.

Each attack takes madvae.attacks' one signature, ``fn(target, x, y, **params) -> x_adv``: ``target`` (a
madvae.defense.Target, a torch module) is the model advertorch differentiates; for the stored sets it is the
classifier alone.
"""
from __future__ import annotations

import importlib

import torch

# importlib, not `import ... as`: torch.autograd.gradcheck the attribute is a function shadowing the module
_gradcheck = importlib.import_module("torch.autograd.gradcheck")


def zero_gradients(x) -> None:
    """torch's old helper: zero the .grad of a tensor, or of every tensor in an iterable, in place."""
    if isinstance(x, torch.Tensor):
        if x.grad is not None:
            x.grad.detach_()
            x.grad.zero_()
    elif hasattr(x, "__iter__"):
        for element in x:
            zero_gradients(element)


if not hasattr(_gradcheck, "zero_gradients"):
    _gradcheck.zero_gradients = zero_gradients

import advertorch  # noqa: E402  (must follow the patch above)
from advertorch.attacks import (  # noqa: E402
    CarliniWagnerL2Attack, GradientSignAttack, LinfMomentumIterativeAttack, LinfPGDAttack, SinglePixelAttack)

ADVERTORCH_VERSION = getattr(advertorch, "__version__", "0.2.3")


def fgsm(target, x, y, *, eps):
    return GradientSignAttack(target, eps=eps, clip_min=0.0, clip_max=1.0).perturb(x, y)


def rfgsm(target, x, y, *, eps, alpha, noise):
    """Tramer et al.'s R-FGSM: a random step of size alpha, then FGSM with eps - alpha.

    noise='gaussian' is what the MAD-VAE code did (alpha * N(0,1), so the L-inf distance can exceed eps);
    noise='sign' is Defense-VAE's and the paper's formula (alpha * sign(N(0,1)), bounded by eps)."""
    draw = torch.randn_like(x)
    step = alpha * (draw.sign() if noise == "sign" else draw)
    start = (x + step).clamp(0.0, 1.0)
    return GradientSignAttack(target, eps=eps - alpha, clip_min=0.0, clip_max=1.0).perturb(start, y)


def cw(target, x, y, *, confidence, max_iterations, binary_search_steps, learning_rate, initial_const, abort_early):
    attack = CarliniWagnerL2Attack(
        target, num_classes=10, confidence=confidence, max_iterations=max_iterations,
        binary_search_steps=binary_search_steps, learning_rate=learning_rate, initial_const=initial_const,
        abort_early=abort_early, clip_min=0.0, clip_max=1.0)
    return attack.perturb(x, y)


def mifgsm(target, x, y, *, eps, nb_iter, eps_iter, decay):
    return LinfMomentumIterativeAttack(target, eps=eps, nb_iter=nb_iter, eps_iter=eps_iter, decay_factor=decay,
                                       clip_min=0.0, clip_max=1.0).perturb(x, y)


def pgd(target, x, y, *, eps, nb_iter, eps_iter, rand_init):
    return LinfPGDAttack(target, eps=eps, nb_iter=nb_iter, eps_iter=eps_iter, rand_init=rand_init,
                         clip_min=0.0, clip_max=1.0).perturb(x, y)


def single_pixel(target, x, y, *, max_pixels, images_per_step: int = 4096):
    """advertorch's SinglePixelAttack, batched: the same random pixel order per image (one torch.randperm per
    image, drawn in image order as advertorch does), the same candidate order (pixel k set to 0, then to 1) and
    the same answer (the first candidate that changes the label, else the image itself). advertorch runs one
    forward pass of a single image per candidate; this runs every unfinished image's next candidates as one
    batch, which is many times faster on a CPU. tests/test_attacks.py checks both give identical images."""
    n, channels, height, width = x.shape
    order = torch.stack([torch.randperm(height * width)[:max_pixels] for _ in range(n)]).to(x.device)
    result = x.detach().clone()
    pending = torch.arange(n, device=x.device)
    total = 2 * order.shape[1]  # candidate c: pixel order[:, c // 2] set to (0, 1)[c % 2]
    first = 0
    while first < total and len(pending):
        # bounded trial batches: big enough to amortise the forward pass, small enough to stay in memory/cache
        per_image = max(1, images_per_step // len(pending))
        steps = torch.arange(first, min(first + per_image, total), device=x.device)
        first += len(steps)
        trial = x[pending].unsqueeze(1).repeat(1, len(steps), 1, 1, 1)  # (pending, steps, C, H, W)
        pixels = order[pending][:, steps // 2]
        # advertorch indexes adv[:, p % W, p // W]: row from the remainder, column from the quotient
        rows, cols = pixels % width, pixels // width
        values = (steps % 2).to(x.dtype).expand_as(pixels)
        flat = trial.view(len(pending), len(steps), channels, height * width)
        index = (rows * width + cols).unsqueeze(2).expand(-1, -1, channels).unsqueeze(-1)
        flat.scatter_(3, index, values.unsqueeze(2).expand(-1, -1, channels).unsqueeze(-1))
        labels = _predict_in_chunks(target, trial.view(-1, channels, height, width)).view(len(pending), len(steps))
        fooled = labels != y[pending].unsqueeze(1)
        found = fooled.any(1)
        if found.any():
            winner = fooled.float().argmax(1)  # first fooling candidate in advertorch's order
            hit = found.nonzero(as_tuple=True)[0]
            result[pending[hit]] = trial[hit, winner[hit]]
            pending = pending[~found]
    return result


@torch.no_grad()
def _predict_in_chunks(model, x, chunk: int = 256):
    """Labels for a large batch, 256 images at a time: on a CPU that size keeps the convolutions in cache."""
    return torch.cat([model(x[start:start + chunk]).argmax(1) for start in range(0, len(x), chunk)])
