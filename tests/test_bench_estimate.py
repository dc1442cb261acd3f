"""bench/estimate.py: the paper grid's hours from measured rates (no timing measured here)."""
import pytest

from bench.estimate import SETTINGS, TRAIN, VAE_EPOCHS, paper_grid_hours
from madvae.attacks import resolve_params

NAMES = ["classifier-train", "fgsm", "rfgsm", "cw (per iteration)", "mifgsm", "pgd", "single-pixel",
         "eval (vae + classifier)", "overpowered (per step)", *(f"vae-{variant}" for variant in VAE_EPOCHS)]


def figures(rate, **overrides):
    return [{"name": name, "ours_images_per_s": overrides.get(name.split(" ")[0], rate)} for name in NAMES]


def test_hours_scale_inversely_with_the_rates():
    slow, fast = paper_grid_hours(figures(100.0)), paper_grid_hours(figures(400.0))
    assert fast["total_hours"] == pytest.approx(slow["total_hours"] / 4)
    assert slow["total_hours"] == pytest.approx(sum(slow["hours"].values()))


def test_cw_training_sets_count_every_iteration_of_every_setting():
    cw_rate = 1000.0
    hours = paper_grid_hours(figures(100.0, cw=cw_rate))["hours"]["training sets (CW, every iteration)"]
    iterations = sum(resolve_params("cw", f"train-{i}")["max_iterations"]
                     * resolve_params("cw", f"train-{i}")["binary_search_steps"] for i in range(SETTINGS))
    assert hours == pytest.approx(TRAIN * iterations / cw_rate / 3600)
    # a faster CW changes only the CW rows
    faster = paper_grid_hours(figures(100.0, cw=2 * cw_rate))["hours"]
    assert faster["training sets (CW, every iteration)"] == pytest.approx(hours / 2)
    assert faster["classifier"] == paper_grid_hours(figures(100.0, cw=cw_rate))["hours"]["classifier"]


def test_a_missing_section_gives_no_estimate():
    assert paper_grid_hours([fig for fig in figures(100.0) if fig["name"] != "pgd"]) is None
