"""The attack registry and the one parameter resolver.

ATTACKS holds every attack, each with its kind (KINDS), its module in madvae.attacks, named presets, a CPU-sized
quick cut and its table label. Every attack has ONE call signature, ``fn(target, x, y, **params) -> x_adv``:
``target`` is a madvae.defense.Target (the classifier, optionally behind its VAE purifier), ``x`` a batch in
[0, 1] (left untouched), ``y`` its labels. An attack that knows more per image (the Overpowered Attack's
distances and margins) writes it into ``record`` when the caller passes a dict. ``run_attack`` is the one entry.

resolve_params(name, preset, overrides, quick) gives any registered settings (an attack's, or the black-box
substitute training's, SUBSTITUTE_TRAINING) with ``--param name=value`` overrides, every value checked against
PARAMETERS. Nothing here imports torch: the CLI's choices, the config schema and the workflow read these names.
Adding an attack: its function in a module of madvae/attacks and one AttackSpec entry below.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from madvae.errors import UsageError

KINDS = {
    "stored": "defense-unaware: crafted on the classifier alone, stored in sets by `madvae gen` (Table 1)",
    "adaptive": "through the defense: crafted on classifier(VAE(x)) at evaluation time",
    "latent": "in the VAE's latent space: the Overpowered Attack (Table 3)",
}


@dataclass(frozen=True)
class Settings:
    """Named presets of checked parameters, a CPU-sized quick cut, and per-setting checks that replace the
    shared ones in PARAMETERS."""
    name: str
    presets: dict
    quick: dict = field(default_factory=dict)  # CPU-sized overrides, announced when used
    checks: dict = field(default_factory=dict)


@dataclass(frozen=True)
class AttackSpec(Settings):
    kind: str = "stored"
    module: str = "whitebox"  # madvae.attacks.<module>, imported lazily (advertorch and torch are slow to import)
    function_name: str = ""
    bounded_by_eps: bool = False  # L-inf distance <= eps by construction
    label: str = ""  # its row in the tables
    # the defense it attacks (DEFENSE_DECODINGS): the posterior-mean one (samples 0), the stochastic one (K >= 1
    # sampled decodings averaged) or either (a version for each)
    decoding: str = "mean"

    def function(self):
        import importlib

        return getattr(importlib.import_module(f"madvae.attacks.{self.module}"), self.function_name)


DEFENSE_DECODINGS = ("mean", "sampled", "either")


def _grid(key, values, base):
    """Presets train-0..2 (the paper's three training settings) from one varying parameter."""
    return {f"train-{i}": {**base, key: value} for i, value in enumerate(values)}


_CW_BASE = {"max_iterations": 1500, "binary_search_steps": 9, "learning_rate": 0.01, "initial_const": 1e-3,
            "abort_early": True}
_MIFGSM = {"eps": 0.3, "nb_iter": 40, "eps_iter": 0.01, "decay": 1.0}
_PGD = {"eps": 0.3, "nb_iter": 40, "eps_iter": 0.01, "rand_init": True}
_ADAPTIVE_PGD = {"eps": 0.3, "nb_iter": 40, "eps_iter": 0.01}  # the PGD test preset
# eps 0 is allowed through the defense: the start of an accuracy-versus-eps curve
_EPS_FROM_ZERO = {"eps": (float, lambda v: 0 <= v <= 1, "0 <= eps <= 1")}

# The Overpowered Attack (paper section 3.3): n images, one run per robustness norm.
OVERPOWERED_PRESETS = {
    # What the MAD-VAE code ran (Table 3): the first 1,000 test images, one run per robustness norm.
    "paper": {"n": 1000, "restarts": 20, "steps": 1000, "noise_samples": 100, "norms": (1.0, 2.5, 3.0, 3.5)},
    # CPU-sized. A step costs the decoder's forward and backward pass per image and restart plus the
    # classifier's per image, restart and noise draw, about 1 CPU-second for 100 images x 1 restart x 4 draws;
    # 4 norms x 30 steps is about 2 CPU-minutes (a full run took 208 CPU-s). Cuts: 1 restart (the original's
    # restarts all start from the same z0 and differ only in their noise draws), 4 noise draws (8 gave the
    # same defended accuracy at 30 steps), 30 steps, the first 100 images. A weaker attack: on a 5-epoch
    # identity VAE (mnist-5k, norm 2.5) the defended accuracy was 0.47 / 0.37 / 0.29 after 15 / 30 / 60 steps,
    # so quick numbers overstate robustness (figures measured with the earlier batch-level early stop).
    "quick": {"n": 100, "restarts": 1, "steps": 30, "noise_samples": 4, "norms": (1.0, 2.5, 3.0, 3.5)},
    # A longer CPU run for full-MNIST tables (config/mnist.yaml): 100 steps and 8 draws, about 4x quick's cost
    # per image; the images are the paper's first 1,000 unless a limit takes fewer.
    "cpu": {"n": 1000, "restarts": 1, "steps": 100, "noise_samples": 8, "norms": (1.0, 2.5, 3.0, 3.5)},
}


def _stored(name, function_name, presets, label, **more):
    return AttackSpec(name, presets, kind="stored", module="whitebox", function_name=function_name, label=label,
                      **more)


def _adaptive(name, function_name, defaults, quick, label, module="adaptive", decoding="mean"):
    return AttackSpec(name, {"test": defaults}, quick, _EPS_FROM_ZERO, kind="adaptive", module=module,
                      function_name=function_name, label=label, decoding=decoding)


# adaptive quick cuts: about a minute of one CPU core per 1,000 mnist-5k images through a DefenseVAE and MagNet,
# where one gradient step through both costs about 8 CPU-seconds per 1,000 images (BPDA less: no backward pass
# through the VAE; an EOT draw one more decoder pass). Measured with the evaluation included: pgd-e2e 50 s, bpda
# 58 s, eot (samples=1) 61 s of CPU time; the defaults cost about 16x (pgd-e2e), 4x (bpda) and 30x (eot) that.
# Fewer, larger steps: nb_iter * eps_iter still covers more than eps.
ATTACKS = {spec.name: spec for spec in (
    _stored("fgsm", "fgsm", {"test": {"eps": 0.3}, **_grid("eps", [0.25, 0.30, 0.35], {})}, "FGSM",
            bounded_by_eps=True),
    _stored("rfgsm", "rfgsm", {"test": {"eps": 0.3, "alpha": 0.05, "noise": "gaussian"},
                               **_grid("eps", [0.25, 0.30, 0.35], {"alpha": 0.05, "noise": "gaussian"})},
            "Rand-FGSM"),
    # CW quick, CPU-sized: one binary-search step of 100 iterations with a fixed const and a larger step.
    # (Defense-VAE's own cut, lr 0.01 and const 100, left 96% of mnist-5k digits unchanged.)
    _stored("cw", "cw", {"test": {**_CW_BASE, "confidence": 10.0}, **_grid("confidence", [5.0, 10.0, 15.0], _CW_BASE)},
            "CW", quick={"max_iterations": 100, "binary_search_steps": 1, "initial_const": 3.0, "learning_rate": 0.1}),
    _stored("mifgsm", "mifgsm", {"test": _MIFGSM}, "MI-FGSM", bounded_by_eps=True),
    _stored("pgd", "pgd", {"test": _PGD}, "PGD", bounded_by_eps=True),
    _stored("single-pixel", "single_pixel", {"test": {"max_pixels": 100}}, "Single Pixel"),
    _adaptive("pgd-e2e", "pgd_e2e", {**_ADAPTIVE_PGD, "restarts": 2}, {"nb_iter": 5, "eps_iter": 0.1, "restarts": 1},
              "PGD end-to-end"),
    _adaptive("bpda", "bpda", {**_ADAPTIVE_PGD, "restarts": 1}, {"nb_iter": 10, "eps_iter": 0.05}, "BPDA"),
    _adaptive("eot", "eot", {**_ADAPTIVE_PGD, "restarts": 1, "eot_samples": 8},
              {"nb_iter": 4, "eps_iter": 0.1, "eot_samples": 2}, "EOT", decoding="sampled"),
    # Croce and Hein's standard version (rand against a stochastic defense) at its settings: APGD 100 steps, APGD-T
    # and FAB-T over 9 target classes (FAB 100 steps), Square 5,000 queries, EOT over 20 draws. Quick, CPU-sized:
    # a tenth of the steps, 3 target classes, 100 queries, 2 draws (a weaker attack: its accuracy is an upper bound).
    _adaptive("autoattack", "autoattack", {"eps": 0.3, "apgd_steps": 100, "target_classes": 9, "fab_steps": 100,
                                           "square_queries": 5000, "eot_iter": 20},
              {"apgd_steps": 10, "target_classes": 3, "fab_steps": 10, "square_queries": 100, "eot_iter": 2},
              "AutoAttack", module="autoattack", decoding="either"),
    # gradient-free: if it beats the gradient attacks, their gradients were masked. Quick: 200 queries.
    _adaptive("square", "square", {"eps": 0.3, "n_queries": 5000, "p_init": 0.8}, {"n_queries": 200}, "Square",
              module="autoattack"),
    # the image count n is the evaluation's (--limit), not the attack's: it stays out of the attack's presets
    AttackSpec("overpowered", {name: {k: v for k, v in preset.items() if k != "n"}
                               for name, preset in OVERPOWERED_PRESETS.items()},
               kind="latent", module="overpowered", function_name="overpowered_attack", label="Overpowered"),
)}
# the original code validated on setting 0 of the training grid
for _spec in ATTACKS.values():
    if _spec.kind == "stored":
        _spec.presets.setdefault("val", _spec.presets.get("train-0", _spec.presets["test"]))

STORED_ATTACKS = {name: spec for name, spec in ATTACKS.items() if spec.kind == "stored"}
ADAPTIVE_ATTACKS = {name: spec for name, spec in ATTACKS.items() if spec.kind == "adaptive"}

# The black-box transfer attack's substitute training (Papernot et al. 2017) and its FGSM step. Quick, CPU-sized:
# 4 rounds (final set 1,200) of 5 epochs train the substitute on 11,250 images instead of 94,500. On 2 busy CPU
# cores against MagNet + VAE, 850 images: substitute A took 795 s with the defaults and 87 s with these
# (substitute E, defaults: 82 s).
SUBSTITUTE_TRAINING = Settings("blackbox-transfer",
                               {"test": {"eps": 0.3, "holdout": 150, "rounds": 6, "lam": 0.1, "substitute_epochs": 10}},
                               quick={"rounds": 4, "substitute_epochs": 5})


def _floats(text) -> tuple:
    return tuple(float(part) for part in (text.split(",") if isinstance(text, str) else text) if part != "")


# name -> (type, check, description of the valid range); a Settings' checks replace these for its own
PARAMETERS = {
    "eps": (float, lambda v: 0 < v <= 1, "0 < eps <= 1"),
    "alpha": (float, lambda v: 0 <= v < 1, "0 <= alpha < 1"),
    "noise": (str, lambda v: v in ("gaussian", "sign"), "gaussian or sign"),
    "confidence": (float, lambda v: v >= 0, ">= 0"),
    "max_iterations": (int, lambda v: v >= 1, ">= 1"),
    "binary_search_steps": (int, lambda v: v >= 1, ">= 1"),
    "learning_rate": (float, lambda v: v > 0, "> 0"),
    "initial_const": (float, lambda v: v > 0, "> 0"),
    "abort_early": (bool, lambda v: True, "true or false"),
    "nb_iter": (int, lambda v: v >= 1, ">= 1"),
    "eps_iter": (float, lambda v: 0 < v <= 1, "0 < eps_iter <= 1"),
    "decay": (float, lambda v: v >= 0, ">= 0"),
    "rand_init": (bool, lambda v: True, "true or false"),
    "max_pixels": (int, lambda v: 1 <= v <= 784, "1..784"),
    "restarts": (int, lambda v: v >= 1, ">= 1"),
    "eot_samples": (int, lambda v: v >= 1, ">= 1"),
    "steps": (int, lambda v: v >= 1, ">= 1"),
    "noise_samples": (int, lambda v: v >= 1, ">= 1"),
    # noise beyond L2 28 (an all-white image) is meaningless for 28 x 28 images in [0, 1]
    "norms": (_floats, lambda v: len(v) > 0 and all(0 <= n <= math.sqrt(784) for n in v),
              "one or more numbers in [0, 28], comma-separated; the paper's are 1.0,2.5,3.0,3.5"),
    "holdout": (int, lambda v: v >= 1, ">= 1"),
    "rounds": (int, lambda v: v >= 1, ">= 1"),
    "lam": (float, lambda v: v > 0, "> 0"),
    "substitute_epochs": (int, lambda v: v >= 1, ">= 1"),
    "apgd_steps": (int, lambda v: v >= 1, ">= 1"),
    "fab_steps": (int, lambda v: v >= 1, ">= 1"),
    "target_classes": (int, lambda v: 1 <= v <= 9, "1..9 (of the ten classes, all but the true one)"),
    "square_queries": (int, lambda v: v >= 1, ">= 1"),
    "n_queries": (int, lambda v: v >= 1, ">= 1"),
    "eot_iter": (int, lambda v: v >= 1, ">= 1"),
    "p_init": (float, lambda v: 0 < v <= 1, "0 < p_init <= 1"),
}
_KIND_NAMES = {int: "a whole number", float: "a number", bool: "true or false", str: "a word",
               _floats: "a comma-separated list of numbers"}


def get_attack(name: str, kind: str | None = None) -> AttackSpec:
    """The registered attack ``name`` (of ``kind`` when given); anything else is a clear error."""
    registry = ATTACKS if kind is None else {n: s for n, s in ATTACKS.items() if s.kind == kind}
    if name not in registry:
        what = "attack" if kind is None else f"{kind} attack"
        raise UsageError(f"unknown {what} {name!r}", hint=f"choose one of {', '.join(registry)}")
    return registry[name]


def _convert(name: str, raw, kind):
    if kind is not _floats and isinstance(raw, kind) and not (kind is int and isinstance(raw, bool)):
        return raw
    text = raw if kind is _floats else str(raw).strip()
    try:
        if kind is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        return kind(float(text)) if kind is int and float(text).is_integer() else kind(text)
    except (TypeError, ValueError):
        raise UsageError(f"--param {name}={raw} is not {_KIND_NAMES[kind]}") from None


def checked_params(what: str, params: dict, overrides=None, checks=None) -> dict:
    """``params`` with the user's overrides ("name=value" strings, (name, value) pairs or a dict) applied, each
    value converted to its declared type and checked against PARAMETERS (``checks`` replace entries); ``what``
    names the attack in errors."""
    table = {**PARAMETERS, **(checks or {})}
    params = dict(params)
    for item in overrides.items() if isinstance(overrides, dict) else overrides or []:
        if isinstance(item, str):
            if "=" not in item:
                raise UsageError(f"--param {item!r} is not of the form name=value")
            item = [part.strip() for part in item.split("=", 1)]
        name, raw = item
        if name not in params:
            raise UsageError(f"{what} has no parameter {name!r}", hint=f"its parameters are {', '.join(sorted(params))}")
        params[name] = raw
    for name, value in params.items():
        kind, check, allowed = table[name]
        value = _convert(name, value, kind)
        if kind is float and value != value:
            raise UsageError(f"parameter {name} is NaN, out of range ({allowed})")
        if not check(value):
            raise UsageError(f"parameter {name}={value} is out of range ({allowed})")
        params[name] = list(value) if kind is _floats else value
    return params


def resolve_params(name: str | Settings, preset: str = "test", overrides=None, quick: bool = False) -> dict:
    """A preset's values, then the quick cut, then the user's overrides, each checked. ``name``: a registered
    attack or a Settings (SUBSTITUTE_TRAINING)."""
    spec = name if isinstance(name, Settings) else get_attack(name)
    if preset not in spec.presets:
        raise UsageError(f"{spec.name} has no preset {preset!r}", hint=f"choose one of {', '.join(spec.presets)}")
    what = f"attack {spec.name!r}" if isinstance(spec, AttackSpec) else spec.name
    params = checked_params(what, {**spec.presets[preset], **(spec.quick if quick else {})}, overrides, spec.checks)
    if spec.name == "rfgsm" and params["alpha"] >= params["eps"]:
        raise UsageError(f"rfgsm needs alpha < eps (got alpha={params['alpha']}, eps={params['eps']})")
    return params


def run_attack(attack: str, target, x, y, params: dict, **extra):
    """Craft adversarial examples for the batch ``x`` (left untouched) with labels ``y`` against ``target`` (a
    madvae.defense.Target); ``extra``: on_step, record and the like, where the attack takes them."""
    return get_attack(attack).function()(target, x, y, **params, **extra).detach()
