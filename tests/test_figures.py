"""Sample grids and training curves: `madvae report --kind samples|curves`."""
from __future__ import annotations

import torch
from typer.testing import CliRunner

from madvae.checkpoint import save_checkpoint
from madvae.cli import app
from madvae.figures import read_log
from madvae.models import DefenseVAE
from madvae.store import write_set
from conftest import images_and_labels

runner = CliRunner()


def _adv_set(path):
    x, y = images_and_labels(40)
    y[:10] = range(10)  # every digit present
    return write_set(path, x, y, x[::-1].copy(), dataset="mnist-5k", split="test", attack="fgsm",
                     params={"eps": 0.3, "device": "cpu"}, source_classifier_sha256="0" * 64)


def test_sample_grid_has_a_row_per_purifier(tmp_path, random_classifier):
    torch.manual_seed(0)
    vae = save_checkpoint(tmp_path / "v.pt", kind="vae", arch="defense-vae", model=DefenseVAE(), config={})
    data = _adv_set(tmp_path / "adv.h5")
    done = runner.invoke(app, ["report", "--kind", "samples", str(data), "--classifier", str(random_classifier),
                               "--vae", f"a={vae}", "--vae", f"b={vae}", "--out-dir", str(tmp_path / "fig"),
                               "--name", "fgsm", "--device", "cpu"])
    assert done.exit_code == 0, done.output
    from matplotlib.image import imread

    image = imread(tmp_path / "fig" / "fgsm.png")
    one = runner.invoke(app, ["report", "--kind", "samples", str(data), "--classifier", str(random_classifier),
                              "--vae", f"a={vae}", "--out-dir", str(tmp_path / "fig1"), "--device", "cpu"])
    assert one.exit_code == 0, one.output
    assert imread(tmp_path / "fig1" / "samples.png").shape[0] < image.shape[0]  # one row fewer
    assert not list((tmp_path / "fig").glob(".*.tmp"))


def test_samples_need_an_adversarial_set_and_a_classifier(tmp_path, random_classifier):
    x, y = images_and_labels(10)
    clean = write_set(tmp_path / "clean.h5", x, y, dataset="mnist-5k", split="test", attack="none")
    done = runner.invoke(app, ["report", "--kind", "samples", str(clean), "--classifier", str(random_classifier),
                               "--out-dir", str(tmp_path / "fig")])
    assert done.exit_code == 65 and "sample grids need an adversarial set" in done.stderr
    done = runner.invoke(app, ["report", "--kind", "samples", str(_adv_set(tmp_path / "adv.h5")),
                               "--out-dir", str(tmp_path / "fig")])
    assert done.exit_code == 2 and "--classifier" in done.stderr
    assert not (tmp_path / "fig").exists() or not list((tmp_path / "fig").iterdir())


def test_curves_from_training_logs(tmp_path):
    logs = []
    for name, scale in (("vanilla", 1.0), ("combined", 2.0)):
        path = tmp_path / f"vae_{name}.steps.csv"
        rows = [f"1,{16 * i},{scale / i},{0.5},,,,{scale / i + 0.05}" for i in range(1, 6)]
        path.write_text("epoch,images,reconstruction,kl,classification,proximity,distance,total\n"
                        + "\n".join(rows) + "\n")
        logs.append(f"{name}={path}")
    assert read_log(tmp_path / "vae_vanilla.steps.csv")["images"].tolist() == [16, 32, 48, 64, 80]
    done = runner.invoke(app, ["report", "--kind", "curves", *logs, "--out-dir", str(tmp_path / "fig")])
    assert done.exit_code == 0, done.output
    assert "vanilla, combined" in done.stdout and (tmp_path / "fig" / "curves.png").stat().st_size > 0
    bad = tmp_path / "notalog.csv"
    bad.write_text("a,b\n1,2\n")
    done = runner.invoke(app, ["report", "--kind", "curves", str(bad), "--out-dir", str(tmp_path / "fig2")])
    assert done.exit_code == 65 and str(bad) in done.stderr and "not a madvae training log" in done.stderr
