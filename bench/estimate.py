"""The paper grid's compute time on the benchmarked device, from the measured rates: every job of config/paper.yaml
(MNIST, 55,000 training images after the 5,000 validation ones, 10,000 test images) as images x passes / rate.

An estimate, not a measurement: CW counts every one of its 9 x 1,500 iterations and Overpowered every one of its
1,000 steps (abort-early and the stop at 90% of images done end both sooner: upper bounds); the Overpowered step is scaled from the benchmark's 4 noise draws to the
paper preset's 100 by FLOPs (decoder once, classifier once per draw); black-box substitutes, adaptive attacks
and UMAP figures are left out (minutes, against the hours of the rest)."""
from __future__ import annotations

from madvae.attacks import resolve_params
from madvae.attacks.overpowered import OVERPOWERED_PRESETS
from madvae.models import DefenseVAE, MagNetClassifier

from bench.common import forward_flops_per_image

TRAIN, TEST, SETTINGS = 55_000, 10_000, 3  # MNIST train (val held out) and test; 3 settings per training attack
CLASSIFIER_EPOCHS = 50
VAE_EPOCHS = {"vanilla": 5, "classification": 10, "proximity-distance": 5, "combined": 10, "identity": 10}
TEST_ATTACKS = ("fgsm", "rfgsm", "cw", "mifgsm", "pgd", "single-pixel")
DEFENSES = 6  # the five purifiers and no defense
BENCH_NOISE_DRAWS = 4


def _cw_iterations(preset: str) -> int:
    params = resolve_params("cw", preset)
    return params["max_iterations"] * params["binary_search_steps"]


def _overpowered_scale() -> float:
    vae = DefenseVAE()
    decoder = forward_flops_per_image(vae) / 2  # the decoder is about half of the (symmetric) VAE
    classifier = forward_flops_per_image(MagNetClassifier())
    paper = OVERPOWERED_PRESETS["paper"]["noise_samples"]
    return (decoder + paper * classifier) / (decoder + BENCH_NOISE_DRAWS * classifier)


def paper_grid_hours(figures: list[dict]) -> dict | None:
    """Hours per step of the paper grid at the benchmarked rates, or None when a needed figure is missing."""
    rate = {fig["name"].split(" ")[0]: fig["ours_images_per_s"] for fig in figures}
    needed = {"classifier-train", "fgsm", "rfgsm", "cw", "mifgsm", "pgd", "single-pixel", "eval", "overpowered",
              *(f"vae-{variant}" for variant in VAE_EPOCHS)}
    if not needed <= set(rate):
        return None
    pairs = 3 * SETTINGS * TRAIN  # FGSM, R-FGSM and CW, 3 settings each
    op = OVERPOWERED_PRESETS["paper"]
    seconds = {
        "classifier": CLASSIFIER_EPOCHS * TRAIN / rate["classifier-train"],
        "training sets (FGSM, R-FGSM)": SETTINGS * TRAIN * (1 / rate["fgsm"] + 1 / rate["rfgsm"]),
        "training sets (CW, every iteration)": TRAIN * sum(_cw_iterations(f"train-{i}") for i in range(SETTINGS))
        / rate["cw"],
        "test sets": TEST * sum(_cw_iterations("test") / rate["cw"] if name == "cw" else 1 / rate[name]
                                for name in TEST_ATTACKS),
        "purifiers": sum(epochs * (TRAIN if variant == "identity" else pairs) / rate[f"vae-{variant}"]
                         for variant, epochs in VAE_EPOCHS.items()),
        "white-box evaluations": DEFENSES * len(TEST_ATTACKS) * TEST / rate["eval"],
        "Overpowered (Table 3)": (len(VAE_EPOCHS) * len(op["norms"]) * op["n"] * op["restarts"] * op["steps"]
                                  * _overpowered_scale() / rate["overpowered"]),
    }
    hours = {name: value / 3600 for name, value in seconds.items()}
    return {"hours": hours, "total_hours": sum(hours.values()), "train_images": TRAIN, "test_images": TEST}


def estimate_line(estimate: dict | None, device: str) -> str:
    if estimate is None:
        return "Paper grid estimate: needs every section's figure (run without --only)."
    parts = ", ".join(f"{name} {hours:,.1f} h" for name, hours in estimate["hours"].items())
    return (f"Paper grid (config/paper.yaml, MNIST {estimate['train_images']:,} train / {estimate['test_images']:,}"
            f" test) at these rates on {device}: about {estimate['total_hours']:,.0f} device-hours ({parts}); "
            "CW and Overpowered counted at every iteration and step (upper bounds: both stop early).")
