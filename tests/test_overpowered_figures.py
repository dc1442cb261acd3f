"""Paper Figures 5 and 6: latents and outputs before and after the Overpowered Attack (attack_latents), and
`madvae embed --space overpowered-latent / overpowered-output`.

What bounds what: the robustness norm is the exact L2 norm of the noise the classifier sees during the attack;
it bounds no change. The attack's own limit is its L2 budget on the image, ||G(z*) - x|| <= l2_budget() (about
4.0), and it is a goal, not a projection: met_budget says whether an image reached it. Nothing bounds z* - z0
but the optimiser: each Adam step moves a coordinate by at most lr times ADAM_REACH(t) (below), so after k
steps |z* - z0| <= lr * sum of the first k reaches, coordinate by coordinate.
"""
from __future__ import annotations

import csv
import math
import struct

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from madvae.attacks.overpowered import OPTIMISER_DEFAULTS, l2_budget
from madvae.checkpoint import load_checkpoint, save_checkpoint
from madvae.cli import app
from madvae.errors import MadvaeError
from madvae.evaluate.overpowered import attack_latents, overpowered_params
from madvae.models import DefenseVAE, MagNetClassifier
from madvae.store import open_set

STEPS = 4
TINY = {"steps": STEPS, "noise_samples": 2}
runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Untrained models, scaled so that the attack has something to follow: an untrained decoder's output hardly
    depends on z, an untrained MagNet's logits hardly on its input, and untrained encoder means of different
    digits nearly coincide."""
    folder = tmp_path_factory.mktemp("op_figures")
    torch.manual_seed(1)
    vae = DefenseVAE()
    torch.manual_seed(2)
    classifier = MagNetClassifier()
    with torch.no_grad():
        vae.decoder[-2].weight.mul_(30.0)
        vae.mean_head.weight.mul_(300.0)
        for layer in classifier.modules():
            if isinstance(layer, torch.nn.Linear):
                layer.weight.mul_(10.0)
    return {"vae": save_checkpoint(folder / "vae.pt", kind="vae", arch="defense-vae", model=vae,
                                   config={"loss": "proximity-distance"}),
            "classifier": save_checkpoint(folder / "magnet.pt", kind="classifier", arch="magnet", model=classifier,
                                          config={})}


@pytest.fixture(scope="module")
def models(checkpoints):
    return (load_checkpoint(checkpoints["vae"]).build_model("cpu"),
            load_checkpoint(checkpoints["classifier"]).build_model("cpu"))


@pytest.fixture(scope="module")
def digits(clean_test_set):
    with open_set(clean_test_set) as reader:
        batch = reader.read(0, 8)
    return batch["x_clean"], batch["y"]


def adam_reach(steps: int, lr: float = OPTIMISER_DEFAULTS["lr"], beta1: float = 0.9, beta2: float = 0.999) -> float:
    """The most one coordinate can move in ``steps`` Adam steps (torch's defaults betas; eps only shrinks it).
    Step t moves lr * m_hat / sqrt(v_hat); by Cauchy-Schwarz on m's and v's weighted sums of the gradients,
    |m_hat| / sqrt(v_hat) <= (1 - b1) sqrt(sum_k<t (b1^2/b2)^k) / sqrt(1 - b2) * sqrt(1 - b2^t) / (1 - b1^t)
    (1 at t = 1: the first step is lr * sign(g))."""
    gamma = beta1 ** 2 / beta2
    return lr * sum((1 - beta1) * math.sqrt((1 - gamma ** t) / (1 - gamma)) / math.sqrt(1 - beta2)
                    * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t) for t in range(1, steps + 1))


def test_latents_start_at_the_encoder_mean_move_within_adams_reach_and_decode_to_the_outputs(models, digits):
    vae, classifier = models
    x, y = digits
    out = attack_latents(vae, classifier, x, y, params=overpowered_params(**TINY), seed=0)
    n = len(x)
    assert out["z_before"].shape == out["z_after"].shape == (n, vae.latent_dim)
    assert out["output_before"].shape == out["output_after"].shape == x.shape
    for key in ("l2", "met_budget", "predicted_before", "predicted_after"):
        assert out[key].shape == (n,), key
    with torch.no_grad():
        z0, _ = vae.encode(torch.from_numpy(x))
        assert np.allclose(out["z_before"], z0.numpy(), atol=1e-5)
        # each output is its own latent decoded: the figures' two spaces show the same points
        for stage in ("before", "after"):
            decoded = vae.decode(torch.from_numpy(out[f"z_{stage}"])).numpy()
            assert np.allclose(out[f"output_{stage}"], decoded, atol=1e-5), stage
    moved = (out["z_after"] != out["z_before"]).any(1)
    assert moved.sum() >= n // 4, moved  # an image whose best z was its start keeps it
    assert (out["output_after"][~moved] == out["output_before"][~moved]).all()
    # the last step is evaluated, not taken: at most STEPS - 1 optimiser steps from z0 (each step rounds z to
    # float32: half a unit in the last place of the largest coordinate per step)
    move = np.abs(out["z_after"].astype(np.float64) - out["z_before"]).max()
    rounding = (STEPS - 1) * float(np.spacing(np.abs(out["z_after"]).max()))
    assert 0 < move <= adam_reach(STEPS - 1) + rounding
    assert adam_reach(1) == pytest.approx(OPTIMISER_DEFAULTS["lr"])
    # the attack's only bound is on the image, as a goal that met_budget reports
    assert np.allclose(out["l2"], np.linalg.norm((out["output_after"] - x).reshape(n, -1), axis=1), atol=1e-4)
    assert (out["met_budget"] == (out["l2"] <= l2_budget() + 1e-5)).all()
    assert ((out["predicted_before"] >= 0) & (out["predicted_after"] <= 9)).all()


def test_the_same_seed_gives_the_same_result_and_another_seed_other_noise(models, digits):
    vae, classifier = models
    x, y = digits
    params = overpowered_params(**TINY)
    first, again = (attack_latents(vae, classifier, x, y, params=params, seed=5) for _ in range(2))
    assert all(np.array_equal(first[key], again[key]) for key in first)
    other = attack_latents(vae, classifier, x, y, params=params, seed=6)
    assert np.array_equal(first["z_before"], other["z_before"])  # the start does not depend on the seed
    assert not np.array_equal(first["z_after"], other["z_after"])


@pytest.mark.parametrize("change, words", [
    ({"norm": -1.0}, "--norm -1.0 must be a number in"),
    ({"norm": float("nan")}, "--norm nan"),
    ({"steps": 0}, "steps=0 is out of range"),
    ({"preset": "huge"}, "unknown overpowered preset"),
])
def test_bad_attack_settings_are_refused(change, words):
    with pytest.raises(MadvaeError, match=words):
        overpowered_params(**change)


def read_rows(path):
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])  # IHDR: width, height


def embed(set_path, checkpoints, *args):
    return runner.invoke(app, ["embed", str(set_path), "--classifier", str(checkpoints["classifier"]),
                               "--param", f"steps={STEPS}", "--param", "noise_samples=1", "--n", "12",
                               "--device", "cpu", "--no-progress", *map(str, args)])


def test_embed_writes_both_figures_side_by_side_with_their_coordinates(clean_test_set, checkpoints, tmp_path):
    out_dir = tmp_path / "figures"
    result = embed(clean_test_set, checkpoints, "--out-dir", out_dir, "--space", "overpowered-latent",
                   "--space", "overpowered-output", "--vae", f"prox={checkpoints['vae']}", "--width", 3,
                   "--height", 2, "--dpi", 50)
    assert result.exit_code == 0, result.output
    assert "norm 1.0" in result.output and "defense prox" in result.output
    with open_set(clean_test_set) as reader:
        labels = reader.read(0, len(reader), ["y"])["y"]
    indices = {}
    for space in ("overpowered-latent", "overpowered-output"):
        header, rows = read_rows(out_dir / f"prox_{space}.csv")
        assert header == ["index", "x", "y", "label", "stage"]
        assert [row[4] for row in rows] == ["before"] * 12 + ["after"] * 12
        index = np.array([int(row[0]) for row in rows])
        assert (index[:12] == index[12:]).all() and len(set(index[:12])) == 12  # one point per digit and stage
        assert (np.array([int(row[3]) for row in rows]) == labels[index]).all()  # true labels by default
        assert np.isfinite(np.array([[float(row[1]), float(row[2])] for row in rows])).all()
        indices[space] = index
        assert png_size(out_dir / f"prox_{space}.png") == (2 * 3 * 50, 2 * 50)  # two panels, each --width
    assert (indices["overpowered-latent"] == indices["overpowered-output"]).all()
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(
        f"prox_{space}.{ext}" for space in ("overpowered-latent", "overpowered-output") for ext in ("csv", "png"))

    # one figure, the same seed: the same attack and embedding
    result = embed(clean_test_set, checkpoints, "--out", tmp_path / "again", "--space", "overpowered-latent",
                   "--vae", checkpoints["vae"], "--width", 3, "--height", 2, "--dpi", 50)
    assert result.exit_code == 0, result.output
    assert read_rows(tmp_path / "again.csv") == read_rows(out_dir / "prox_overpowered-latent.csv")

    # coloured by the defended predictions: those of the same attack run through the library (CLI seed 42)
    result = embed(clean_test_set, checkpoints, "--out", tmp_path / "predicted", "--space", "overpowered-output",
                   "--vae", checkpoints["vae"], "--colour", "predicted", "--width", 3, "--height", 2, "--dpi", 50)
    assert result.exit_code == 0, result.output
    _, rows = read_rows(tmp_path / "predicted.csv")
    index = indices["overpowered-output"][:12]
    with open_set(clean_test_set) as reader:
        x = reader.read(0, len(reader), ["x_clean"])["x_clean"][index]
    vae = load_checkpoint(checkpoints["vae"]).build_model("cpu")
    classifier = load_checkpoint(checkpoints["classifier"]).build_model("cpu")
    run = attack_latents(vae, classifier, x, labels[index], params=overpowered_params(steps=STEPS, noise_samples=1),
                         seed=42)
    predicted = np.concatenate([run["predicted_before"], run["predicted_after"]])
    assert (np.array([int(row[3]) for row in rows]) == predicted).all()
    assert not (predicted == np.concatenate([labels[index]] * 2)).all()  # not the true labels


def test_attack_options_without_an_overpowered_space_are_refused(clean_test_set, checkpoints, tmp_path):
    for extra in (["--norm", "2.5"], ["--preset", "paper"], ["--param", "steps=3"]):
        result = runner.invoke(app, ["embed", str(clean_test_set), "--out", str(tmp_path / "plain"), "--space",
                                     "latent", "--vae", str(checkpoints["vae"]), "--device", "cpu", *extra])
        assert result.exit_code == 2 and "apply to the overpowered spaces only" in result.output, result.output
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("args, words", [
    (["--vae", "{classifier}"], "a vae is expected"),  # a bad input file (exit 65); the rest are usage errors (2)
    (["--vae", "{vae}", "--no-classifier"], "needs a classifier checkpoint (--classifier)"),
    (["--vae", "{vae}", "--field", "x_adv"], "attacks the clean images"),
    (["--vae", "{vae}", "--norm", "30"], "--norm 30.0 must be a number in [0, 28]"),
    (["--vae", "{vae}", "--param", "norms=1.0"], "does not apply to madvae embed"),
    (["--vae", "{vae}", "--param", "steps=0"], "steps=0 is out of range (>= 1)"),
    (["--vae", "{vae}", "--param", "steps=many"], "is not a whole number"),
])
def test_bad_input_fails_with_one_line_and_writes_nothing(clean_test_set, checkpoints, tmp_path, args, words):
    args = [arg.format(**{k: str(v) for k, v in checkpoints.items()}) for arg in args]
    command = ["embed", str(clean_test_set), "--out", str(tmp_path / "bad"), "--space", "overpowered-latent",
               "--device", "cpu", "--no-progress", *[arg for arg in args if arg != "--no-classifier"]]
    if "--no-classifier" not in args:
        command += ["--classifier", str(checkpoints["classifier"])]
    result = runner.invoke(app, command)
    assert result.exit_code == (65 if words == "a vae is expected" else 2), result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("madvae: error:") and words in lines[0], result.output
    assert not list(tmp_path.glob("bad*"))
