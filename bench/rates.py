"""The bench's measured rates (the "ours" side of each figure in bench/results.json), in the units of
bench/jobs.py's Work, scaled to a job's setting where the bench measured another one.

Measured: every section's figure. Derived (the printout says how): MagNet's forward pass alone from the
evaluation's (VAE + MagNet) by FLOPs; plain PGD on MagNet from the PGD figure; MI-FGSM and PGD per iteration,
single pixel per pixel tried; other noise draws (Overpowered), decodings (evaluation, EOT) by FLOPs."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from torch import nn

from bench.common import forward_flops_per_image
from madvae.attacks import resolve_params
from madvae.models import DefenseVAE, MagNetClassifier

# what the bench measured where an older results.json did not record it (bench/sections.py)
BENCH_SETTINGS = {"overpowered": {"noise_samples": 4}, "adaptive-eot": {"eot_samples": 2, "samples": 4},
                  "eval": {"samples": 0}, "umap": {"first_call_seconds": 20.0}}
# rate -> (the figure it comes from, how); the figure's key is its name up to the first space
DERIVED = {"classify": ("eval", "MagNet alone: the evaluation's rate x FLOPs(VAE + MagNet) / FLOPs(MagNet)"),
           "classifier-step": ("pgd", "plain PGD on MagNet: the PGD figure per iteration"),
           "purify": ("eval", "the evaluation's rate (VAE + MagNet)"),
           "umap-first-call": ("umap", "the bench's first UMAP call (numba compilation)")}
PER_ITERATION = ("mifgsm", "pgd")  # the figure is per image at the test preset's nb_iter


@dataclass(frozen=True)
class Rate:
    per_s: float  # units of the Work's amount per second
    source: str  # where it comes from, for the printout
    threads: int  # torch threads the bench ran with


class _Part(nn.Module):
    """One method of the VAE as a module, for its FLOP count."""

    def __init__(self, vae, method):
        super().__init__()
        self.vae, self.method = vae, method

    def forward(self, x):
        return getattr(self.vae, self.method)(x)


@lru_cache(maxsize=1)
def flops() -> dict:
    """Forward FLOPs per image of the encoder, decoder and MagNet (bench.common.forward_flops_per_image)."""
    vae = DefenseVAE()
    return {"encoder": forward_flops_per_image(_Part(vae, "encode")),
            "decoder": forward_flops_per_image(_Part(vae, "decode"), (1, vae.latent_dim)),
            "classifier": forward_flops_per_image(MagNetClassifier())}


def purify_cost(samples: int) -> float:
    """FLOPs of classifier(VAE(x)): one decoding of the posterior mean, or the average of K sampled ones."""
    f = flops()
    return f["encoder"] + max(1, samples) * f["decoder"] + f["classifier"]


def overpowered_cost(noise_samples: int) -> float:
    """FLOPs of one Overpowered step of one image and restart: the decoder once, the classifier once per draw."""
    f = flops()
    return f["decoder"] + noise_samples * f["classifier"]


def eot_cost(eot_samples: int, samples: int) -> float:
    """FLOPs of one EOT step: the encoder once, per draw K decodings and the classifier."""
    f = flops()
    return f["encoder"] + eot_samples * (samples * f["decoder"] + f["classifier"])


def figure_key(fig: dict) -> str:
    return fig["name"].split(" ")[0]


class Rates:
    """The figures of one or more bench results files (later runs of some sections add to the earlier ones)."""

    def __init__(self, figures: list[dict], origin: str = "figures", machines: list[dict] | None = None):
        self.figures, self.origin, self.machines = {}, origin, machines or []
        for fig in figures:
            self.figures.setdefault(figure_key(fig), []).append(fig)

    @classmethod
    def from_files(cls, paths) -> Rates:
        figures, machines = [], []
        for path in paths:
            results = json.loads(Path(path).read_text())
            figures += results["figures"]
            machines.append(results["machine"])
        return cls(figures, ", ".join(map(str, paths)), machines)

    def section(self, rate: str) -> str:
        """The bench/run.py --only section that measures this rate."""
        key = DERIVED.get(rate, (rate,))[0]
        if key == "classifier-train":
            return "classifier"
        return key.removesuffix("-train")

    def thread_speedup(self) -> float | None:
        """How much faster the bench's threads ran than one (its threads figure, the fastest), or None."""
        found = [fig["setting"]["speedup"] for fig in self.figures.get("threads", []) if fig.get("setting")]
        return max(found) if found else None

    def has(self, rate: str) -> bool:
        return DERIVED.get(rate, (rate,))[0] in self.figures

    def _figure(self, key: str, batch: int | None) -> dict:
        """The figure measured at the batch nearest ``batch``; of equally near ones the fastest: on a shared
        machine the fastest run is the one its neighbours slowed least (as bench.common.matmul_gflops)."""
        return min(self.figures[key], key=lambda fig: (abs(math.log(fig["batch_size"] / batch)) if batch else 0,
                                                       -fig["ours_images_per_s"]))

    def rate(self, work) -> Rate:
        key, how = DERIVED.get(work.rate, (work.rate, ""))
        fig = self._figure(key, work.batch)
        measured = fig["ours_images_per_s"]
        setting = {**BENCH_SETTINGS.get(key, {}), **(fig.get("setting") or {})}
        source = f"{fig['name']} {measured:,.2f} {fig['unit']}, batch {fig['batch_size']}"
        per_s, notes = measured, [how] if how else []
        if key in PER_ITERATION:
            iterations = setting.get("nb_iter", resolve_params(key, "test")["nb_iter"])
            per_s, notes = measured * iterations, notes + [f"x {iterations} iterations per image"]
        elif key == "single-pixel":
            pixels = setting.get("max_pixels", resolve_params(key, "test")["max_pixels"])
            per_s, notes = measured * pixels, notes + [f"x {pixels} pixels per image"]
        if work.rate == "classify":
            f = flops()
            per_s *= purify_cost(0) / f["classifier"]
        elif work.rate == "umap-first-call":
            per_s = 1 / setting["first_call_seconds"]
            source = f"{fig['name']} first call {setting['first_call_seconds']:.1f} s"
        elif work.rate == "purify" and work.setting.get("samples", 0) > 1:
            per_s *= purify_cost(setting["samples"]) / purify_cost(work.setting["samples"])
            notes.append(f"x FLOPs for {work.setting['samples']} decodings")
        elif key == "overpowered" and work.setting["noise_samples"] != setting["noise_samples"]:
            per_s *= overpowered_cost(setting["noise_samples"]) / overpowered_cost(work.setting["noise_samples"])
            notes.append(f"x FLOPs of {setting['noise_samples']} / {work.setting['noise_samples']} noise draws")
        elif key == "adaptive-eot":
            bench, job = (setting["eot_samples"], setting["samples"]), (work.setting["eot_samples"],
                                                                        work.setting["samples"])
            if bench != job:
                per_s *= eot_cost(*bench) / eot_cost(*job)
                notes.append(f"x FLOPs of {bench[0]} x {bench[1]} / {job[0]} x {job[1]} draws x decodings")
        return Rate(per_s, source + (f" ({'; '.join(notes)})" if notes else ""), fig.get("threads", 1))
