"""Training of the MagNet classifier and substitutes A-E on clean sets."""
from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from madvae.checkpoint import save_checkpoint
from madvae.errors import MadvaeError, UsageError
from madvae.defense import predict_labels
from madvae.models import build, place
from madvae.store import open_set
from madvae.stream import count_samples, shuffled_batches
from madvae.util import refuse_output_over_inputs, resolve_device, seed_everything, sha256_file, to_device

# original code: MagNet Adam 1e-3 batch 128; substitutes Adam 1e-3 batch 256, lr x0.95 per epoch
ARCH_DEFAULTS = {"magnet": {"batch_size": 128, "lr_decay": 1.0}}
SUBSTITUTE_DEFAULTS = {"batch_size": 256, "lr_decay": 0.95}


def train_classifier(train_path, out, *, test_path=None, arch: str = "magnet", epochs: int = 8,
                     batch_size: int | None = None, lr: float = 1e-3, lr_decay: float | None = None,
                     seed: int = 0, device: str = "auto", limit: int | None = None, progress: bool = True) -> dict:
    refuse_output_over_inputs({"--out": out}, {"training set": train_path, "test set": test_path})
    defaults = ARCH_DEFAULTS.get(arch, SUBSTITUTE_DEFAULTS)
    batch_size = batch_size or defaults["batch_size"]
    lr_decay = defaults["lr_decay"] if lr_decay is None else lr_decay
    if not (math.isfinite(lr) and math.isfinite(lr_decay)):
        raise UsageError(f"lr {lr} and lr decay {lr_decay} must be finite numbers")
    if epochs < 1 or batch_size < 1 or not lr > 0 or not 0 < lr_decay <= 1:
        raise MadvaeError("need epochs >= 1, batch size >= 1, lr > 0 and 0 < lr decay <= 1")
    dev = resolve_device(device)
    seed_everything(seed)
    model = place(build("classifier", arch), dev)
    train_set = open_set(train_path)
    test_set = open_set(test_path) if test_path else None
    if test_set is not None and test_set.dataset != train_set.dataset:
        raise MadvaeError(f"test set is {test_set.dataset!r} but the training set is {train_set.dataset!r}",
                          test_path)
    config = {"arch": arch, "epochs": epochs, "batch_size": batch_size, "lr": lr, "lr_decay": lr_decay,
              "seed": seed, "limit": limit, "optimizer": "adam", "train_set": str(train_path),
              "test_set": str(test_path) if test_path else None}
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=lr_decay)
    total = count_samples([train_set], limit)
    history = []
    for epoch in range(epochs):
        model.train()
        started, seen, loss_sum, correct = time.perf_counter(), 0, 0.0, 0
        bar = tqdm(total=total, desc=f"classifier {arch} epoch {epoch + 1}/{epochs}", unit="img",
                   disable=not progress, mininterval=1.0)
        for batch in shuffled_batches([train_set], batch_size, seed=seed, epoch=epoch, names=["x_clean", "y"],
                                      limit=limit):
            x, y = to_device(batch["x_clean"], dev), to_device(batch["y"], dev)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen += len(y)
            loss_sum += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            bar.update(len(y))
            bar.set_postfix(loss=f"{loss.item():.4f}")
        bar.close()
        scheduler.step()
        elapsed = time.perf_counter() - started
        history.append({"epoch": epoch + 1, "loss": loss_sum / seen, "train_accuracy": correct / seen,
                        "images_per_s": seen / elapsed})
    meta = {"history": history, "train_set_sha256": sha256_file(train_path), "dataset": train_set.dataset,
            "n_train": total}
    if test_set is not None:
        meta["test_accuracy"] = accuracy(model, test_set, dev)
        meta["n_test"] = len(test_set)
        meta["test_set_sha256"] = sha256_file(test_path)
        test_set.close()
    train_set.close()
    save_checkpoint(out, kind="classifier", arch=arch, model=model, config=config, meta=meta)
    return meta


def accuracy(model, reader, device, field: str = "x_clean", batch_size: int = 1000) -> float:
    predictions = predict_labels(model, reader.batches(batch_size, names=[field, "y"]), device, field)
    labels = np.concatenate([b["y"] for b in reader.batches(batch_size, names=["y"])])
    return float((predictions == labels).mean())
