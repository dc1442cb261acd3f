"""Adaptive attacks: L-inf PGD against the whole defense, classifier(VAE(x)), not the classifier alone.

A purification defense can look robust only because the attack ignores it (Athalye, Carlini and Wagner 2018,
"Obfuscated Gradients Give a False Sense of Security"). Three attacks that know the defense:

pgd-e2e  PGD on the cross-entropy of classifier(VAE(x)), the VAE decoding the posterior mean: the test-time
         defense itself, which is deterministic and differentiable.
bpda     Backward Pass Differentiable Approximation: the forward pass goes through the real VAE, the backward pass
         treats the VAE as the identity, so the step follows the classifier's gradient at VAE(x).
eot      Expectation over Transformation against the stochastic defense (``Target(classifier, vae, samples=K)``: the
         average of K decodings of sampled latents z = mean + noise * std): each step follows the gradient
         averaged over ``eot_samples`` draws of that defense.

Each takes madvae.attacks' one signature, ``fn(target, x, y, **params) -> x_adv`` (``target``: a
madvae.defense.Target); with no VAE in the target each one is plain PGD on the classifier. Our own PGD on plain
tensors (advertorch cannot differentiate through a sampled defense).
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from madvae.defense import frozen, mean_decoding, sampled_decoding
from madvae.errors import MadvaeError


def _cross_entropy(classifier, images, y):
    """Per-image loss and misclassification (1.0 when the pipeline is fooled)."""
    logits = classifier(images)
    return F.cross_entropy(logits, y, reduction="none"), (logits.argmax(1) != y).float()


def _through(classifier, purify, x, y, with_grad: bool):
    """(gradient of the summed loss w.r.t. x or None, per-image loss, per-image fooled) for classifier(purify(x))."""
    x = x.detach().requires_grad_(with_grad)
    with torch.set_grad_enabled(with_grad):
        loss, wrong = _cross_entropy(classifier, purify(x), y)
    grad = torch.autograd.grad(loss.sum(), x)[0] if with_grad else None
    return grad, loss.detach(), wrong


def e2e_gradient(classifier, vae, x, y, with_grad: bool = True):
    return _through(classifier, functools.partial(mean_decoding, vae), x, y, with_grad)


def bpda_gradient(classifier, vae, x, y, with_grad: bool = True):
    def straight_through(v):
        with torch.no_grad():  # no graph through the VAE: its backward pass is replaced by the identity
            purified = mean_decoding(vae, v)
        return v + (purified - v).detach()  # value: VAE(v); derivative w.r.t. v: the identity

    return _through(classifier, straight_through, x, y, with_grad)


def eot_gradient(classifier, vae, x, y, *, eot_samples: int, samples: int = 1, with_grad: bool = True):
    """Loss, fooled fraction and gradient averaged over ``eot_samples`` draws of the stochastic defense.

    The encoder runs once; each draw backpropagates only to the latent mean and log-variance, and the encoder
    is backpropagated once with their averaged gradients. That is the gradient of the mean loss over all
    draws, without holding every draw's decoder graph in memory at once."""
    if vae is None:  # nothing random left: plain PGD on the classifier
        return _through(classifier, lambda v: v, x, y, with_grad)
    x = x.detach().requires_grad_(with_grad)
    with torch.set_grad_enabled(with_grad):
        encoded = vae.encode(x)
    latent = [part.detach().requires_grad_(with_grad) for part in encoded]
    latent_grads = [torch.zeros_like(part) for part in latent]
    loss_sum = wrong_sum = 0.0
    for _ in range(eot_samples):
        with torch.set_grad_enabled(with_grad):
            loss, wrong = _cross_entropy(classifier, sampled_decoding(vae, *latent, samples), y)
        if with_grad:
            for total, part in zip(latent_grads, torch.autograd.grad(loss.sum(), latent)):
                total += part / eot_samples
        loss_sum, wrong_sum = loss_sum + loss.detach(), wrong_sum + wrong
    grad = torch.autograd.grad(encoded, x, latent_grads)[0] if with_grad else None
    return grad, loss_sum / eot_samples, wrong_sum / eot_samples


def _pgd(gradient, x, y, *, eps, nb_iter, eps_iter, restarts, on_step=None):
    """L-inf PGD from a random start in the eps ball, ``restarts`` times. ``gradient(x_adv, y, with_grad)``
    gives (grad, loss, fooled) per image. Returns per image the best point seen over every iterate of every
    restart: one that fools the pipeline (for a stochastic one: on the largest fraction of draws), else the one
    with the highest loss. Every iterate stays within [0, 1] and the eps ball around x."""
    x = x.detach()
    low, high = (x - eps).clamp(min=0.0), (x + eps).clamp(max=1.0)
    best = x.clone()
    best_wrong = torch.full((len(x),), -1.0, device=x.device)
    best_loss = torch.full((len(x),), -float("inf"), device=x.device)
    for _ in range(restarts):
        x_adv = torch.min(torch.max(x + torch.empty_like(x).uniform_(-eps, eps), low), high)
        for step in range(nb_iter + 1):
            last = step == nb_iter  # the final iterate is only scored: no gradient needed
            grad, loss, wrong = gradient(x_adv, y, with_grad=not last)
            better = (wrong > best_wrong) | ((wrong == best_wrong) & (loss > best_loss))
            best[better], best_wrong[better], best_loss[better] = x_adv[better], wrong[better], loss[better]
            if last:
                break
            x_adv = torch.min(torch.max(x_adv + eps_iter * grad.sign(), low), high)
            if on_step is not None:
                on_step()
    return best


def pgd_e2e(target, x, y, *, eps, nb_iter, eps_iter, restarts, on_step=None):
    with frozen(target):
        return _pgd(functools.partial(e2e_gradient, target.classifier, target.vae), x, y, eps=eps, nb_iter=nb_iter,
                    eps_iter=eps_iter, restarts=restarts, on_step=on_step)


def bpda(target, x, y, *, eps, nb_iter, eps_iter, restarts, on_step=None):
    with frozen(target):
        return _pgd(functools.partial(bpda_gradient, target.classifier, target.vae), x, y, eps=eps, nb_iter=nb_iter,
                    eps_iter=eps_iter, restarts=restarts, on_step=on_step)


def eot(target, x, y, *, eps, nb_iter, eps_iter, restarts, eot_samples, on_step=None):
    """Attacks the stochastic defense ``target`` (its ``samples`` decodings averaged per prediction, at least 1
    when it has a VAE)."""
    if target.vae is not None and target.samples < 1:
        raise MadvaeError("eot attacks the stochastic defense: samples must be at least 1",
                          hint="samples=0 is the deterministic posterior-mean defense; attack it with pgd-e2e")
    gradient = functools.partial(eot_gradient, target.classifier, target.vae, eot_samples=eot_samples,
                                 samples=target.samples)
    with frozen(target):
        return _pgd(gradient, x, y, eps=eps, nb_iter=nb_iter, eps_iter=eps_iter, restarts=restarts,
                    on_step=on_step)
