"""Evaluations: each ``madvae attack --mode`` is one entry of MODES, run through ``evaluate(mode, request)``.

stored             madvae.evaluate.stored       a set's stored adversarial images, defense-unaware (Table 1)
pgd-e2e/bpda/eot   madvae.evaluate.adaptive     the adaptive attacks through the defense (kind "adaptive");
 /autoattack/square madvae.evaluate.curve       with --eps-grid, the accuracy at each eps of a grid
blackbox-paper     madvae.evaluate.blackbox     FGSM on a substitute, classified by it (Table 2, original code)
blackbox-transfer  madvae.evaluate.blackbox     FGSM from a substitute trained on the pipeline's labels
overpowered        madvae.evaluate.overpowered  the latent-space attack on the VAE (Table 3)
``--param`` overrides reach the one resolver, madvae.attacks.resolve_params. Each writes one result JSON
(madvae.results). The modules are imported when their mode runs: torch and
advertorch are slow to import, and the CLI reads only the names.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from madvae.attacks import ADAPTIVE_ATTACKS
from madvae.errors import UsageError, does_not_apply


@dataclass
class Request:
    """Everything ``madvae attack`` was given; each mode uses what applies to it."""
    set_path: Path
    out: Path
    classifier: Path | None = None
    vae: Path | None = None
    params: list = field(default_factory=list)  # "name=value" strings
    quick: bool = False
    preset: str = "quick"
    substitute: Path | None = None
    substitute_arch: str = "A"
    figure: Path | None = None
    defense_name: str | None = None
    samples: int = 0
    batch_size: int | None = None
    device: str = "auto"
    limit: int | None = None
    seed: int = 0
    progress: bool = True
    eps_grid: list | None = None  # adaptive modes: a security-evaluation curve over these eps
    given: frozenset = frozenset()  # the fields the user set explicitly (the CLI's options), even to a default

    def common(self) -> dict:
        return {"device": self.device, "limit": self.limit, "seed": self.seed, "progress": self.progress}


def _stored(request: Request) -> dict:
    from madvae.evaluate.stored import evaluate_set

    return evaluate_set(request.set_path, request.classifier, request.out, vae_path=request.vae,
                        defense_name=request.defense_name, samples=request.samples,
                        batch_size=request.batch_size or 500, **request.common())


def _adaptive(name: str):
    def run(request: Request) -> dict:
        from madvae.evaluate.adaptive import evaluate_adaptive
        from madvae.evaluate.curve import evaluate_curve

        options = dict(attack=name, vae_path=request.vae, defense_name=request.defense_name, params=request.params,
                       quick=request.quick, samples=request.samples, batch_size=request.batch_size or 250,
                       **request.common())
        if request.eps_grid is not None:
            return evaluate_curve(request.set_path, request.classifier, request.out, eps_grid=request.eps_grid,
                                  **options)
        return evaluate_adaptive(request.set_path, request.classifier, request.out, **options)
    return run


def _blackbox_paper(request: Request) -> dict:
    from madvae.evaluate.blackbox import evaluate_blackbox_paper

    if request.substitute is None:
        raise UsageError("--mode blackbox-paper needs --substitute (a classifier checkpoint of arch A-E)")
    return evaluate_blackbox_paper(request.set_path, request.substitute, request.out, vae_path=request.vae,
                                   defense_name=request.defense_name, batch_size=request.batch_size or 500,
                                   params=request.params, **request.common())


def _blackbox_transfer(request: Request) -> dict:
    from madvae.evaluate.blackbox import evaluate_blackbox_transfer

    return evaluate_blackbox_transfer(
        request.set_path, request.classifier, request.out, vae_path=request.vae, defense_name=request.defense_name,
        substitute_arch=request.substitute_arch, quick=request.quick, batch_size=request.batch_size or 500,
        params=request.params, **request.common())


def _overpowered(request: Request) -> dict:
    from madvae.evaluate.overpowered import evaluate_overpowered

    if request.vae is None:
        raise UsageError("--mode overpowered attacks a VAE's latent space: give --vae")
    return evaluate_overpowered(request.set_path, request.classifier, request.out, vae_path=request.vae,
                                defense_name=request.defense_name, preset=request.preset, figure=request.figure,
                                batch_size=request.batch_size or 100, params=request.params, **request.common())


# what every mode reads; a mode's `takes` lists the rest of the Request it reads
COMMON_FIELDS = frozenset({"set_path", "out", "seed", "device", "limit", "progress", "given"})
DEFENDED = frozenset({"vae", "defense_name", "batch_size"})
OPTION_NAMES = {"set_path": "--set", "params": "--param"}  # a Request field's option, if not --<field-name>


@dataclass(frozen=True)
class Mode:
    run: callable
    takes: frozenset  # the Request fields beyond COMMON_FIELDS it reads; any other one set is refused
    needs_classifier: bool = True  # blackbox-paper's target is its --substitute


MODES = {
    "stored": Mode(_stored, DEFENDED | {"classifier", "samples"}),
    **{name: Mode(_adaptive(name), DEFENDED | {"classifier", "params", "quick", "samples", "eps_grid"})
       for name in ADAPTIVE_ATTACKS},
    "blackbox-paper": Mode(_blackbox_paper, DEFENDED | {"substitute", "params"}, needs_classifier=False),
    "blackbox-transfer": Mode(_blackbox_transfer, DEFENDED | {"classifier", "params", "quick", "substitute_arch"}),
    "overpowered": Mode(_overpowered, DEFENDED | {"classifier", "params", "preset", "figure"}),
}


def option_name(field_name: str) -> str:
    return OPTION_NAMES.get(field_name, "--" + field_name.replace("_", "-"))


def refuse_stray_options(mode: str, request: Request) -> None:
    """An option the mode does not read, set on the command line or away from its default, is an error: a user
    who gave --preset paper to the stored mode must not believe the paper preset ran."""
    default = Request(request.set_path, request.out)
    stray = [f.name for f in fields(Request) if f.name not in COMMON_FIELDS | MODES[mode].takes
             and (f.name in request.given or getattr(request, f.name) != getattr(default, f.name))]
    if stray:
        takes = sorted(option_name(name) for name in MODES[mode].takes)
        raise does_not_apply(map(option_name, stray), f"--mode {mode}",
                             hint=f"it takes {', '.join(takes)} besides --set, --out, --seed, --device, --limit")


def evaluate(mode: str, request: Request) -> dict:
    """Run one evaluation mode; returns the result it wrote to ``request.out``."""
    if mode not in MODES:
        raise UsageError(f"unknown evaluation mode {mode!r}", hint=f"choose one of {', '.join(MODES)}")
    refuse_stray_options(mode, request)
    if MODES[mode].needs_classifier and request.classifier is None:
        raise UsageError(f"--mode {mode} needs --classifier")
    return MODES[mode].run(request)
