"""`madvae gen`: clean sets from a dataset source, adversarial sets against a classifier checkpoint."""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

import torch
from tqdm import tqdm

from madvae.attacks import get_attack, resolve_params, run_attack
from madvae.attacks.whitebox import ADVERTORCH_VERSION
from madvae.defense import Target, load_classifier
from madvae.data import SPLIT_PROVENANCE, describe_split, load_source
from madvae.errors import MadvaeError, UsageError
from madvae.store import SetWriter, open_set
from madvae.util import refuse_output_over_inputs, resolve_device, seed_everything, sha256_file, to_device


def derive_seed(dataset: str, split: str, name: str) -> int:
    """A set's own seed when none is given: one fixed seed for every set would repeat R-FGSM's noise (and PGD's
    start) across the sets of a grid, test set included. Below 2**63, so HDF5 stores it as int64."""
    digest = hashlib.sha256(f"madvae-set/{dataset}/{split}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 2**63


def _resolve_seed(seed: int | None, dataset: str, split: str, out) -> tuple[int, str]:
    """(seed, how it was obtained) for the set written to ``out``; the name is the file's stem."""
    if seed is not None:
        return int(seed), "given"
    name = Path(out).stem
    return derive_seed(dataset, split, name), f"derived from {dataset}/{split}/{name}"


def make_clean_set(out, *, dataset: str, split: str, root=None, download: bool = False,
                   limit: int | None = None, seed: int | None = None) -> dict:
    images, labels = load_source(dataset, split, root=root, download=download)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    seed, seed_source = _resolve_seed(seed, dataset, split, out)
    provenance = {"source": dataset, "root": str(root) if root else None, "limit": limit,
                  "seed_source": seed_source, **describe_split(dataset)}
    with SetWriter(out, len(labels), dataset=dataset, split=split, seed=seed, provenance=provenance) as writer:
        for start in range(0, len(labels), 4096):
            writer.write(images[start:start + 4096], labels[start:start + 4096])
    return {"n": len(labels), "dataset": dataset, "split": split}


def make_adversarial_set(out, *, input_path, classifier_path, attack: str, preset: str = "test", overrides=None,
                         quick: bool = False, device: str = "auto", batch_size: int = 500,
                         limit: int | None = None, seed: int | None = None, progress: bool = True) -> dict:
    refuse_output_over_inputs({"--out": out}, {"input set": input_path, "classifier": classifier_path})
    spec = get_attack(attack, "stored")
    params = resolve_params(attack, preset, overrides, quick)
    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    if limit is not None and limit < 1:
        raise UsageError("--limit must be at least 1")
    dev = resolve_device(device)
    model, checkpoint = load_classifier(classifier_path, dev, frozen=True)  # gradients for the input only
    target = Target(model)
    source = open_set(input_path)
    if source.has_adv:
        raise MadvaeError("input must be a clean set (attack 'none'); this one is already adversarial", input_path)
    n = min(len(source), limit) if limit else len(source)
    seed, seed_source = _resolve_seed(seed, source.dataset, source.split, out)
    recorded = {**params, "attack": attack, "preset": preset, "quick": quick and bool(spec.quick),
                "library": "advertorch", "library_version": ADVERTORCH_VERSION, "batch_size": batch_size,
                "device": dev.type, "torch_version": torch.__version__}
    provenance = {"input_set": str(input_path), "input_set_sha256": sha256_file(input_path),
                  "classifier": str(classifier_path), "classifier_arch": checkpoint.arch, "seed_source": seed_source,
                  # the split (an attribute) and how it was carved travel with the images
                  **{k: v for k, v in source.provenance.items() if k in SPLIT_PROVENANCE}}
    seed_everything(seed)
    started = time.perf_counter()
    bar = tqdm(total=n, desc=f"gen {attack} ({preset}{', quick' if recorded['quick'] else ''})", unit="img",
               disable=not progress, mininterval=1.0)
    with SetWriter(out, n, dataset=source.dataset, split=source.split, attack=attack, params=recorded,
                   seed=seed, source_classifier_sha256=sha256_file(classifier_path),
                   provenance=provenance) as writer:
        for batch in source.batches(batch_size, limit=n):
            x = to_device(batch["x_clean"], dev)
            y = to_device(batch["y"], dev)
            x_adv = run_attack(attack, target, x, y, params).clamp_(0.0, 1.0)
            writer.write(batch["x_clean"], batch["y"], x_adv.cpu().numpy())
            bar.update(len(y))
        bar.close()
        elapsed = time.perf_counter() - started
        writer.set_provenance(seconds=round(elapsed, 3), images_per_s=round(n / elapsed, 2))
    source.close()
    return {"n": n, "attack": attack, "params": recorded, "seconds": elapsed, "images_per_s": n / elapsed,
            "out": str(Path(out))}
