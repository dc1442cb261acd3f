"""What the timed sections share: their sizes (DEFAULT, QUICK), the inputs they are run on (Context) and the
attack settings they time."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from madvae.checkpoint import load_checkpoint, save_checkpoint
from madvae.generate import make_adversarial_set, make_clean_set
from madvae.models import DefenseVAE, place
from madvae.store import open_set
from madvae.train_classifier import train_classifier

OVERPOWERED = {"norm": 2.5, "noise_samples": 4}  # one norm of the paper's four, the quick preset's draws
# eot as the embedded default runs it against a defense: the quick cut's 2 draws of the 4-sample defense
ADAPTIVE_EOT = {"eot_samples": 2, "samples": 4}
ADAPTIVE_STEPS = 2


@dataclass(frozen=True)
class Sizes:
    """Images per timed pass of each section. DEFAULT took 9 minutes on 2 idle CPU cores (23 beside other work at
    load average 3-4, every figure 2-6x slower); QUICK is a smoke run (a few minutes at most), too small for
    figures worth comparing."""
    batch: int  # images per batch, both sides
    repeats: int  # timed repeats of the cheap sections (median); the slow attacks are timed once
    vae_repeats: int  # rounds of VAE training, ours and the reference in turn (a warm-up + a timed epoch)
    classifier: int  # images per timed classifier-training epoch
    vae: int  # images per timed VAE-training epoch
    attack: int  # images per pass of FGSM, R-FGSM and evaluation (mnist-5k test has 1,000)
    iterative: int  # images per pass of CW, MI-FGSM and PGD (a full batch: on a CPU 500 run 1.5x slower than 128)
    cw_iterations: int
    pixel: int  # single pixel: advertorch runs one forward pass per image and candidate pixel
    overpowered: int
    overpowered_steps: int
    umap: int
    adaptive: int  # images per pass of each adaptive attack (madvae attack's batch there is 250)
    numerics: int  # images in each numerics check (it doubles as the warm-up); single pixel uses pixel // 4
    classifier_fit: int  # images the attacked MagNet is trained on (one epoch)


DEFAULT = Sizes(batch=512, repeats=3, vae_repeats=3, classifier=1024, vae=1024, attack=512, iterative=512,
                cw_iterations=10, pixel=16, overpowered=64, overpowered_steps=3, umap=3000, adaptive=250, numerics=32,
                classifier_fit=4000)
QUICK = Sizes(batch=64, repeats=1, vae_repeats=1, classifier=128, vae=64, attack=64, iterative=8,
              cw_iterations=3, pixel=4, overpowered=8, overpowered_steps=2, umap=200, adaptive=8, numerics=8,
              classifier_fit=512)


class Context:
    """Inputs shared by the sections, each made on first use in ``folder``: the mnist-5k train and test sets,
    a MagNet trained for one epoch, an FGSM training set and an untrained (seeded) VAE checkpoint."""

    def __init__(self, folder: Path, device: torch.device, sizes: Sizes):
        self.folder, self.device, self.sizes = Path(folder), device, sizes

    @cached_property
    def train_set(self) -> Path:
        make_clean_set(self.folder / "train.h5", dataset="mnist-5k", split="train")
        return self.folder / "train.h5"

    @cached_property
    def test_set(self) -> Path:
        make_clean_set(self.folder / "test.h5", dataset="mnist-5k", split="test")
        return self.folder / "test.h5"

    @cached_property
    def classifier(self) -> Path:
        path = self.folder / "magnet.pt"
        train_classifier(self.train_set, path, epochs=1, limit=self.sizes.classifier_fit, device=str(self.device),
                         progress=False)
        return path

    @cached_property
    def pairs(self) -> Path:
        path = self.folder / "fgsm.h5"
        make_adversarial_set(path, input_path=self.train_set, classifier_path=self.classifier, attack="fgsm",
                             preset="train-0", device=str(self.device), batch_size=self.sizes.batch,
                             limit=max(self.sizes.vae, self.sizes.numerics), progress=False)
        return path

    @cached_property
    def vae(self) -> Path:
        torch.manual_seed(0)
        path = self.folder / "vae.pt"
        save_checkpoint(path, kind="vae", arch="defense-vae", model=DefenseVAE(), config={"note": "untrained"})
        return path

    def plain(self, path, model: torch.nn.Module, channels_last: bool = False) -> torch.nn.Module:
        """The reference's copy of a checkpoint: same weights, nothing frozen, eval mode, default layout (or ours'
        for the second numerics check, bench.common.check)."""
        model.load_state_dict(load_checkpoint(path).state_dict)
        return (place(model, self.device) if channels_last else model.to(self.device)).eval()

    def arrays(self, path, n: int, names) -> list[np.ndarray]:
        with open_set(path) as reader:
            batch = reader.read(0, min(n, len(reader)), names)
        return [batch[name] for name in names]

    def tensors(self, path, n: int, names) -> list[torch.Tensor]:
        return [torch.from_numpy(a).to(self.device) for a in self.arrays(path, n, names)]
