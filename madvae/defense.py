"""The defense under evaluation, defined once: a classifier, optionally behind a VAE purifier that decodes the
posterior mean (the paper's test-time defense) or averages K decodings of sampled latents (a stochastic one).
Every attack and evaluation, the figures and bench/ build it from here."""
from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass

import numpy as np
import torch

from madvae.checkpoint import load_checkpoint
from madvae.errors import MadvaeError
from madvae.results import vae_training
from madvae.util import resolve_device, seed_everything, sha256_file, to_device


def mean_decoding(vae, x):
    """The paper's test-time defense: decode the posterior mean (the identity when there is no VAE)."""
    return x if vae is None else vae.decode(vae.encode(x)[0])


def sampled_decoding(vae, mean, logvar, samples: int):
    """The stochastic defense from the encoder's output: the average of ``samples`` decodings of latents
    mean + noise * std, drawn one decoding after another."""
    std = torch.exp(0.5 * logvar)
    return torch.stack([vae.decode(mean + torch.randn_like(std) * std) for _ in range(samples)]).mean(0)


@contextlib.contextmanager
def frozen(*models):
    """Attack the models in eval mode with no parameter gradients (nothing accumulates in .grad); give every
    module its own train/eval mode and every parameter its requires_grad flag back afterwards."""
    models = [model for model in models if model is not None]
    modes = [(module, module.training) for model in models for module in model.modules()]
    flags = [(parameter, parameter.requires_grad) for model in models for parameter in model.parameters()]
    for model in models:
        model.eval()
    for parameter, _ in flags:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for module, training in modes:
            module.train(training)
        for parameter, flag in flags:
            parameter.requires_grad_(flag)


class Target(torch.nn.Module):
    """What every attack gets (madvae.attacks): ``classifier(purify(x))``, where purify is ``vae``'s
    posterior-mean decoding (samples=0) or the average of ``samples`` sampled decodings, and the identity without
    a VAE. Defense-unaware attacks call it with no VAE; adaptive ones read its parts."""

    def __init__(self, classifier, vae=None, samples: int = 0):
        super().__init__()
        self.classifier, self.vae, self.samples = classifier, vae, samples

    def purify(self, x):
        if self.vae is None or self.samples <= 0:
            return mean_decoding(self.vae, x)
        return sampled_decoding(self.vae, *self.vae.encode(x), self.samples)

    def forward(self, x):
        return self.classifier(self.purify(x))


def make_purifier(vae, samples: int = 0):
    """x -> VAE output, the VAE in eval mode. samples=0 decodes the posterior mean; samples=K averages K
    decodings of sampled latents."""
    vae.eval()
    if samples <= 0:
        return functools.partial(mean_decoding, vae)
    return lambda x: sampled_decoding(vae, *vae.encode(x), samples)


@torch.inference_mode()
def predict_labels(classifier, batches, device, field: str = "x_clean", purifier=None) -> np.ndarray:
    """Predicted labels for ``batch[field]`` over an iterable of batches (dicts of numpy arrays)."""
    classifier.eval()
    predictions = []
    for batch in batches:
        x = to_device(batch[field], device)
        if purifier is not None:
            x = purifier(x)
        predictions.append(classifier(x).argmax(1).cpu().numpy())
    return np.concatenate(predictions) if predictions else np.zeros(0, dtype=np.int64)


def load_classifier(classifier_path, dev, *, frozen: bool = False):
    """(model in eval mode, checkpoint) for a classifier checkpoint; anything else is a clear error. ``frozen``:
    no parameter needs a gradient (an attack wants the input's only, a VAE's training the VAE's only)."""
    checkpoint = load_checkpoint(classifier_path, expect_kind="classifier")
    model = checkpoint.build_model(dev).eval()
    for parameter in model.parameters() if frozen else ():
        parameter.requires_grad_(False)
    return model, checkpoint


def load_defense(vae_path, dev, *, defense_name: str | None = None, samples: int = 0, evaluated_set=None):
    """(vae or None, purifier or None, defense description for the result JSON).

    ``evaluated_set``: the set about to be scored; a VAE trained on that very file is refused (its numbers would
    be training-set numbers)."""
    if vae_path is None:
        return None, None, {"name": "none"}
    vae_ckpt = load_checkpoint(vae_path, expect_kind="vae")
    if evaluated_set is not None:
        set_sha256 = sha256_file(evaluated_set)
        trained_on = [entry.get("sha256") for entry in vae_ckpt.meta.get("training_sets", [])
                      if isinstance(entry, dict)]
        if set_sha256 in trained_on:
            raise MadvaeError(f"the VAE {vae_path} was trained on this very set (its SHA-256 is among the VAE's "
                              "training sets)", evaluated_set, "evaluate on a set the purifier has not seen")
    vae = vae_ckpt.build_model(dev).eval()
    defense = {"name": defense_name or vae_ckpt.config.get("loss", vae_ckpt.arch), "checkpoint": str(vae_path),
               "sha256": sha256_file(vae_path), "samples": samples, "training": vae_training(vae_ckpt)}
    return vae, make_purifier(vae, samples), defense


@dataclass
class Loaded:
    """An evaluation's models, loaded by ``load_evaluation``: the device, the classifier and its checkpoint, the
    VAE (or None), its purifier and the defense's description for the result JSON."""
    device: torch.device
    classifier: torch.nn.Module
    classifier_checkpoint: object
    vae: torch.nn.Module | None
    purifier: object
    defense: dict
    samples: int = 0

    @property
    def target(self) -> Target:
        return Target(self.classifier, self.vae, self.samples)


def load_evaluation(classifier_path, vae_path, *, device: str, seed: int, defense_name: str | None = None,
                    samples: int = 0, evaluated_set=None, check_classifier=None) -> Loaded:
    """Pick the device, seed every generator, load the classifier (``check_classifier(checkpoint)`` may refuse
    it) and the defense: the start every evaluation shares, in this order so that its random draws match."""
    dev = resolve_device(device)
    seed_everything(seed)
    classifier, checkpoint = load_classifier(classifier_path, dev)
    if check_classifier is not None:
        check_classifier(checkpoint)
    vae, purifier, defense = load_defense(vae_path, dev, defense_name=defense_name, samples=samples,
                                          evaluated_set=evaluated_set)
    return Loaded(dev, classifier, checkpoint, vae, purifier, defense, samples)
