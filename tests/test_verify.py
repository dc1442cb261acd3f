"""`madvae inspect --verify`: a real chain (clean set -> classifier -> adversarial set -> VAE -> result) checks out,
and a replaced file or a corrupted byte is reported."""
from __future__ import annotations

import json
import shutil

import h5py
import pytest
import torch
from typer.testing import CliRunner

from madvae.checkpoint import save_checkpoint
from madvae.cli import app
from madvae.evaluate.stored import evaluate_set
from madvae.generate import make_adversarial_set, make_clean_set
from madvae.models import MagNetClassifier
from madvae.train import train_vae
from madvae.train_classifier import train_classifier

runner = CliRunner()


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chain")
    files = {name: folder / name for name in ("train.h5", "test.h5", "clf.pt", "adv.h5", "vae.pt", "result.json")}
    make_clean_set(files["train.h5"], dataset="mnist-5k", split="train", limit=32)
    make_clean_set(files["test.h5"], dataset="mnist-5k", split="test", limit=16)
    train_classifier(files["train.h5"], files["clf.pt"], test_path=files["test.h5"], epochs=1, device="cpu",
                     progress=False)
    make_adversarial_set(files["adv.h5"], input_path=files["train.h5"], classifier_path=files["clf.pt"],
                         attack="fgsm", device="cpu", progress=False)
    train_vae([files["adv.h5"]], files["vae.pt"], loss="vanilla", epochs=1, batch_size=16, device="cpu",
              progress=False)
    evaluate_set(files["test.h5"], files["clf.pt"], files["result.json"], vae_path=files["vae.pt"], device="cpu",
                 progress=False)
    return folder, files


def verify(*paths):
    return runner.invoke(app, ["inspect", "--verify", *map(str, paths)])


def test_a_complete_chain_verifies(chain):
    _, files = chain
    result = verify(*files.values())
    assert result.exit_code == 0, result.output
    # adv: crafted from train, on clf; clf: train, test; vae: adv; result: test set, clf, vae
    assert "8 links verified, 0 mismatched, 0 unchecked" in result.output
    assert f"ok        {files['vae.pt']}: trained on set {files['adv.h5']}" in result.output


def test_a_replaced_classifier_is_a_mismatch(chain, tmp_path):
    _, files = chain
    copied = {name: tmp_path / name for name in ("clf.pt", "result.json")}
    shutil.copy(files["clf.pt"], copied["clf.pt"])
    payload = json.loads(files["result.json"].read_text())
    payload["classifier"] = str(copied["clf.pt"])
    copied["result.json"].write_text(json.dumps(payload))
    assert verify(copied["result.json"]).exit_code == 0
    torch.manual_seed(1)  # another model under the same name, as when a job silently reran
    save_checkpoint(copied["clf.pt"], kind="classifier", arch="magnet", model=MagNetClassifier(), config={})
    result = verify(copied["result.json"])
    assert result.exit_code == 1
    assert f"MISMATCH  {copied['result.json']}: classifier {copied['clf.pt']} has changed" in result.output
    assert "1 mismatched" in result.output


def test_a_corrupted_set_fails_with_one_line(chain, tmp_path):
    _, files = chain
    broken = tmp_path / "adv.h5"
    with h5py.File(files["adv.h5"]) as handle:
        offset = handle["x_adv"].id.get_chunk_info(0).byte_offset
    data = bytearray(files["adv.h5"].read_bytes())
    data[offset + 100] ^= 0xFF  # inside the first compressed chunk of adversarial images
    broken.write_bytes(bytes(data))
    result = verify(broken)
    assert result.exit_code == 65
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("madvae: error:") and str(broken) in lines[0], result.output


def test_a_foreign_json_is_refused(tmp_path):
    path = tmp_path / "other.json"
    path.write_text('{"hello": 1}')
    result = verify(path)
    assert result.exit_code == 65 and "not a madvae result" in result.output
