"""Wrong-typed attributes and fields anywhere in a set, a checkpoint or a result JSON: arrays where scalars belong,
strings where numbers belong, lists where objects belong, the string "false" as `complete`, NaN, nesting 100,000
levels deep. Each is one line `madvae: error: FILE: attribute|field NAME: ...` with exit code 65 (no traceback, no
plausible number), and the file is left as it was."""
from __future__ import annotations

import hashlib
import json
import shutil

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from madvae.checkpoint import read_payload
from madvae.checkpoint import save_checkpoint
from madvae.cli import app
from madvae.evaluate.stored import evaluate_set
from madvae.models import DefenseVAE
from madvae.store import write_set

DEEP = 100_000  # levels: Python's own JSON parser gives up (RecursionError) long before
NESTED_200 = "[" * 200 + "]" * 200  # parses; still far beyond any madvae file


@pytest.fixture(scope="module")
def valid(tmp_path_factory, random_classifier):
    """A valid adversarial set, VAE checkpoint and whitebox result, each accepted by the command the cases run."""
    folder = tmp_path_factory.mktemp("valid")
    rng = np.random.default_rng(0)
    x = rng.random((8, 1, 28, 28), dtype=np.float32)
    adv = write_set(folder / "adv.h5", x, np.arange(8) % 10, x_adv=np.clip(x + 0.1, 0, 1), dataset="mnist-5k",
                    split="test", attack="fgsm", params={"eps": 0.1}, source_classifier_sha256="0" * 64)
    torch.manual_seed(0)
    vae = save_checkpoint(folder / "vae.pt", kind="vae", arch="defense-vae", model=DefenseVAE(),
                          config={"loss": "vanilla", "epochs": 1},
                          meta={"n_train": 8, "training_sets": [{"path": "t.h5", "sha256": "1" * 64, "n": 8}]})
    result = evaluate_set(adv, random_classifier, folder / "result.json", vae_path=vae, device="cpu", progress=False)
    assert result["metrics"]["defended"]
    return {"set": adv, "vae": vae, "result": folder / "result.json", "classifier": random_classifier}


def run(argv):
    outcome = CliRunner().invoke(app, [str(a) for a in argv])
    if outcome.exception is not None and not isinstance(outcome.exception, SystemExit):
        raise outcome.exception  # a traceback is a failure of its own
    return outcome


def assert_one_line(outcome, path, *needles):
    output = (outcome.stdout + outcome.stderr).strip()
    assert outcome.exit_code == 65, output
    lines = output.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"madvae: error: {path}: "), output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert len(lines[0]) < 400, lines[0]  # the value is abbreviated, never dumped


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- sets: `madvae inspect` opens and validates -------------------------------------------------------------------
SET_CASES = {
    "n-as-array": ({"n": np.array([8, 8])}, "attribute n: expected integer, got a list"),
    "seed-as-string": ({"seed": "7"}, "attribute seed: expected integer, got a string '7'"),
    "seed-as-float": ({"seed": 7.0}, "attribute seed: expected integer, got a number 7.0"),
    "complete-as-string-false": ({"complete": "false"}, "attribute complete: got a string 'false', expected true or 1"),
    "complete-as-array": ({"complete": np.array([True, True])}, "attribute complete: got a list"),
    "dataset-as-number": ({"dataset": 5}, "attribute dataset: expected string, got an integer 5"),
    "split-unknown": ({"split": "holdout"}, "attribute split: got a string 'holdout'"),
    "params-as-list": ({"params": "[1, 2]"}, "attribute params: expected object, got a list"),
    "params-value-an-object": ({"params": json.dumps({"eps": {"x": 1}})}, "attribute params.eps"),
    "params-not-json": ({"params": "{eps: 0.1"}, "attribute params is not valid JSON"),
    "params-nan": ({"params": '{"eps": NaN}'}, "attribute params is not valid JSON (NaN is not a JSON number)"),
    "params-nested-100000": ({"params": "[" * DEEP + "]" * DEEP}, "attribute params is nested too deeply"),
    "params-nested-200": ({"params": NESTED_200}, "attribute params is nested more than 32 levels"),
    "provenance-as-number": ({"provenance": "3"}, "attribute provenance: expected object, got an integer 3"),
    "provenance-input-set-a-list": ({"provenance": json.dumps({"input_set": ["a"]})},
                                    "attribute provenance.input_set: expected string"),
    "source-sha-as-array": ({"source_classifier_sha256": np.array([1, 2])},
                            "attribute source_classifier_sha256: expected string, got a list"),
}


@pytest.mark.parametrize("name", list(SET_CASES))
def test_wrong_typed_set_attribute_is_one_line(name, valid, tmp_path):
    attrs, needle = SET_CASES[name]
    bad = tmp_path / "bad.h5"
    shutil.copy(valid["set"], bad)
    with h5py.File(bad, "r+") as f:
        for key, value in attrs.items():
            f.attrs[key] = value
    before = digest(bad)
    assert_one_line(run(["inspect", bad]), bad, needle)
    assert digest(bad) == before


@pytest.mark.parametrize("value, needle", [("0", "attribute x_clean.min: expected number, got a string '0'"),
                                           (np.array([0.0, 0.5]), "attribute x_clean.min: expected number")])
def test_wrong_typed_dataset_attribute_is_one_line(value, needle, valid, tmp_path):
    bad = tmp_path / "bad.h5"
    shutil.copy(valid["set"], bad)
    with h5py.File(bad, "r+") as f:
        f["x_clean"].attrs["min"] = value
    assert_one_line(run(["inspect", bad]), bad, needle)


# -- checkpoints: `madvae attack --vae` loads the purifier --------------------------------------------------------
def _config(value):
    return lambda payload: payload.update(config=value)


def _meta(**fields):
    def change(payload):
        meta = json.loads(payload["meta"])
        meta.update(fields)
        payload["meta"] = json.dumps(meta)
    return change


CHECKPOINT_CASES = {
    "kind-as-list": (lambda p: p.update(kind=["vae"]), "field kind: got a list ['vae'], expected"),
    "arch-as-number": (lambda p: p.update(arch=3), "field arch: expected string, got an integer 3"),
    "config-as-list-json": (_config("[1, 2]"), "field config: expected object, got a list"),
    "config-not-a-string": (_config({"loss": "vanilla"}), "field config: expected a JSON string, got an object"),
    "config-nested-100000": (_config("[" * DEEP + "]" * DEEP), "field config is nested too deeply"),
    "config-epochs-as-string": (_config('{"loss": "vanilla", "epochs": "5"}'),
                                "field config.epochs: expected integer, got a string '5'"),
    "config-loss-as-list": (_config('{"loss": ["vanilla"]}'), "field config.loss: expected string, got a list"),
    "meta-n-train-as-string": (_meta(n_train="8"), "field meta.n_train: expected integer, got a string '8'"),
    "meta-training-sets-as-object": (_meta(training_sets={"path": "t.h5"}),
                                     "field meta.training_sets: expected array, got an object"),
    "meta-training-set-sha-as-number": (_meta(training_sets=[{"path": "t.h5", "sha256": 5}]),
                                        "field meta.training_sets[0].sha256: expected string"),
    "state-dict-value-a-string": (lambda p: p["state_dict"].update({"fc.weight": "weights"}),
                                  "field state_dict.fc.weight: expected tensor, got a string 'weights'"),
    "extra-as-list": (lambda p: p.update(extra=[1, 2]), "field extra: expected object, got a list"),
}


@pytest.mark.parametrize("name", list(CHECKPOINT_CASES))
def test_wrong_typed_checkpoint_field_is_one_line(name, valid, tmp_path):
    change, needle = CHECKPOINT_CASES[name]
    payload = {**read_payload(valid["vae"]), "format_version": 1}  # changed fields, written as format 1
    change(payload)
    bad = tmp_path / "bad.pt"
    torch.save(payload, bad)
    before = digest(bad)
    outcome = run(["attack", "--set", valid["set"], "--classifier", valid["classifier"], "--vae", bad,
                   "--device", "cpu", "--out", tmp_path / "r.json", "--no-progress"])
    assert_one_line(outcome, bad, needle)
    assert digest(bad) == before and not (tmp_path / "r.json").exists()


# -- result JSON: `madvae report` and `madvae inspect --verify` ---------------------------------------------------
def _set(dotted, value):
    def change(result):
        *parents, last = dotted.split(".")
        for part in parents:
            result = result[part]
        result[last] = value
    return change


RESULT_CASES = {
    "n-as-string": (_set("n", "8"), "field n: expected integer, got a string '8'"),
    "n-as-array": (_set("n", [8]), "field n: expected integer, got a list [8]"),
    "accuracy-as-string": (_set("metrics.defended.accuracy", "0.9"),
                           "field metrics.defended.accuracy: expected number, got a string '0.9'"),
    "metrics-as-list": (_set("metrics", [0.9]), "field metrics: expected object, got a list"),
    "metric-group-as-list": (_set("metrics.clean", [0.9, 1.0]), "field metrics.clean: expected object"),
    "defense-as-string": (_set("defense", "vanilla"), "field defense: expected object, got a string 'vanilla'"),
    "defense-name-as-number": (_set("defense.name", 1), "field defense.name: expected string"),
    "params-value-an-object": (_set("params.eps", {"value": 0.1}), "field params.eps"),
    "outcome-bits-as-number": (_set("outcomes.correct.clean", 255), "field outcomes.correct.clean"),
    "kind-as-list": (_set("kind", ["whitebox"]), "field kind: got a list ['whitebox'], expected"),
    "training-sets-as-object": (_set("defense.training.sets", {}), "field defense.training.sets: expected array"),
    "transfer-as-string": (_set("transfer", "false"), "field transfer: expected boolean, got a string 'false'"),
    "split-unknown": (_set("split", "holdout"), "field split: got a string 'holdout'"),
}


@pytest.mark.parametrize("command", ["report", "verify"])
@pytest.mark.parametrize("name", list(RESULT_CASES))
def test_wrong_typed_result_field_is_one_line(name, command, valid, tmp_path):
    change, needle = RESULT_CASES[name]
    result = json.loads(valid["result"].read_text())
    change(result)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(result))
    argv = (["report", bad, "--out-dir", tmp_path / "tables"] if command == "report"
            else ["inspect", "--verify", bad])
    assert_one_line(run(argv), bad, needle)
    assert not (tmp_path / "tables").exists()


@pytest.mark.parametrize("text, needle", [
    ('"deep": ' + "[" * DEEP + "]" * DEEP + ",", "file is nested too deeply"),
    ('"deep": ' + NESTED_200 + ",", "file is nested more than 32 levels"),
    ('"n": NaN,', "NaN is not a JSON number"),
    ('"n": Infinity,', "Infinity is not a JSON number"),
])
def test_result_json_that_python_would_misread_is_one_line(text, needle, valid, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{" + text + valid["result"].read_text().lstrip()[1:])
    assert_one_line(run(["report", bad, "--out-dir", tmp_path / "tables"]), bad, needle)


def test_the_valid_files_pass_the_same_commands(valid, tmp_path):
    """The cases above fail only because of what they changed."""
    assert run(["inspect", valid["set"]]).exit_code == 0
    assert run(["report", valid["result"], "--out-dir", tmp_path / "tables"]).exit_code == 0
    outcome = run(["attack", "--set", valid["set"], "--classifier", valid["classifier"], "--vae", valid["vae"],
                   "--device", "cpu", "--out", tmp_path / "r.json", "--no-progress"])
    assert outcome.exit_code == 0, outcome.output
