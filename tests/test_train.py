"""`madvae train`: training lowers the loss, a killed run resumes bit-identically, bad input fails in one line."""
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from madvae.checkpoint import load_checkpoint, save_checkpoint
from madvae.cli import app
from madvae.errors import MadvaeError
from madvae.losses import reconstruction_loss
from madvae.models import DefenseVAE, MagNetClassifier
from madvae.store import open_set, write_set
from madvae.train import load_vae, log_path_for, resume_path_for, steps_log_path_for, train_vae
from madvae.util import seed_everything

SHA = "ab" * 32
runner = CliRunner()


def make_set(path, n=64, *, adversarial=True, dataset="mnist", seed=0, split="train"):
    """Bars whose row depends on the label, plus uniform noise as the 'adversarial' version."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    x = np.zeros((n, 1, 28, 28), np.float32)
    for i, label in enumerate(y):
        x[i, 0, 2 * label:2 * label + 8, 4:24] = 1.0
    if not adversarial:
        return write_set(path, x, y, dataset=dataset, split=split, attack="none", seed=seed)
    adv = np.clip(x + rng.uniform(-0.3, 0.3, x.shape), 0, 1).astype(np.float32)
    return write_set(path, x, y, adv, dataset=dataset, split=split, attack="fgsm", params={"eps": 0.3},
                     seed=seed, source_classifier_sha256=SHA)


@pytest.fixture(scope="module")
def adv_set(tmp_path_factory):
    return make_set(tmp_path_factory.mktemp("sets") / "adv.h5")


def _recon_loss(model, path):
    with open_set(path) as reader, torch.no_grad():
        batch = reader.read(0, len(reader))
        model.train()  # batch statistics, as during training; the posterior mean keeps it noise-free
        recon = model(torch.from_numpy(batch["x_adv"]), sample=False)[0]
        return reconstruction_loss(recon, torch.from_numpy(batch["x_clean"])).item()


def test_one_epoch_lowers_the_loss_and_writes_checkpoint_and_log(adv_set, tmp_path):
    classifier = tmp_path / "clf.pt"
    save_checkpoint(classifier, kind="classifier", arch="magnet", model=MagNetClassifier(), config={})
    out = tmp_path / "vae.pt"
    seed_everything(0)
    before = _recon_loss(DefenseVAE(), adv_set)  # the same initial weights train_vae starts from
    info = train_vae([adv_set], out, loss="combined", classifier_path=classifier, epochs=1, batch_size=16,
                     device="cpu", progress=False)
    ckpt = load_checkpoint(out, expect_kind="vae")
    assert _recon_loss(ckpt.build_model(), adv_set) < before
    assert ckpt.config["loss"] == "combined" and ckpt.config["gamma"] == 0.1 and ckpt.config["sigma"] == 1e-5
    assert set(ckpt.extra) == {"proximity_centres", "distance_centres"}
    assert ckpt.extra["proximity_centres"].shape == (10, 128)
    assert ckpt.meta["n_train"] == 64 and ckpt.meta["dataset"] == "mnist"
    assert len(ckpt.meta["training_sets"][0]["sha256"]) == 64 and ckpt.meta["classifier_sha256"]
    assert info["history"][0]["epoch"] == 1
    log = log_path_for(out).read_text().splitlines()
    assert log[0].startswith("epoch,reconstruction,kl,classification,proximity,distance,total")
    assert len(log) == 2
    steps = steps_log_path_for(out).read_text().splitlines()  # 4 batches of 16: one curve point each
    assert steps[0].startswith("epoch,images,reconstruction,kl,classification,proximity,distance,total")
    assert [line.split(",")[1] for line in steps[1:]] == ["16", "32", "48", "64"]
    assert not resume_path_for(out).exists()
    assert isinstance(load_vae(out), DefenseVAE)


def _train_cmd(set_path, out, *extra):
    return [sys.executable, "-m", "madvae", "train", str(set_path), "--out", str(out), "--epochs", "2",
            "--batch-size", "16", "--device", "cpu", "--no-progress", "--loss", "proximity-distance", *extra]


def _start(cmd):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # same thread count in every run: same float summation order
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_killed_run_resumes_bit_identically(tmp_path):
    small = make_set(tmp_path / "small.h5", n=32)  # 2 batches an epoch: quick, and time enough to kill
    straight, interrupted = tmp_path / "straight.pt", tmp_path / "interrupted.pt"
    reference = _start(_train_cmd(small, straight))  # in parallel with the run to be killed
    state = resume_path_for(interrupted)
    proc = _start(_train_cmd(small, interrupted))
    deadline = time.monotonic() + 100
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert state.exists() and not interrupted.exists(), "the run ended before it could be killed after epoch 1"
    assert torch.load(state, weights_only=True)["epoch"] == 1

    forgot = runner.invoke(app, _train_cmd(small, interrupted)[3:])  # same options in-process, no --resume
    assert forgot.exit_code == 2 and "--resume" in forgot.stderr and len(forgot.stderr.splitlines()) == 1
    changed = runner.invoke(app, _train_cmd(small, interrupted, "--resume", "--seed", "1")[3:])
    assert changed.exit_code == 2 and "different configuration" in changed.stderr and "seed" in changed.stderr
    assert state.exists()
    resumed = _start(_train_cmd(small, interrupted, "--resume"))
    assert resumed.wait(timeout=120) == 0, resumed.stderr.read()
    assert reference.wait(timeout=120) == 0, reference.stderr.read()
    assert not state.exists()

    a, b = load_checkpoint(straight), load_checkpoint(interrupted)
    assert a.state_dict.keys() == b.state_dict.keys()
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    assert all(torch.equal(a.extra[k], b.extra[k]) for k in ("proximity_centres", "distance_centres"))
    assert b.meta["resumed_from_epoch"] == 1
    assert [h["total"] for h in a.meta["history"]] == [h["total"] for h in b.meta["history"]]



def _fails_cleanly(args, out, *needles, code=65):
    """One line on stderr and the exit code: 65 for a bad input file, 2 for a usage error (madvae.errors)."""
    result = runner.invoke(app, ["train", *map(str, args), "--out", str(out), "--device", "cpu", "--no-progress"])
    assert result.exit_code == code, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("madvae: error: ")
    for needle in needles:
        assert needle in result.stderr
    assert not out.exists() and not resume_path_for(out).exists()
    return result.stderr


def test_vae_checkpoint_given_as_classifier(adv_set, tmp_path):
    vae = tmp_path / "vae-as-clf.pt"
    save_checkpoint(vae, kind="vae", arch="defense-vae", model=DefenseVAE(), config={})
    _fails_cleanly([adv_set, "--loss", "classification", "--classifier", vae], tmp_path / "o.pt",
                   "a classifier is expected", str(vae))


def test_classifier_checkpoint_given_as_vae(tmp_path):
    clf = tmp_path / "clf.pt"
    save_checkpoint(clf, kind="classifier", arch="magnet", model=MagNetClassifier(), config={})
    with pytest.raises(MadvaeError, match="a vae is expected"):
        load_vae(clf)


def test_classification_loss_without_classifier(adv_set, tmp_path):
    _fails_cleanly([adv_set, "--loss", "classification"], tmp_path / "o.pt", "--classifier", code=2)


def test_mixed_datasets_name_both_files(adv_set, tmp_path):
    fashion = make_set(tmp_path / "fashion.h5", n=8, dataset="fashion-mnist")
    _fails_cleanly([adv_set, "--set", fashion], tmp_path / "o.pt", str(adv_set), str(fashion), "fashion-mnist")


def test_clean_set_needs_identity_loss(tmp_path):
    clean = make_set(tmp_path / "clean.h5", n=8, adversarial=False)
    _fails_cleanly([clean, "--loss", "vanilla"], tmp_path / "o.pt", "clean set", "identity")


def test_no_set_given(tmp_path):
    _fails_cleanly([], tmp_path / "o.pt", "no training set", code=2)


def test_a_test_split_set_is_refused(adv_set, tmp_path):
    """Training on test images would leak them into the purifier the test tables then score."""
    adv = make_set(tmp_path / "adv-test.h5", n=8, split="test")
    _fails_cleanly([adv_set, "--set", adv], tmp_path / "o.pt", str(adv), "test split")
    clean = make_set(tmp_path / "clean-test.h5", n=8, adversarial=False, split="test")
    _fails_cleanly([clean, "--loss", "identity"], tmp_path / "o.pt", str(clean), "test split")


def test_centre_learning_rates_decay_per_epoch_as_the_original(tmp_path, monkeypatch):
    """MinExponentialLR(gamma 0.1, minimum 1e-5) on both centre optimisers, stepped each epoch; decay 1 keeps
    them. Read from the resume state a SIGTERM leaves in epoch 3, i.e. after two epochs."""
    import madvae.train as train_module
    from madvae.errors import Interrupted

    data = make_set(tmp_path / "d.h5", n=16)  # 2 batches of 8 an epoch
    real = train_module.shuffled_batches

    def terminated_in_epoch_3(*args, epoch, **kwargs):
        for index, batch in enumerate(real(*args, epoch=epoch, **kwargs)):
            if epoch == 2 and index == 0:
                os.kill(os.getpid(), signal.SIGTERM)
            yield batch

    monkeypatch.setattr(train_module, "shuffled_batches", terminated_in_epoch_3)
    options = dict(loss="proximity-distance", epochs=3, batch_size=8, device="cpu", progress=False)
    expected = {None: {"proximity_centres": 0.005, "distance_centres": 1e-5},
                1.0: {"proximity_centres": 0.5, "distance_centres": 1e-4}}
    for decay, rates in expected.items():
        out = tmp_path / f"vae-{decay}.pt"
        with pytest.raises(Interrupted):
            train_vae([data], out, **options, **({} if decay is None else {"centre_lr_decay": decay}))
        state = torch.load(resume_path_for(out), weights_only=True)
        assert state["epoch"] == 2
        found = {name: opt["param_groups"][0]["lr"] for name, opt in state["centre_optimizers"].items()}
        assert found == pytest.approx(rates), decay
        assert set(state["centre_schedulers"]) == set(rates)
    # the decay is part of the run: resuming the decay-1 state under the default is refused
    with pytest.raises(MadvaeError, match="centre_lr_decay"):
        train_vae([data], tmp_path / "vae-1.0.pt", resume=True, **options)
    monkeypatch.setattr(train_module, "shuffled_batches", real)
    train_vae([data], tmp_path / "vae-None.pt", resume=True, **options)
    config = load_checkpoint(tmp_path / "vae-None.pt").config
    assert (config["centre_lr_decay"], config["centre_lr_floor"]) == (0.1, 1e-5)


def test_empty_set_is_refused(adv_set, tmp_path):
    with pytest.raises(MadvaeError, match="empty set"):
        make_set(tmp_path / "never.h5", n=0)
    empty = tmp_path / "empty.h5"
    with h5py.File(adv_set, "r") as src, h5py.File(empty, "w") as dst:  # the real format, with n = 0
        for key, value in src.attrs.items():
            dst.attrs[key] = value
        dst.attrs["n"] = 0
        for name in ("x_clean", "x_adv", "y"):
            ds = dst.create_dataset(name, shape=(0, *src[name].shape[1:]), dtype=src[name].dtype)
            ds.attrs["min"], ds.attrs["max"] = src[name].attrs["min"], src[name].attrs["max"]
    _fails_cleanly([empty], tmp_path / "o.pt", str(empty), "0 samples")


def test_sigterm_mid_epoch_saves_state_and_resume_matches_a_straight_run(tmp_path, monkeypatch):
    """What SLURM does at a time limit or preemption: SIGTERM, then the kill. The run saves its state after the
    batch in progress, and --resume continues from that batch to the same weights as an uninterrupted run."""
    import madvae.train as train_module
    from madvae.errors import Interrupted

    data = make_set(tmp_path / "d.h5", n=32)  # 4 batches of 8 an epoch
    options = dict(loss="proximity-distance", epochs=2, batch_size=8, device="cpu", progress=False)
    train_vae([data], tmp_path / "straight.pt", **options)

    real = train_module.shuffled_batches

    def terminated_in_epoch_2(*args, epoch, **kwargs):
        for index, batch in enumerate(real(*args, epoch=epoch, **kwargs)):
            if epoch == 1 and index == 2:
                os.kill(os.getpid(), signal.SIGTERM)  # arrives while batch 3 of epoch 2 is trained
            yield batch

    monkeypatch.setattr(train_module, "shuffled_batches", terminated_in_epoch_2)
    out = tmp_path / "stopped.pt"
    with pytest.raises(Interrupted, match="epoch 2, after batch 3"):
        train_vae([data], out, **options)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is removed again
    state = torch.load(resume_path_for(out), weights_only=True)
    assert (state["epoch"], state["batch"]) == (1, 3) and not out.exists()

    monkeypatch.setattr(train_module, "shuffled_batches", real)
    train_vae([data], out, resume=True, **options)
    a, b = load_checkpoint(tmp_path / "straight.pt"), load_checkpoint(out)
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    assert all(torch.equal(a.extra[k], b.extra[k]) for k in a.extra)
    assert [h["total"] for h in a.meta["history"]] == [h["total"] for h in b.meta["history"]]
    assert [h["steps"] for h in a.meta["history"]] == [h["steps"] for h in b.meta["history"]]  # the same curve
    assert not resume_path_for(out).exists()


def test_sigterm_to_the_command_exits_requeueable_and_resume_finishes(tmp_path):
    data = make_set(tmp_path / "d.h5", n=64)
    out = tmp_path / "vae.pt"
    command = _train_cmd(data, out) + ["--batch-size", "4", "--epochs", "3"]
    proc = _start(command)
    deadline = time.monotonic() + 100
    while not resume_path_for(out).exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGTERM)  # during epoch 2 (16 batches)
    assert proc.wait(timeout=60) == 75, proc.stderr.read()
    message = proc.stderr.read().strip().splitlines()
    assert len(message) == 1 and message[0].startswith("madvae: interrupted:") and "--resume" in message[0]
    assert torch.load(resume_path_for(out), weights_only=True)["batch"] > 0 and not out.exists()
    resumed = _start(command + ["--resume"])
    assert resumed.wait(timeout=120) == 0, resumed.stderr.read()
    assert out.exists() and not resume_path_for(out).exists()
