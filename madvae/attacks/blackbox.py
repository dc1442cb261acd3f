"""Papernot et al. (2017) substitute training for a real black-box attack: tensors in, tensors out.

The attacker holds a few unlabelled images and a label oracle (the target pipeline). It trains a substitute on the
oracle's labels, growing its set by Jacobian-based dataset augmentation, then attacks the substitute (white-box)
and hopes the examples transfer. The loop follows Defense-GAN's blackbox.py (cleverhans' MNIST black-box
tutorial), the setting the MAD-VAE paper points to:
- `rounds` training rounds; the set is augmented (doubled) after every round but the last, so 6 rounds train on
  150, 300, ..., 4,800 images and the final set holds 150 * 2**(rounds - 1) images;
- the substitute keeps its weights from round to round; each round gets a fresh Adam (lr 1e-3), as cleverhans'
  model_train built a new optimizer per call; batch 128 is cleverhans' tutorial default (Defense-GAN's config
  may have used 50);
- each image is sent to the oracle once: the seed set first, then only the new points of each augmentation;
- lambda keeps one sign (Defense-GAN passed lmbda straight through); `flip_every=tau` gives Papernot's periodic
  step size lambda * (-1)**floor(round / tau) (cleverhans' own tutorial flipped once, after round 3).
Two deliberate differences: Defense-GAN labelled its 150 seed images with the TRUE labels, here the oracle
labels them (the brief's attacker has no labels; Papernot's paper does the same); and the augmented points are
clipped to [0, 1] (cleverhans did not clip) so they stay valid images for the VAE.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm import tqdm

from madvae.errors import MadvaeError
from madvae.models import build, place


def jacobian_augment(substitute, x, labels, lam: float, *, chunk: int = 512):
    """x + lam * sign(d softmax(substitute(x))[label] / dx), clipped to [0, 1].

    The derivative is of the softmax probability, as Defense-GAN's substitutes ended in a softmax and cleverhans'
    jacobian_graph differentiated that output. The substitute runs in eval mode (no dropout), as Keras'
    learning phase 0 did; its mode is restored afterwards."""
    was_training = substitute.training
    substitute.eval()
    labels = labels.to(x.device).long().view(-1, 1)
    steps = []
    try:
        for start in range(0, len(x), chunk):  # bounded memory for large sets
            part = x[start:start + chunk].detach().clone().requires_grad_(True)
            with torch.enable_grad():
                probs = F.softmax(substitute(part), dim=1)
                # rows are independent in eval mode, so the gradient of the sum is each row's own gradient
                (grad,) = torch.autograd.grad(probs.gather(1, labels[start:start + chunk]).sum(), part)
            steps.append(grad.sign())
    finally:
        substitute.train(was_training)
    step = torch.cat(steps) if steps else torch.zeros_like(x)
    return (x.detach() + lam * step).clamp(0.0, 1.0)


def _fit(model, x, y, *, epochs: int, batch_size: int, lr: float, generator: torch.Generator):
    """`epochs` passes of shuffled minibatches; returns (mean loss, accuracy on the oracle labels) of the last."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator).to(x.device)
        loss_sum, correct = 0.0, 0
        for start in range(0, len(x), batch_size):
            index = order[start:start + batch_size]
            logits = model(x[index])
            loss = F.cross_entropy(logits, y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(index)
            correct += (logits.argmax(1) == y[index]).sum().item()
    return loss_sum / len(x), correct / len(x)


def _ask(oracle, x, device):
    labels = torch.as_tensor(oracle(x)).to(device).long().view(-1)
    if len(labels) != len(x):
        raise ValueError(f"the oracle returned {len(labels)} labels for {len(x)} images")
    return labels


def train_substitute(arch: str, oracle, x_seed, *, rounds: int = 6, lam: float = 0.1, epochs: int = 10,
                     batch_size: int = 128, lr: float = 1e-3, flip_every: int | None = None, seed: int = 0,
                     progress: bool = False):
    """Train a substitute of architecture `arch` (a madvae classifier name) against `oracle(x) -> labels`.

    `x_seed`: the attacker's unlabelled images (N x 1 x 28 x 28 in [0, 1]); the substitute lives on its device.
    Seeds torch's global generator (weights, dropout) with `seed`. Returns (model in eval mode, info) where
    info["queries"] counts every image sent to the oracle and info["train_size"] is the final set's size."""
    if rounds < 1 or epochs < 1 or batch_size < 1 or not lr > 0 or len(x_seed) < 1:
        raise MadvaeError("substitute training needs rounds, epochs, batch size and seed images >= 1 and lr > 0")
    if not lam > 0 or (flip_every is not None and flip_every < 1):
        raise MadvaeError("substitute training needs lambda > 0 and flip_every >= 1 (or none)")
    device = x_seed.device
    torch.manual_seed(seed)
    model = place(build("classifier", arch), device)
    generator = torch.Generator().manual_seed(seed)
    x_train = x_seed.detach().float()
    y_train = _ask(oracle, x_train, device)
    queries = len(x_train)
    history = []
    bar = tqdm(total=rounds, desc=f"substitute {arch}", unit="round", disable=not progress)
    for round_index in range(rounds):
        loss, accuracy = _fit(model, x_train, y_train, epochs=epochs, batch_size=batch_size, lr=lr,
                              generator=generator)
        entry = {"round": round_index + 1, "train_size": len(x_train), "loss": loss, "oracle_agreement": accuracy}
        if round_index < rounds - 1:  # no augmentation after the last round: its points would go unused
            step = lam * (-1) ** (round_index // flip_every) if flip_every else lam
            x_new = jacobian_augment(model, x_train, y_train, step)
            y_new = _ask(oracle, x_new, device)
            queries += len(x_new)
            x_train, y_train = torch.cat([x_train, x_new]), torch.cat([y_train, y_new])
            entry["step"] = step
        history.append(entry)
        bar.update(1)
        bar.set_postfix(size=len(x_train), agree=f"{accuracy:.3f}")
    bar.close()
    info = {"queries": queries, "train_size": len(x_train), "seed_size": len(x_seed), "rounds": rounds, "lam": lam,
            "flip_every": flip_every, "epochs": epochs, "batch_size": batch_size, "lr": lr, "history": history}
    return model.eval(), info
