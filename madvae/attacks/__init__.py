"""The attack registries and the one parameter resolver.

ATTACKS           the defense-unaware attacks that `madvae gen` stores in sets (madvae.attacks.whitebox):
                  ``fn(model, x, y, **params) -> x_adv``, named presets (the paper's training grid and test
                  settings) and a CPU-sized quick cut.
ADAPTIVE_ATTACKS  the attacks through the defense (madvae.attacks.adaptive):
                  ``fn(classifier, vae, x, y, **params) -> x_adv``, defaults and a quick cut.
Both resolve ``--param name=value`` overrides through resolve_params / resolve_adaptive_params, which check every
value against PARAMETERS. Nothing here imports torch: the CLI's choices and the workflow read these names."""
from __future__ import annotations

from dataclasses import dataclass, field

from madvae.errors import MadvaeError


@dataclass(frozen=True)
class AttackSpec:
    name: str
    function_name: str  # in madvae.attacks.whitebox (imported lazily: advertorch is slow to import)
    presets: dict
    quick: dict = field(default_factory=dict)  # CPU-sized overrides, announced when used
    bounded_by_eps: bool = False  # L-inf distance <= eps by construction
    label: str = ""  # its row in the tables

    def function(self):
        from madvae.attacks import whitebox

        return getattr(whitebox, self.function_name)


@dataclass(frozen=True)
class AdaptiveSpec:
    name: str
    function_name: str  # in madvae.attacks.adaptive
    defaults: dict
    quick: dict  # CPU-sized overrides (see ADAPTIVE_ATTACKS)
    label: str = ""  # its row in the tables

    def function(self):
        from madvae.attacks import adaptive

        return getattr(adaptive, self.function_name)


def _grid(key, values, base):
    """Presets train-0..2 (the paper's three training settings) from one varying parameter."""
    return {f"train-{i}": {**base, key: value} for i, value in enumerate(values)}


_CW_BASE = {"max_iterations": 1500, "binary_search_steps": 9, "learning_rate": 0.01, "initial_const": 1e-3,
            "abort_early": True}
_MIFGSM = {"eps": 0.3, "nb_iter": 40, "eps_iter": 0.01, "decay": 1.0}
_PGD = {"eps": 0.3, "nb_iter": 40, "eps_iter": 0.01, "rand_init": True}

ATTACKS = {
    "fgsm": AttackSpec("fgsm", "fgsm", {"test": {"eps": 0.3}, **_grid("eps", [0.25, 0.30, 0.35], {})},
                       bounded_by_eps=True, label="FGSM"),
    "rfgsm": AttackSpec("rfgsm", "rfgsm",
                        {"test": {"eps": 0.3, "alpha": 0.05, "noise": "gaussian"},
                         **_grid("eps", [0.25, 0.30, 0.35], {"alpha": 0.05, "noise": "gaussian"})},
                        label="Rand-FGSM"),
    "cw": AttackSpec("cw", "cw", {"test": {**_CW_BASE, "confidence": 10.0},
                                  **_grid("confidence", [5.0, 10.0, 15.0], _CW_BASE)},
                     # CPU-sized: one binary-search step of 100 iterations with a fixed const and a larger step.
                     # (Defense-VAE's own cut, lr 0.01 and const 100, left 96% of mnist-5k digits unchanged.)
                     quick={"max_iterations": 100, "binary_search_steps": 1, "initial_const": 3.0,
                            "learning_rate": 0.1}, label="CW"),
    "mifgsm": AttackSpec("mifgsm", "mifgsm", {"test": _MIFGSM}, bounded_by_eps=True, label="MI-FGSM"),
    "pgd": AttackSpec("pgd", "pgd", {"test": _PGD}, bounded_by_eps=True, label="PGD"),
    "single-pixel": AttackSpec("single-pixel", "single_pixel", {"test": {"max_pixels": 100}}, label="Single Pixel"),
}
# the original code validated on setting 0 of the training grid
for _spec in ATTACKS.values():
    _spec.presets.setdefault("val", _spec.presets.get("train-0", _spec.presets["test"]))

# name -> (type, check, description of the valid range)
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
}


# quick: about a minute of one CPU core per 1,000 mnist-5k images through a DefenseVAE and MagNet, where one
# gradient step through both costs about 8 CPU-seconds per 1,000 images (BPDA less: no backward pass through the
# VAE; an EOT draw one more decoder pass). Measured with the evaluation included: pgd-e2e 50 s, bpda 58 s, eot
# (samples=1) 61 s of CPU time; the defaults cost about 16x (pgd-e2e), 4x (bpda) and 30x (eot) that. Fewer,
# larger steps: nb_iter * eps_iter still covers more than eps.
_ADAPTIVE_PGD = {"eps": 0.3, "nb_iter": 40, "eps_iter": 0.01}  # the PGD test preset of ATTACKS
ADAPTIVE_ATTACKS = {
    "pgd-e2e": AdaptiveSpec("pgd-e2e", "pgd_e2e", {**_ADAPTIVE_PGD, "restarts": 2},
                            {"nb_iter": 5, "eps_iter": 0.1, "restarts": 1}, label="PGD end-to-end"),
    "bpda": AdaptiveSpec("bpda", "bpda", {**_ADAPTIVE_PGD, "restarts": 1}, {"nb_iter": 10, "eps_iter": 0.05},
                         label="BPDA"),
    "eot": AdaptiveSpec("eot", "eot", {**_ADAPTIVE_PGD, "restarts": 1, "eot_samples": 8},
                        {"nb_iter": 4, "eps_iter": 0.1, "eot_samples": 2}, label="EOT"),
}
# eps 0 is allowed here: the start of an accuracy-versus-eps curve
ADAPTIVE_PARAMETERS = {**PARAMETERS, "eps": (float, lambda v: 0 <= v <= 1, "0 <= eps <= 1"),
                       "restarts": (int, lambda v: v >= 1, ">= 1"), "eot_samples": (int, lambda v: v >= 1, ">= 1")}


# The Overpowered Attack (madvae.attacks.overpowered, paper section 3.3): n images, one run per robustness norm.
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


def _lookup(registry: dict, name: str, what: str):
    if name not in registry:
        raise MadvaeError(f"unknown {what} {name!r}", hint=f"choose one of {', '.join(registry)}")
    return registry[name]


def get_attack(name: str) -> AttackSpec:
    return _lookup(ATTACKS, name, "attack")


def get_adaptive_attack(name: str) -> AdaptiveSpec:
    return _lookup(ADAPTIVE_ATTACKS, name, "adaptive attack")


def _convert(name: str, raw, kind):
    if isinstance(raw, kind) and not (kind is int and isinstance(raw, bool)):
        return raw
    text = str(raw).strip()
    try:
        if kind is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        return kind(float(text)) if kind is int and float(text).is_integer() else kind(text)
    except ValueError:
        raise MadvaeError(f"parameter {name}={raw!r} is not a valid {kind.__name__}") from None


def checked_params(what: str, params: dict, overrides=None, parameters=PARAMETERS) -> dict:
    """``params`` with the user's overrides ("name=value" strings, (name, value) pairs or a dict) applied, each
    value converted to its declared type and checked against ``parameters``; ``what`` names the attack in errors."""
    params = dict(params)
    for item in overrides.items() if isinstance(overrides, dict) else overrides or []:
        if isinstance(item, str):
            if "=" not in item:
                raise MadvaeError(f"--param {item!r} is not of the form name=value")
            item = [part.strip() for part in item.split("=", 1)]
        name, raw = item
        if name not in params:
            raise MadvaeError(f"{what} has no parameter {name!r}", hint=f"its parameters are {', '.join(sorted(params))}")
        params[name] = raw
    for name, value in params.items():
        kind, check, allowed = parameters[name]
        value = _convert(name, value, kind)
        if kind is float and value != value:
            raise MadvaeError(f"parameter {name} is NaN, out of range ({allowed})")
        if not check(value):
            raise MadvaeError(f"parameter {name}={value} is out of range ({allowed})")
        params[name] = value
    return params


def resolve_params(attack: str, preset: str = "test", overrides=None, quick: bool = False) -> dict:
    """Preset values, then quick overrides, then the user's overrides, each checked."""
    spec = get_attack(attack)
    if preset not in spec.presets:
        raise MadvaeError(f"attack {attack!r} has no preset {preset!r}",
                          hint=f"choose one of {', '.join(spec.presets)}")
    params = checked_params(f"attack {attack!r}", {**spec.presets[preset], **(spec.quick if quick else {})},
                            overrides)
    if attack == "rfgsm" and params["alpha"] >= params["eps"]:
        raise MadvaeError(f"rfgsm needs alpha < eps (got alpha={params['alpha']}, eps={params['eps']})")
    return params


def resolve_adaptive_params(attack: str, overrides=None, quick: bool = False) -> dict:
    """Defaults, then the quick cut, then the user's overrides, each checked."""
    spec = get_adaptive_attack(attack)
    return checked_params(f"adaptive attack {attack!r}", {**spec.defaults, **(spec.quick if quick else {})},
                          overrides, ADAPTIVE_PARAMETERS)


def run_attack(attack: str, model, x, y, params: dict):
    """Craft adversarial examples for the batch ``x`` (left untouched) with true labels ``y``."""
    return get_attack(attack).function()(model, x, y, **params).detach()


def run_adaptive(attack: str, classifier, vae, x, y, params: dict, **extra):
    """Craft adversarial examples for the batch ``x`` (left untouched) against classifier(defense(x))."""
    return get_adaptive_attack(attack).function()(classifier, vae, x, y, **params, **extra).detach()
