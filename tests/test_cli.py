"""The CLI end to end on small sets, and every bad input the foundation issue names."""
import subprocess
import sys

import h5py
import pytest
import torch
from typer.testing import CliRunner

from tests.legacy_checkpoints import as_legacy
from madvae.checkpoint import save_checkpoint
from madvae.cli import app
from madvae.models import DefenseVAE, build

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_clean_failure(result, out, *needles):
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("madvae: error:") and "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")], "temp file left behind"


def test_gen_clean_then_attack_then_inspect(tmp_path, random_classifier):
    clean = tmp_path / "clean.h5"
    result = invoke("gen", "--attack", "none", "--dataset", "mnist-5k", "--split", "test", "--limit", "20",
                    "--out", clean)
    assert result.exit_code == 0, result.stderr
    adv = tmp_path / "fgsm.h5"
    result = invoke("gen", "--attack", "fgsm", "--input", clean, "--classifier", random_classifier,
                    "--param", "eps=0.2", "--out", adv, "--no-progress")
    assert result.exit_code == 0, result.stderr
    assert "fgsm (test) on 20 images" in result.stdout
    result = invoke("inspect", adv)
    assert result.exit_code == 0
    assert "attack fgsm" in result.stdout and '"eps": 0.2' in result.stdout and "L-inf" in result.stdout
    linf_max = float(result.stdout.split("L-inf mean ")[1].split("max ")[1].split(";")[0])
    assert 0.19 < linf_max <= 0.2 + 1e-6
    result = invoke("inspect", random_classifier)
    assert result.exit_code == 0 and "classifier checkpoint, arch magnet" in result.stdout


@pytest.fixture()
def bad_inputs(tmp_path, clean_test_set):
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(clean_test_set.read_bytes()[:3000])
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = [1, 2, 3]
    incomplete = tmp_path / "incomplete.h5"
    incomplete.write_bytes(clean_test_set.read_bytes())
    with h5py.File(incomplete, "r+") as f:
        del f.attrs["complete"]
    wrong_shape = tmp_path / "wrong_shape.h5"
    wrong_shape.write_bytes(clean_test_set.read_bytes())
    with h5py.File(wrong_shape, "r+") as f:
        del f["x_clean"]
        f["x_clean"] = torch.rand(64, 3, 32, 32).numpy()
    vae = save_checkpoint(tmp_path / "vae.pt", kind="vae", arch="defense-vae", model=DefenseVAE(), config={})
    mislabelled = tmp_path / "mislabelled.pt"
    as_legacy(save_checkpoint(tmp_path / "a.pt", kind="classifier", arch="A", model=build("classifier", "A"),
                              config={}), mislabelled, arch="magnet")
    evil = tmp_path / "evil.pt"
    evil.write_bytes(b"\x80\x04\x95\x1c\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06system\x94\x93\x94"
                     b"\x8c\x04true\x94\x85\x94R\x94.")
    return locals()


CASES = {
    "missing-input": (["--input", "{tmp_path}/nope.h5"], ["nope.h5", "no such file"]),
    "truncated": (["--input", "{truncated}"], ["truncated.h5", "not a readable HDF5"]),
    "foreign": (["--input", "{foreign}"], ["foreign.h5", "not a madvae set"]),
    "incomplete": (["--input", "{incomplete}"], ["incomplete.h5", "incomplete"]),
    "wrong-shape": (["--input", "{wrong_shape}"], ["wrong_shape.h5", "shape"]),
    "vae-as-classifier": (["--classifier", "{vae}"], ["vae.pt", "a classifier is expected"]),
    "wrong-arch": (["--classifier", "{mislabelled}"], ["mislabelled.pt", "do not fit"]),
    "pickle": (["--classifier", "{evil}"], ["evil.pt", "unsafe pickle"]),
    "negative-eps": (["--param", "eps=-0.3"], ["eps=-0.3", "out of range"]),
    "eps-above-one": (["--param", "eps=1.3"], ["eps=1.3", "out of range"]),
    "unknown-param": (["--param", "confidence=3"], ["no parameter 'confidence'"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_gen_bad_input(case, tmp_path, bad_inputs, clean_test_set, random_classifier):
    overrides, needles = CASES[case]
    options = {"--input": str(clean_test_set), "--classifier": str(random_classifier)}
    extra = []
    for flag, value in zip(overrides[::2], overrides[1::2]):
        value = value.format(**bad_inputs)
        if flag in options:
            options[flag] = value
        else:
            extra += [flag, value]
    out = tmp_path / "out" / "adv.h5"
    out.parent.mkdir()
    args = ["gen", "--attack", "fgsm", "--out", out, "--no-progress", *extra]
    for flag, value in options.items():
        args += [flag, value]
    assert_clean_failure(invoke(*args), out, *[n.format(**bad_inputs) for n in needles])


def test_classifier_bad_input(tmp_path, bad_inputs, clean_test_set):
    out = tmp_path / "c.pt"
    assert_clean_failure(invoke("classifier", "--train", bad_inputs["incomplete"], "--out", out), out, "incomplete")
    assert_clean_failure(invoke("inspect", bad_inputs["evil"]), tmp_path / "none", "unsafe pickle")


@pytest.mark.parametrize("args,needle", [
    (["gen", "--attack", "deepfool", "--out", "x.h5"], "'deepfool' is not one of"),
    (["classifier", "--arch", "F", "--train", "t.h5", "--out", "c.pt"], "'F' is not one of"),
    (["classifier", "--train", "t.h5", "--out", "c.pt", "--epochs", "0"], "--epochs"),
])
def test_usage_errors_are_one_line(tmp_path, args, needle):
    proc = subprocess.run([sys.executable, "-m", "madvae", *args], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert list(tmp_path.iterdir()) == []
