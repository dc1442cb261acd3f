"""`madvae embed`: UMAP coordinates and figure from tiny random sets (UMAP's first run is slow: few calls)."""
from __future__ import annotations

import csv

import numpy as np
import pytest
from typer.testing import CliRunner

from madvae.checkpoint import save_checkpoint
from madvae.cli import app
from madvae.embed import embed_set
from madvae.errors import MadvaeError
from madvae.models import DefenseVAE, MagNetClassifier
from madvae.store import write_set

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
runner = CliRunner()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("embed")
    rng = np.random.default_rng(0)
    x_clean = rng.random((60, 1, 28, 28), dtype=np.float32)
    x_adv = np.clip(x_clean + rng.normal(0, 0.1, x_clean.shape).astype(np.float32), 0, 1)
    y = rng.integers(0, 10, 60)
    paths = {
        "clean": write_set(folder / "clean.h5", x_clean, y, dataset="mnist-5k", split="test"),
        "adv": write_set(folder / "adv.h5", x_clean, y, x_adv, dataset="mnist-5k", split="test", attack="fgsm",
                         source_classifier_sha256="0" * 64),
        "vae": save_checkpoint(folder / "vae.pt", kind="vae", arch="defense-vae", model=DefenseVAE(),
                               config={"loss": "vanilla"}),
        "classifier": save_checkpoint(folder / "clf.pt", kind="classifier", arch="magnet",
                                      model=MagNetClassifier(), config={}),
    }
    return folder, paths, y


def read_coords(path):
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["index", "x", "y", "label"]
    return np.array([[float(v) for v in row] for row in rows[1:]])


def assert_png(path):
    data = path.read_bytes()
    assert len(data) > 0 and data.startswith(PNG_SIGNATURE)


def test_embed_writes_coordinates_and_figure_in_every_space(files):
    folder, paths, y = files
    info = embed_set(paths["adv"], folder / "input", space="input", n=40, seed=1, device="cpu")
    coords = read_coords(info["csv"])
    assert coords.shape == (40, 4) and info["n"] == 40 and info["field"] == "x_adv"
    assert len(set(coords[:, 0])) == 40 and np.isfinite(coords[:, 1:3]).all()
    assert (coords[:, 3] == y[coords[:, 0].astype(int)]).all()  # true labels follow the sampled indices
    assert_png(info["png"])
    assert "mnist-5k" in info["title"] and "fgsm" in info["title"] and "defense none" in info["title"]
    assert not list(folder.glob(".*.tmp"))  # atomic writes leave no temporaries

    info = embed_set(paths["adv"], folder / "latent", space="latent", vae_path=paths["vae"],
                     classifier_path=paths["classifier"], colour="predicted", n=30, device="cpu")
    coords = read_coords(info["csv"])
    assert coords.shape == (30, 4) and ((coords[:, 3] >= 0) & (coords[:, 3] <= 9)).all()
    assert "defense vanilla" in info["title"] and "predicted label (magnet)" in info["title"]
    assert_png(info["png"])

    result = runner.invoke(app, ["embed", str(paths["clean"]), "--out", str(folder / "output"), "--space", "output",
                                 "--vae", str(paths["vae"]), "--n", "25", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert read_coords(folder / "output.csv").shape == (25, 4)
    assert_png(folder / "output.png")


def test_embed_rejects_missing_or_wrong_inputs_with_one_line(files):
    folder, paths, _ = files
    out = str(folder / "bad")
    cases = [  # (arguments, message, exit code: 2 a missing option, 65 a wrong file)
        (["--space", "latent"], "needs a VAE checkpoint (--vae)", 2),
        (["--colour", "predicted"], "needs a classifier checkpoint (--classifier)", 2),
        (["--space", "output", "--vae", str(paths["classifier"])], "a vae is expected here", 65),
        (["--field", "x_adv", "--set-clean"], "has no x_adv", 65),
    ]
    for extra, message, code in cases:
        set_path = paths["clean"] if "--set-clean" in extra else paths["adv"]
        args = ["embed", str(set_path), "--out", out, "--device", "cpu", *[a for a in extra if a != "--set-clean"]]
        result = runner.invoke(app, args)
        assert result.exit_code == code, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("madvae: error:") and message in lines[0], result.output
    assert not list(folder.glob("bad*"))
    with pytest.raises(MadvaeError, match="at least 5"):
        embed_set(paths["adv"], folder / "tiny", n=3)


def test_out_dir_draws_every_vae_and_space_from_the_same_samples(files):
    folder, paths, _ = files
    out_dir = folder / "many"
    result = runner.invoke(app, ["embed", str(paths["adv"]), "--out-dir", str(out_dir), "--space", "input",
                                 "--space", "latent", "--space", "output", "--vae", f"first={paths['vae']}",
                                 "--vae", str(paths["vae"]), "--n", "20", "--device", "cpu", "--no-progress"])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out_dir.glob("*.png"))
    assert names == ["first_latent.png", "first_output.png", "input.png", "vae_latent.png", "vae_output.png"]
    indices = {name: read_coords(out_dir / name.replace(".png", ".csv"))[:, 0] for name in names}
    assert all((column == indices["input.png"]).all() for column in indices.values())
    # the same VAE under two names gives the same embedding (one seed, one sample)
    assert np.allclose(read_coords(out_dir / "first_latent.csv"), read_coords(out_dir / "vae_latent.csv"))


@pytest.mark.parametrize("args, message", [
    (["--space", "latent"], "needs a VAE checkpoint"),
    (["--space", "input", "--vae", "x.pt"], "not used in space input"),
    (["--space", "latent", "--vae", "a=x.pt", "--vae", "a=y.pt"], "given twice"),
    (["--space", "latent", "--vae", "="], "expected PATH or NAME=PATH"),
])
def test_out_dir_rejects_inconsistent_requests(files, args, message):
    folder, paths, _ = files
    result = runner.invoke(app, ["embed", str(paths["adv"]), "--out-dir", str(folder / "none"), *args])
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (folder / "none").exists()


def test_out_and_out_dir_are_exclusive(files):
    folder, paths, _ = files
    for extra in ([], ["--out", str(folder / "a"), "--out-dir", str(folder / "b")],
                  ["--out", str(folder / "a"), "--space", "input", "--space", "latent", "--vae", str(paths["vae"])]):
        result = runner.invoke(app, ["embed", str(paths["adv"]), *extra])
        assert result.exit_code == 2 and "madvae: error:" in result.output, result.output


@pytest.mark.parametrize("item", ["../../x=vae.pt", "a/b=vae.pt", ".hidden=vae.pt", "x y=vae.pt"])
def test_figure_names_from_vae_names_stay_inside_the_output_folder(item, tmp_path):
    from typer.testing import CliRunner

    from madvae.cli import app

    outcome = CliRunner().invoke(app, ["embed", str(tmp_path / "s.h5"), "--out-dir", str(tmp_path / "figs"),
                                       "--space", "latent", "--vae", item])
    lines = outcome.output.strip().splitlines()
    assert outcome.exit_code == 2 and len(lines) == 1 and "must be letters, digits" in lines[0], outcome.output
    assert not any(tmp_path.rglob("*.png")) and not (tmp_path.parent / "x_latent.png").exists()
