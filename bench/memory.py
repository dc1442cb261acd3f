"""Opt-in section (`bench/run.py --memory`): peak RSS of VAE training over 540,000 Fashion-MNIST pairs against
54,000 (times --memory-scale); it must stay within 1.5x while the training data grows 10x.

The sets are 9 adversarial sets of the Fashion-MNIST training images, written by `madvae gen`'s own code
(make_adversarial_set -> SetWriter): FGSM, R-FGSM with Gaussian noise (the MAD-VAE code's) and R-FGSM with
sign noise (Defense-VAE's) at eps 0.25 / 0.30 / 0.35. They stand in for the paper's FGSM / R-FGSM / CW grid
because CW at 1,500 iterations takes hours on a CPU; the attacked MagNet is untrained (seeded), which makes no
difference to memory. Building 540,000 pairs takes a while: --memory-dir keeps the sets for the next run.

Each measurement runs in its own wrapper process, which reads getrusage(RUSAGE_CHILDREN).ru_maxrss after its
one child exits (the peak of that child alone; in this process it would be the peak of every child so far).
`madvae train` cannot stop after a few batches (--limit caps the images of every set, which would make the two
sizes equal), so by default the child streams a whole epoch of both sets through madvae.stream.shuffled_batches
and runs madvae.train.train_step on the first --memory-batches batches; --memory-full runs `madvae train` for
one full epoch instead, and --memory-train-seconds S runs `madvae train` itself until SIGTERM after S seconds
(what a SLURM time limit does; it covers the command's start: hashing every set, opening, streaming, training).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
FULL_PAIRS = 60_000  # Fashion-MNIST training images per set
SETTINGS = [(attack, f"train-{i}", overrides, f"{tag}-{i}")
            for attack, overrides, tag in (("fgsm", [], "fgsm"), ("rfgsm", [], "rfgsm"),
                                           ("rfgsm", ["noise=sign"], "rfgsm-sign"))
            for i in range(3)]
# argv: SECONDS COMMAND...; SECONDS > 0 sends SIGTERM after that long (how SLURM ends a job; madvae train saves
# its state and exits), and the exit status is then not checked
WRAPPER = ("import resource, signal, subprocess, sys\n"
           "seconds, command = float(sys.argv[1]), sys.argv[2:]\n"
           "child = subprocess.Popen(command, stdout=subprocess.DEVNULL)\n"
           "try:\n"
           "    rc = child.wait(timeout=seconds or None)\n"
           "except subprocess.TimeoutExpired:\n"
           "    child.send_signal(signal.SIGTERM)\n"
           "    child.wait()\n"
           "    rc = 0\n"
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"  # kilobytes on Linux
           "sys.exit(rc)\n")


def build_sets(folder: Path, per_set: int, device: str) -> list[Path]:
    """The 9 sets of ``per_set`` pairs each; sets already in ``folder`` are reused (they appear only when
    complete)."""
    from madvae.checkpoint import save_checkpoint
    from madvae.generate import make_adversarial_set
    from madvae.models import MagNetClassifier

    clean = folder / f"fashion-train-{per_set}.h5"
    if not clean.exists():
        write_training_images(clean, per_set)
    classifier = folder / "magnet-untrained.pt"
    if not classifier.exists():
        torch.manual_seed(0)
        save_checkpoint(classifier, kind="classifier", arch="magnet", model=MagNetClassifier(),
                        config={"note": "untrained: a memory test needs pairs, not strong attacks"})
    paths = []
    for attack, preset, overrides, tag in SETTINGS:
        path = folder / f"{tag}-{per_set}.h5"
        if not path.exists():
            print(f"  building {path.name}", flush=True)
            make_adversarial_set(path, input_path=clean, classifier_path=classifier, attack=attack, preset=preset,
                                 overrides=overrides, device=device, batch_size=512, progress=False)
        paths.append(path)
    return paths


def write_training_images(out: Path, n: int) -> None:
    """The first ``n`` of all 60,000 Fashion-MNIST training images: madvae's train split holds out a validation
    part, which the issue's 60,000 x 9 count includes."""
    import numpy as np

    from madvae.data import SPLITS, load_source
    from madvae.store import SetWriter

    parts = [load_source("fashion-mnist", split) for split in ("train", "val") if split in SPLITS]
    images, labels = (np.concatenate(arrays)[:n] for arrays in zip(*parts))
    with SetWriter(out, len(labels), dataset="fashion-mnist", split="train", seed=0,
                   provenance={"source": "fashion-mnist", "note": "bench/memory.py: train and val splits"}) as writer:
        for start in range(0, len(labels), 4096):
            writer.write(images[start:start + 4096], labels[start:start + 4096])


def peak_rss_mb(command: list[str], seconds: float = 0.0) -> float:
    done = subprocess.run([sys.executable, "-c", WRAPPER, str(seconds), *command], capture_output=True, text=True,
                          cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} ... failed: {done.stderr.strip()[-500:]}")
    return int(done.stdout.split()[-1]) / 1024


def run(*, scale: float, full: bool, batches: int, batch_size: int, device: str, folder: Path | None,
        train_seconds: float = 0.0) -> dict:
    from madvae.data import load_source
    from madvae.errors import MadvaeError

    if not 0 < scale <= 1:
        raise ValueError("--memory-scale must be in (0, 1]")
    try:
        load_source("fashion-mnist", "test")  # the small split: only checks that the IDX files are there
    except MadvaeError as exc:
        return {"skipped": f"no Fashion-MNIST: {exc}"}
    large = max(10, round(FULL_PAIRS * scale))
    small = large // 10
    keep = folder is not None
    folder = Path(folder) if keep else Path(tempfile.mkdtemp(prefix="madvae-bench-memory-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        peaks = {}
        for label, per_set in (("small", small), ("large", large)):
            paths = build_sets(folder, per_set, device)
            if full or train_seconds:
                command = [sys.executable, "-m", "madvae", "train", *map(str, paths), "--out",
                           str(folder / f"vae-{label}.pt"), "--loss", "vanilla", "--epochs", "1", "--batch-size",
                           str(batch_size), "--device", device, "--no-progress"]
            else:
                command = [sys.executable, "-m", "bench.memory", "--batches", str(batches), "--batch-size",
                           str(batch_size), "--device", device, *map(str, paths)]
            peaks[label] = peak_rss_mb(command, 0.0 if full else train_seconds)
            for leftover in [folder / f"vae-{label}{suffix}" for suffix in
                             (".pt", ".train.csv", ".steps.csv", ".pt.resume.pt")]:
                leftover.unlink(missing_ok=True)  # --memory-full's checkpoint: only the sets are worth keeping
            print(f"  peak RSS, {per_set * len(paths):,} pairs: {peaks[label]:,.0f} MB", flush=True)
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
    growth = peaks["large"] / peaks["small"]
    mode = ("madvae train, one full epoch" if full else
            f"madvae train, stopped by SIGTERM after {train_seconds:g} s" if train_seconds else
            f"one epoch streamed through shuffled_batches, train_step on the first {batches} batches")
    return {"mode": mode, "scale": scale, "pairs_small": small * len(SETTINGS), "pairs_large": large * len(SETTINGS),
            "peak_rss_mb_small": peaks["small"], "peak_rss_mb_large": peaks["large"], "growth": growth,
            "flat": growth <= 1.5, "batch_size": batch_size, "device": device,
            "sets": [tag for *_, tag in SETTINGS],
            "perturbation": "FGSM, R-FGSM (Gaussian noise) and R-FGSM (sign noise) at eps 0.25/0.30/0.35 "
                            "against an untrained MagNet"}


def _stream(paths, batches: int, batch_size: int, device: str) -> None:
    """The child: a whole epoch through shuffled_batches, train_step on the first ``batches`` batches."""
    from madvae.losses import LossWeights
    from madvae.models import DefenseVAE, place
    from madvae.store import open_set
    from madvae.stream import shuffled_batches
    from madvae.train import train_step
    from madvae.util import resolve_device

    dev = resolve_device(device)
    readers = [open_set(path) for path in paths]
    model = place(DefenseVAE(), dev).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for index, batch in enumerate(shuffled_batches(readers, batch_size, seed=0, epoch=0,
                                                   names=["x_clean", "x_adv", "y"])):
        if index < batches:
            x_adv, x_clean, y = (torch.from_numpy(batch[k]).to(dev) for k in ("x_adv", "x_clean", "y"))
            train_step(model, optimizer, x_adv, x_clean, y, loss="vanilla", weights=LossWeights())
    for reader in readers:
        reader.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="memory child: stream sets as madvae train does")
    parser.add_argument("sets", nargs="+")
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--device", default="cpu")
    cli = parser.parse_args()
    _stream(cli.sets, cli.batches, cli.batch_size, cli.device)
