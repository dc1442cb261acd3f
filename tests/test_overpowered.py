"""The Overpowered attack: the per-row margin, the attack's invariants on random weights, per-image finishing
(the same result at any batch size), the row-wise Adam, the evaluation JSON and figure, and bad input."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from madvae.attacks import OVERPOWERED_PRESETS
from madvae.attacks.overpowered import (THRESHOLD, _RowAdam, l2_budget, margin, noise_seeds,
                                        overpowered_attack)
from madvae.checkpoint import save_checkpoint
from madvae.errors import MadvaeError
from madvae.defense import Target, load_classifier
from madvae.evaluate.overpowered import evaluate_overpowered, overpowered_metrics
from madvae.models import DefenseVAE
from madvae.store import open_set

TINY = {"restarts": 2, "steps": 4, "noise_samples": 2}


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py



def _run(vae, classifier, x, y, **options):
    """The attack through its one signature, returning what it recorded per image."""
    record = {}
    x_star = overpowered_attack(Target(classifier, vae), x, y, record=record, **options)
    assert torch.equal(x_star, record["x_star"])
    return record

def buggy_margin(logits, y):
    """The original's runner-up: every label of the batch masked in every row."""
    masked = logits.clone()
    masked[:, y] = -1e4
    return logits[torch.arange(len(y)), y] - masked.max(1).values


def test_margin_masks_only_each_rows_own_label():
    logits = torch.tensor([[5.0, 4.0, 1.0, 0.0],   # y=0: runner-up class 1 -> 1
                           [3.0, 6.0, 2.0, 0.0],   # y=1: runner-up class 0 -> 3
                           [0.0, 7.0, 3.0, 2.0]])  # y=2: runner-up class 1 -> -4 (misclassified)
    y = torch.tensor([0, 1, 2])
    assert margin(logits, y).tolist() == [1.0, 3.0, -4.0]
    # masking classes 0, 1 and 2 everywhere leaves class 3 as every row's "runner-up"
    assert buggy_margin(logits, y).tolist() == [5.0, 6.0, 1.0]


@pytest.fixture(scope="module")
def models(random_classifier):
    torch.manual_seed(1)
    classifier, _ = load_classifier(random_classifier, torch.device("cpu"))
    return DefenseVAE().eval(), classifier


@pytest.fixture(scope="module")
def digits(clean_test_set):
    with open_set(clean_test_set) as reader:
        batch = reader.read(0, 4)
    return torch.from_numpy(batch["x_clean"]), torch.from_numpy(batch["y"])


def _attack(models, digits, seed=0, **overrides):
    vae, classifier = models
    x, y = digits
    options = {"norm": 1.0, **TINY, **overrides}
    return _run(vae, classifier, x, y, image_seeds=noise_seeds(seed, range(len(x)), options["norm"]),
                              **options)


def test_outputs_have_the_right_shapes_ranges_and_distances(models, digits):
    x, _ = digits
    out = _attack(models, digits)
    assert out["x_star"].shape == x.shape and out["z_star"].shape == (4, 128)
    assert out["x_star"].min() >= 0 and out["x_star"].max() <= 1
    for key in ("l2", "mse", "margin", "margin_start", "met_budget", "done"):
        assert out[key].shape == (4,), key
    assert torch.allclose(out["l2"], (out["x_star"] - x).flatten(1).norm(dim=1))
    assert torch.allclose(out["l2"] ** 2 / 784, out["mse"], rtol=1e-4)
    assert torch.equal(out["met_budget"], out["mse"] <= THRESHOLD)
    assert torch.equal(out["met_budget"], out["l2"] <= l2_budget() + 1e-5)
    assert torch.equal(out["steps_run"], torch.full((4,), TINY["steps"]))
    assert out["first_done"].shape == (4,) and 0 <= out["first_done"].min() and out["first_done"].max() <= TINY["steps"]
    assert l2_budget() == pytest.approx(784 * 0.0051)


def test_the_attack_lowers_the_margin_from_the_start(digits):
    """Without the distance term (LAM 0) the optimiser must drive the noise-free margin down from z0's.

    An untrained MagNet's logits hardly depend on its input and an untrained decoder's output hardly depends on
    z, so here the decoder's last layer is scaled up and the classifier is a random linear map."""
    torch.manual_seed(1)
    vae, classifier = DefenseVAE().eval(), torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    with torch.no_grad():
        vae.decoder[-2].weight.mul_(30.0)
    x, y = digits
    out = _attack((vae, classifier), digits, norm=0.0, restarts=1, steps=8, noise_samples=1, lam_init=0.0,
                  lam_lr=0.0, threshold=1.0)
    with torch.no_grad():
        start = margin(classifier(vae.decode(vae.encode(x)[0])), y)
        end = margin(classifier(out["x_star"]), y)
    assert torch.allclose(end, out["margin"], atol=1e-5)
    assert torch.allclose(start, out["margin_start"], atol=1e-5)
    assert (end < start - 0.01).all()


def test_the_attack_is_deterministic_with_a_seed(models, digits):
    first, second = _attack(models, digits, seed=3), _attack(models, digits, seed=3)
    for key in ("x_star", "l2", "margin"):
        assert torch.equal(first[key], second[key]), key
    assert not torch.equal(first["margin"], _attack(models, digits, seed=4)["margin"])


class PixelVAE(torch.nn.Module):
    """A stand-in VAE whose latent is the image itself (G(z0) = x): the attack then reaches its goal for some
    images within a few steps and not for others."""

    def encode(self, x):
        flat = x.flatten(1)
        return flat, torch.zeros_like(flat)

    def decode(self, z):
        return z.view(-1, 1, 28, 28)


@pytest.fixture(scope="module")
def finishing(clean_test_set):
    """(vae, classifier, x, y): the 64 digits, a PixelVAE and a nearest-class-mean linear classifier, right on
    most digits at the start."""
    with open_set(clean_test_set) as reader:
        batch = reader.read(0, 64)
    x, y = torch.from_numpy(batch["x_clean"]), torch.from_numpy(batch["y"])
    means = torch.stack([x[y == k].flatten(1).mean(0) for k in range(10)])
    classifier = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    with torch.no_grad():
        classifier[1].weight.copy_(0.2 * means)
        classifier[1].bias.copy_(-0.1 * means.pow(2).sum(1))
    return PixelVAE(), classifier, x, y


def _attack_in_batches(finishing, batch_size, seed=0, **overrides):
    """The attack batched as evaluate_overpowered batches it, with the defended prediction per image."""
    vae, classifier, x, y = finishing
    options = {"norm": 1.0, "restarts": 2, "steps": 10, "noise_samples": 2, **overrides}
    parts = []
    for start in range(0, len(x), batch_size):
        stop = min(start + batch_size, len(x))
        out = _run(vae, classifier, x[start:stop], y[start:stop],
                                 image_seeds=noise_seeds(seed, range(start, stop), options["norm"]), **options)
        with torch.no_grad():
            out["predicted"] = classifier(vae.decode(vae.encode(out["x_star"])[0])).argmax(1)
        parts.append(out)
    return {key: torch.cat([p[key] for p in parts]) for key in parts[0]}


def test_each_image_gets_the_same_attack_at_any_batch_size(finishing):
    """Every image runs every step with its own noise, Adam state and multiplier: batches of 5 and one of 100
    (all 64 digits) give every image the same outcome, whether it met the goal early, late or never."""
    small, large = _attack_in_batches(finishing, 5), _attack_in_batches(finishing, 100)
    first_done = large["first_done"]
    # some images met the goal before the last step, some never did; none stopped early
    assert ((first_done > 0) & (first_done < 10)).any() and (first_done == 0).any()
    assert (large["steps_run"] == 10).all()
    for key in ("steps_run", "first_done", "done", "met_budget", "predicted"):
        assert torch.equal(small[key], large[key]), key
    for key in ("x_star", "margin", "mse", "margin_start"):
        assert torch.allclose(small[key], large[key], atol=1e-5), key


def test_images_that_met_the_goal_keep_improving(finishing):
    """No early stop: an image done at an early step still lowers its margin afterwards (stopping it there would
    leave its purified copy more often classified correctly)."""
    vae, classifier, x, y = finishing
    args = {"norm": 1.0, "restarts": 2, "noise_samples": 2}
    short = _run(vae, classifier, x, y, steps=3, image_seeds=noise_seeds(0, range(len(x)), 1.0), **args)
    long = _run(vae, classifier, x, y, steps=10, image_seeds=noise_seeds(0, range(len(x)), 1.0), **args)
    early = short["done"]
    assert early.any() and (long["margin"][early] < short["margin"][early]).any()


def test_the_original_lam_scaling_depends_on_the_batch(finishing):
    """lam_scaling 'original' scales LAM's weight and step by the batch's unfinished rows, so the outcome
    changes with the batch size."""
    options = {"lam_scaling": "original", "restarts": 1}
    small, large = _attack_in_batches(finishing, 5, **options), _attack_in_batches(finishing, 100, **options)
    assert not torch.allclose(small["x_star"], large["x_star"], atol=1e-5)
    with pytest.raises(ValueError, match="lam_scaling"):
        _attack_in_batches(finishing, 5, lam_scaling="per-image")


def test_row_adam_matches_torch_adam():
    torch.manual_seed(0)
    start, grads = torch.randn(6, 3), [torch.randn(6, 3) for _ in range(6)]
    adam, ours = _RowAdam(start, 0.05), start.clone()
    for grad in grads:
        ours = adam.step(ours, grad)
    param = start.clone().requires_grad_(True)
    reference = torch.optim.Adam([param], lr=0.05)
    for grad in grads:
        param.grad = grad.clone()
        reference.step()
    assert torch.allclose(ours, param.detach(), atol=1e-6)


def test_noise_seeds_depend_on_seed_index_and_norm():
    assert noise_seeds(0, [3, 4], 1.0) == [noise_seeds(0, [3], 1.0)[0], noise_seeds(0, [4], 1.0)[0]]
    assert noise_seeds(0, [3], 1.0) == noise_seeds(0, [3], 1)
    assert len({noise_seeds(0, [3], 1.0)[0], noise_seeds(1, [3], 1.0)[0], noise_seeds(0, [4], 1.0)[0],
                noise_seeds(0, [3], 2.5)[0]}) == 4


@pytest.fixture(scope="module")
def vae_checkpoint(tmp_path_factory):
    torch.manual_seed(2)
    path = tmp_path_factory.mktemp("vae") / "vae.pt"
    save_checkpoint(path, kind="vae", arch="defense-vae", model=DefenseVAE(), config={"loss": "vanilla"})
    return path


def test_evaluate_writes_the_result_json_and_the_figure(clean_test_set, random_classifier, vae_checkpoint, tmp_path):
    out, png = tmp_path / "op.json", tmp_path / "fig" / "op.png"
    result = evaluate_overpowered(clean_test_set, random_classifier, out, vae_path=vae_checkpoint, limit=6,
                                  norms=[1.0, 3.0], batch_size=4, device="cpu", progress=False, figure=png, **TINY)
    saved = json.loads(out.read_text())
    assert saved == json.loads(json.dumps(result))
    assert saved["kind"] == "overpowered" and saved["attack"] == "overpowered" and saved["n"] == 6
    assert saved["params"]["norms"] == [1.0, 3.0] and saved["params"]["preset"] == "quick"
    assert saved["defense"]["name"] == "vanilla"
    metrics = saved["metrics"]
    assert set(metrics) == {"accuracy", "original_accuracy", "accuracy_within_budget",
                            "original_accuracy_within_budget", "budget_fraction", "mean_l2", "clean"}
    assert metrics["original_accuracy"] <= metrics["accuracy"]
    assert 0 <= metrics["budget_fraction"] <= 1 and metrics["mean_l2"] > 0
    if metrics["budget_fraction"] == 0:
        assert metrics["accuracy_within_budget"] is None
    assert set(saved["per_norm"]) == {"1.0", "3.0"}
    assert np.mean([v["accuracy"] for v in saved["per_norm"].values()]) == pytest.approx(metrics["accuracy"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(png.parent.glob(".*.tmp"))
    again = evaluate_overpowered(clean_test_set, random_classifier, tmp_path / "again.json", vae_path=vae_checkpoint,
                                 limit=6, norms=[1.0, 3.0], batch_size=4, device="cpu", progress=False, **TINY)
    assert (again["metrics"], again["per_norm"]) == (result["metrics"], result["per_norm"])  # seeded


def test_evaluate_records_the_stopping_rule_and_each_images_steps(clean_test_set, random_classifier, vae_checkpoint,
                                                                  tmp_path):
    """steps_run per norm in the JSON (every image all steps; when each met the goal); the same at batch 5 and
    batch 100."""
    options = {"vae_path": vae_checkpoint, "limit": 12, "norms": [1.0, 3.0], "device": "cpu", "progress": False,
               **TINY}
    small = evaluate_overpowered(clean_test_set, random_classifier, tmp_path / "b5.json", batch_size=5, **options)
    saved = json.loads((tmp_path / "b5.json").read_text())
    assert saved["params"]["stop"] == "none" and saved["params"]["lam_scaling"] == "per-row"
    assert "stop_fraction" not in saved["params"]
    assert set(saved["steps_run"]) == {"1.0", "3.0"}
    for summary in saved["steps_run"].values():
        first = summary["first_goal_step"]
        assert summary["steps_per_image"] == [TINY["steps"]]  # every image ran every step
        assert len(first) == 12 and all(0 <= v <= TINY["steps"] for v in first)
        assert summary["goal_met"] == sum(v > 0 for v in first)
        met = [v for v in first if v > 0]
        assert summary["first_goal_step_mean"] == (pytest.approx(np.mean(met)) if met else None)
    large = evaluate_overpowered(clean_test_set, random_classifier, tmp_path / "b100.json", batch_size=100, **options)
    assert large["steps_run"] == small["steps_run"]
    assert large["metrics"] == pytest.approx(small["metrics"], abs=1e-5)
    original = evaluate_overpowered(clean_test_set, random_classifier, tmp_path / "orig.json", batch_size=5,
                                    lam_scaling="original", **options)
    assert original["params"]["lam_scaling"] == "original"


def test_metrics_follow_their_definitions():
    labels = np.array([0, 1, 2])
    runs = [{"predicted": np.array([0, 1, 9]), "met_budget": np.array([True, True, False]), "l2": np.ones(3)},
            {"predicted": np.array([0, 9, 9]), "met_budget": np.array([True, False, True]), "l2": 3 * np.ones(3)}]
    out = overpowered_metrics(runs, labels, np.array([0, 1, 2]), [1.0, 2.5])
    m = out["metrics"]
    assert m["accuracy"] == pytest.approx(3 / 6) and m["original_accuracy"] == pytest.approx(1 / 3)
    assert m["accuracy_within_budget"] == pytest.approx(3 / 4)  # pairs (0,1.0) (1,1.0) (0,2.5) ok, (2,2.5) not
    assert m["original_accuracy_within_budget"] == 1.0  # only image 0 met the budget under both norms
    assert m["budget_fraction"] == pytest.approx(4 / 6) and m["mean_l2"] == 2.0 and m["clean"] == 1.0
    assert out["per_norm"]["2.5"] == {"accuracy": pytest.approx(1 / 3), "mean_l2": 3.0,
                                      "budget_fraction": pytest.approx(2 / 3), "accuracy_within_budget": 0.5}
    none_met = [{**run, "met_budget": np.zeros(3, bool)} for run in runs]
    assert overpowered_metrics(none_met, labels, labels, [1.0, 2.5])["metrics"]["accuracy_within_budget"] is None


def test_presets_hold_the_papers_settings():
    assert OVERPOWERED_PRESETS["paper"] == {"n": 1000, "restarts": 20, "steps": 1000, "noise_samples": 100,
                                            "norms": (1.0, 2.5, 3.0, 3.5)}
    assert set(OVERPOWERED_PRESETS["quick"]) == set(OVERPOWERED_PRESETS["paper"]) == set(OVERPOWERED_PRESETS["cpu"])


def test_the_config_schema_and_the_cli_offer_the_registrys_presets():
    import yaml

    from madvae.cli import OverpoweredPreset

    schema = yaml.safe_load((Path(__file__).resolve().parents[1] / "workflow/schemas/config.schema.yaml").read_text())
    assert sorted(schema["properties"]["overpowered"]["properties"]["preset"]["enum"]) == sorted(OVERPOWERED_PRESETS)
    assert sorted(p.value for p in OverpoweredPreset) == sorted(OVERPOWERED_PRESETS)


@pytest.mark.parametrize("change, words", [
    ({"vae_path": None}, "needs a VAE"),
    ({"vae_path": "missing.pt"}, "no such checkpoint"),
    ({"limit": 0}, "out of range"),
    ({"limit": 65}, "out of range"),
    ({"norms": [1.0, -1.0]}, "norms"),
    ({"norms": [float("nan")]}, "norms"),
    ({"norms": []}, "norms"),
    ({"norms": ["big"]}, "norms"),
    ({"norms": [29.0]}, "norms"),
    ({"steps": 0}, "steps"),
    ({"preset": "huge"}, "preset"),
    ({"batch_size": 0}, "batch-size"),
    ({"lam_scaling": "sometimes"}, "lam_scaling"),
])
def test_bad_input_is_one_clear_error(change, words, clean_test_set, random_classifier, vae_checkpoint, tmp_path):
    options = {"vae_path": vae_checkpoint, "limit": 2, "device": "cpu", "progress": False, **TINY, **change}
    if options["vae_path"] == "missing.pt":
        options["vae_path"] = tmp_path / "missing.pt"
    with pytest.raises(MadvaeError, match=words):
        evaluate_overpowered(clean_test_set, random_classifier, tmp_path / "op.json", **options)
    assert not (tmp_path / "op.json").exists()


def test_a_classifier_is_refused_as_the_vae(clean_test_set, random_classifier, tmp_path):
    with pytest.raises(MadvaeError, match="vae is expected"):
        evaluate_overpowered(clean_test_set, random_classifier, tmp_path / "op.json", vae_path=random_classifier,
                             limit=2, device="cpu", progress=False, **TINY)
