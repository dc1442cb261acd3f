"""The architecture and loss-variant registries. Torch-free, so that the CLI's choices, the config schema's test
and the workflow's wildcard constraints read the names from here without importing a model.

The other registries: attacks (madvae.attacks: ATTACKS, with its STORED_ATTACKS and ADAPTIVE_ATTACKS views, and
OVERPOWERED_PRESETS), evaluation modes (madvae.evaluate.MODES), data sets (madvae.data.SOURCES).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Architecture:
    kind: str  # "classifier" or "generator"
    builder: str  # the class or function in madvae.models that builds it
    source: str  # where the paper defines it
    substitute: bool = False  # one of Table 6's black-box substitutes


ARCHITECTURES = {
    "magnet": Architecture("classifier", "MagNetClassifier", "Table 5"),
    **{name: Architecture("classifier", f"substitute_{name.lower()}", "Table 6", substitute=True) for name in "ABCDE"},
    "defense-vae": Architecture("generator", "DefenseVAE", "Defense-VAE's network (paper section 2.1)"),
}
CLASSIFIERS = tuple(name for name, arch in ARCHITECTURES.items() if arch.kind == "classifier")
SUBSTITUTES = tuple(name for name, arch in ARCHITECTURES.items() if arch.substitute)


@dataclass(frozen=True)
class LossVariant:
    epochs: int  # the paper's training length (section 3.1)
    weights: tuple  # the loss weights (madvae train options) it reads
    uses_classifier: bool = False  # a frozen classifier's cross-entropy on the output
    uses_centres: bool = False  # learned class centres in latent space (proximity and distance terms)


LOSS_VARIANTS = {
    "vanilla": LossVariant(epochs=5, weights=("beta",)),
    "classification": LossVariant(epochs=10, weights=("beta", "gamma"), uses_classifier=True),
    "proximity-distance": LossVariant(epochs=5, weights=("alpha", "beta", "sigma"), uses_centres=True),
    "combined": LossVariant(epochs=10, weights=("alpha", "beta", "gamma", "sigma"), uses_classifier=True,
                            uses_centres=True),
    # clean -> clean: the purifier without adversarial training pairs
    "identity": LossVariant(epochs=10, weights=("beta",)),
}
# the training options a sweep may vary (madvae.selection, the workflow's sweeps), A-Z
SWEEP_OPTIONS = ("alpha", "batch_size", "beta", "epochs", "gamma", "lr", "sigma")
LOSS_WEIGHTS = ("alpha", "beta", "gamma", "sigma")
VARIANTS = tuple(LOSS_VARIANTS)
USES_CLASSIFIER = tuple(name for name, variant in LOSS_VARIANTS.items() if variant.uses_classifier)
USES_CENTRES = tuple(name for name, variant in LOSS_VARIANTS.items() if variant.uses_centres)
DEFAULT_EPOCHS = {name: variant.epochs for name, variant in LOSS_VARIANTS.items()}

# option values the CLI offers and the library checks (torch-free here, so the CLI's choices read them)
PRECISIONS = ("fp32", "bf16")  # madvae train --precision (madvae.train)
EMBED_SPACES = ("input", "latent", "output", "overpowered-latent", "overpowered-output")  # madvae.embed
EMBED_COLOURS = ("true", "predicted")
SET_FIELDS = ("x_adv", "x_clean")


# each dataset's class names, by label (stored in every set as `class_names`, so that a reader without madvae can
# name a label): MNIST's digits, Fashion-MNIST's ten items as its authors list them
DIGITS = tuple(str(k) for k in range(10))
CLASS_NAMES = {"mnist-5k": DIGITS, "mnist": DIGITS,
               "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                                 "Bag", "Ankle boot")}
