"""What `--seed` makes reproducible (README, "The command line", Reproducibility), checked on a small pipeline.

Each run is a separate process, since torch's thread count is process-wide: clean sets, a MagNet trained for one
epoch, a forward pass, FGSM and PGD test sets, a vanilla purifier trained on an FGSM training set and its white-box
evaluation on the FGSM test set.

- Same seed, same machine, same thread count: every array of the sets, every tensor of the checkpoints and every
  metric of the result is bitwise identical (the files are not: they record when, how long and where).
- One thread against two, and the ATen / oneDNN / MKL kernels forced to AVX2 (a stand-in for another CPU): the
  classifier's logits agree within LOGIT_TOLERANCE of the largest logit and the attack sets differ in at most
  PIXEL_FRACTION_TOLERANCE of their pixels; trained weights do not agree bitwise across thread counts.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import madvae
from madvae.generate import make_clean_set

LOGIT_TOLERANCE = 1e-6  # max |logit difference| / max |logit|; measured 2.1e-7 (AVX2 against AVX-512)
# the fraction of an attack set's pixels that may differ; measured: FGSM 0, PGD up to 5.5e-3 (AVX2)
PIXEL_FRACTION_TOLERANCE = {"fgsm": 1e-3, "pgd": 2e-2}
AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}

WORKER = r'''
import json, sys
from pathlib import Path
import numpy as np, torch

threads, seed, folder = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
shared_classifier, mode = sys.argv[4], sys.argv[5]
torch.set_num_threads(threads)
from madvae.checkpoint import load_checkpoint, read_payload
from madvae.evaluate.stored import evaluate_set
from madvae.generate import make_adversarial_set
from madvae.store import open_set
from madvae.train import train_vae
from madvae.train_classifier import train_classifier

data = folder.parent
arrays, result = {}, {"threads": torch.get_num_threads(), "cpu": torch.backends.cpu.get_cpu_capability()}
def tensors(prefix, path):
    for name, tensor in read_payload(path)["state_dict"].items():
        arrays[f"{prefix}/{name}"] = tensor.numpy()
if mode == "full":
    meta = train_classifier(data / "train.h5", folder / "classifier.pt", test_path=data / "test.h5", epochs=1,
                            batch_size=32, seed=seed, device="cpu", progress=False)
    result["classifier_accuracy"] = meta["test_accuracy"]
    tensors("classifier", folder / "classifier.pt")
classifier = shared_classifier if shared_classifier != "-" else folder / "classifier.pt"
model = load_checkpoint(classifier, expect_kind="classifier").build_model("cpu")
with open_set(data / "test.h5") as reader, torch.no_grad():
    arrays["logits"] = model(torch.from_numpy(reader.read(0, len(reader), names=["x_clean"])["x_clean"])).numpy()
for attack, overrides in (("fgsm", []), ("pgd", ["nb_iter=10"])):
    make_adversarial_set(folder / f"{attack}.h5", input_path=data / "test.h5", classifier_path=classifier,
                         attack=attack, overrides=overrides, device="cpu", seed=seed, progress=False)
    with open_set(folder / f"{attack}.h5") as reader:
        arrays[attack] = reader.read(0, len(reader), names=["x_adv"])["x_adv"]
if mode == "full":
    make_adversarial_set(folder / "fgsm_train.h5", input_path=data / "train.h5", classifier_path=classifier,
                         attack="fgsm", preset="train-0", device="cpu", limit=64, seed=seed, progress=False)
    info = train_vae([folder / "fgsm_train.h5"], folder / "vae.pt", loss="vanilla", epochs=1, batch_size=32,
                     seed=seed, device="cpu", progress=False)
    result["vae_history"] = [{k: v for k, v in epoch.items() if k not in ("seconds", "images_per_s")}
                             for epoch in info["history"]]
    tensors("vae", folder / "vae.pt")
    result["metrics"] = evaluate_set(folder / "fgsm.h5", classifier, folder / "eval.json",
                                     vae_path=folder / "vae.pt", device="cpu", seed=seed, progress=False)["metrics"]
np.savez(folder / "arrays.npz", **arrays)
(folder / "result.json").write_text(json.dumps(result))
'''


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Four processes: "1-thread" (seed 0, its classifier is the shared one), "2-threads" and "2-threads-again"
    (seed 0), "avx2-kernels" (1 thread, AVX2 kernels, no training). The forward pass and the attacks of the
    last three use the first one's classifier, so that only the thread count or the kernels differ."""
    data = tmp_path_factory.mktemp("reproducibility")
    make_clean_set(data / "train.h5", dataset="mnist-5k", split="train", limit=256)
    make_clean_set(data / "test.h5", dataset="mnist-5k", split="test", limit=64)
    (data / "worker.py").write_text(WORKER)
    package_root = str(Path(madvae.__file__).resolve().parent.parent)  # the madvae this test imported

    def run(name, threads, *, shared="-", mode="full", env=None):
        folder = data / name
        folder.mkdir()
        environment = {**os.environ, "PYTHONPATH": package_root, "OMP_NUM_THREADS": str(threads),
                       "MKL_NUM_THREADS": str(threads), **(env or {})}
        subprocess.run([sys.executable, str(data / "worker.py"), str(threads), "0", str(folder), str(shared), mode],
                       check=True, env=environment, cwd=data, timeout=300)
        return {"arrays": dict(np.load(folder / "arrays.npz")),
                "result": json.loads((folder / "result.json").read_text())}

    runs = {"1-thread": run("1-thread", 1)}
    shared = data / "1-thread" / "classifier.pt"
    runs["2-threads"] = run("2-threads", 2, shared=shared)
    runs["2-threads-again"] = run("2-threads-again", 2, shared=shared)
    runs["avx2-kernels"] = run("avx2-kernels", 1, shared=shared, mode="forward", env=AVX2)
    return runs


def test_each_run_used_the_thread_count_it_was_given(runs):
    assert {name: run["result"]["threads"] for name, run in runs.items()} == {
        "1-thread": 1, "2-threads": 2, "2-threads-again": 2, "avx2-kernels": 1}


def test_same_seed_and_thread_count_give_bitwise_identical_arrays_tensors_and_metrics(runs):
    first, again = runs["2-threads"], runs["2-threads-again"]
    assert first["arrays"].keys() == again["arrays"].keys()
    assert any(key.startswith("classifier/") for key in first["arrays"])
    assert any(key.startswith("vae/") for key in first["arrays"])
    for key, array in first["arrays"].items():
        assert array.dtype == again["arrays"][key].dtype and array.tobytes() == again["arrays"][key].tobytes(), key
    assert first["result"] == again["result"]  # accuracy, loss terms per epoch, every metric of the evaluation


@pytest.mark.parametrize("other", ["2-threads", "avx2-kernels"])
def test_forward_pass_and_attack_sets_agree_within_the_stated_tolerance(runs, other):
    a, o = runs["1-thread"]["arrays"], runs[other]["arrays"]
    largest = float(np.abs(a["logits"]).max())
    assert float(np.abs(a["logits"] - o["logits"]).max()) <= LOGIT_TOLERANCE * largest
    assert (a["logits"].argmax(1) == o["logits"].argmax(1)).all()
    for attack, tolerance in PIXEL_FRACTION_TOLERANCE.items():
        assert float((a[attack] != o[attack]).mean()) <= tolerance, attack


def test_trained_weights_depend_on_the_thread_count(runs):
    """The README says trained models differ across thread counts (each batch's weight-gradient sums are split
    between threads). If a torch build ever makes them bitwise equal, this fails and the README should say so."""
    a, b = runs["1-thread"]["arrays"], runs["2-threads"]["arrays"]
    trained = [key for key in a if key.startswith(("classifier/", "vae/"))]
    assert any(not np.array_equal(a[key], b[key]) for key in trained)
