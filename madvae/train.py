"""Training of the Defense-VAE / MAD-VAE purifiers: x_adv -> x_clean, streamed from HDF5 sets, resumable per epoch.

Optimisation follows the authors' code: the VAE with Adam and a per-epoch exponential decay floored at
``lr_floor``; each learned centre set with its own SGD, decayed per epoch by ``centre_lr_decay`` (0.1) down to
``centre_lr_floor`` (1e-5), their MinExponentialLR (proximity 0.5 -> 0.05 -> ..., distance 1e-4 -> 1e-5);
gradient norms clipped separately for each of the three. ``centre_lr_decay=1`` keeps the centre rates fixed.
"""
from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path

import torch
from tqdm import tqdm

from madvae.checkpoint import load_checkpoint, save_checkpoint
from madvae.defense import load_classifier
from madvae.errors import Interrupted, MadvaeError, UsageError
from madvae.losses import TERMS, LossWeights, init_centres, total_loss
from madvae.registry import DEFAULT_EPOCHS, PRECISIONS, USES_CENTRES, USES_CLASSIFIER, VARIANTS
from madvae.resume import TerminationRequest, load_state, resume_path_for, run_fingerprint, save_state
from madvae.models import LATENT_DIM, DefenseVAE, place
from madvae.store import open_set
from madvae.stream import count_samples, epoch_size, shuffled_batches
from madvae.util import (atomic_output, refuse_output_over_inputs, resolve_device, seed_everything, sha256_file,
                         to_device)

STEPS_PER_EPOCH = 25  # points per epoch on the training curve (fewer when an epoch has fewer batches)
# fp32: the reference. bf16: autocast of the VAE's forward pass (for GPUs with bfloat16 units; on a CPU without
# them it is slower). tests/test_precision.py states and checks how far a bf16 run may drift from fp32.
def log_path_for(out) -> Path:
    out = Path(out)
    return out.with_name(out.stem + ".train.csv")


def steps_log_path_for(out) -> Path:
    """The training curve: mean loss terms about STEPS_PER_EPOCH times an epoch."""
    out = Path(out)
    return out.with_name(out.stem + ".steps.csv")


def load_vae(path, device="cpu") -> DefenseVAE:
    """A trained purifier in eval mode; any other checkpoint kind fails with one clear line."""
    return load_checkpoint(path, expect_kind="vae", expect_arch="defense-vae").build_model(device)


def _open_sets(set_paths, loss):
    if not set_paths:
        raise UsageError("no training set given", hint="pass one or more HDF5 sets")
    readers = []
    try:
        for path in set_paths:
            reader = open_set(path)
            readers.append(reader)
            if reader.split == "test":
                raise MadvaeError("a set of the test split; training on it would leak the test images into the "
                                  "purifier the test tables score", path,
                                  "train on sets made from the train split: madvae gen --split train")
            if loss != "identity" and not reader.has_adv:
                raise MadvaeError(f"a clean set (attack none); the {loss} loss trains x_adv -> x_clean", path,
                                  "give adversarial sets from `madvae gen --attack ...`, or use --loss identity")
            first = readers[0]
            if reader.dataset != first.dataset:
                raise MadvaeError(f"dataset is {reader.dataset!r} but {first.path} is {first.dataset!r}; "
                                  "one model trains on one dataset", path)
    except BaseException:
        for reader in readers:
            reader.close()
        raise
    return readers


def _describe_set(path, sha256, reader) -> dict:
    """A training set as the checkpoint records it: enough for a table to say what the purifier saw (the attack,
    its preset, whether a CPU-sized cut made it, how many images) without the file."""
    params = reader.params or {}
    return {"path": str(path), "sha256": sha256, "attack": reader.attack, "split": reader.split,
            "preset": params.get("preset"), "quick": bool(params.get("quick", False)), "n": len(reader)}


def _check_options(loss, classifier_path, epochs, batch_size, lr, lr_decay, lr_floor, clip, centre_lr_decay,
                   centre_lr_floor):
    if loss not in VARIANTS:
        raise UsageError(f"unknown loss {loss!r}", hint=f"choose one of {', '.join(VARIANTS)}")
    if loss in USES_CLASSIFIER and classifier_path is None:
        raise UsageError(f"the {loss} loss needs a frozen classifier", hint="pass --classifier CHECKPOINT")
    if loss not in USES_CLASSIFIER and classifier_path is not None:
        raise UsageError(f"the {loss} loss does not use a classifier; --classifier applies to "
                          f"{' and '.join(USES_CLASSIFIER)} only")
    numbers = {"lr": lr, "lr decay": lr_decay, "lr floor": lr_floor, "clip": clip, "centre lr decay": centre_lr_decay,
               "centre lr floor": centre_lr_floor}
    bad = [f"{name} {value}" for name, value in numbers.items() if not math.isfinite(value)]
    if bad:  # NaN slips through every comparison below, and an infinite rate trains a model of NaNs
        raise UsageError(f"{', '.join(bad)}: every rate and factor must be a finite number")
    if epochs < 1 or batch_size < 1 or not lr > 0 or not 0 < lr_decay <= 1 or lr_floor < 0 or not clip > 0:
        raise UsageError("need epochs >= 1, batch size >= 1, lr > 0, 0 < lr decay <= 1, lr floor >= 0, clip > 0")
    if not 0 < centre_lr_decay <= 1 or centre_lr_floor < 0:
        raise UsageError("need 0 < centre lr decay <= 1 and centre lr floor >= 0")


def train_vae(set_paths, out, *, loss: str, classifier_path=None, epochs: int | None = None, batch_size: int = 512,
              lr: float = 1e-3, lr_decay: float = 0.998, lr_floor: float = 1e-5, proximity_lr: float = 0.5,
              distance_lr: float = 1e-4, centre_lr_decay: float = 0.1, centre_lr_floor: float = 1e-5,
              clip: float = 1.0, alpha: float = 0.01, sigma: float = 1e-5,
              beta: float = 0.1, gamma: float = 0.1, seed: int = 0, device: str = "auto", limit: int | None = None,
              pairs_per_epoch: int | None = None, resume: bool = False, progress: bool = True,
              precision: str = "fp32") -> dict:
    """Train a purifier on ``set_paths`` and write the checkpoint ``out`` and its log ``<stem>.train.csv``.

    After every epoch the full training state goes to ``<out>.resume.pt``; ``resume=True`` continues from it
    (bit-identical on CPU) or, when there is none, starts from scratch. It is deleted once ``out`` is written.
    ``precision`` bf16 runs the VAE's forward pass under autocast (the losses stay float32; see PRECISIONS).
    ``pairs_per_epoch``: each epoch trains on a fresh random sample of that many pairs, every set in proportion
    (a CPU-sized run of a large grid); None: every pair, every epoch."""
    out, set_paths = Path(out), [Path(p) for p in set_paths]
    refuse_output_over_inputs({"--out": out, "its log": log_path_for(out), "its curve": steps_log_path_for(out),
                               "its resume state": resume_path_for(out)},
                              {**{f"training set {k + 1}": p for k, p in enumerate(set_paths)},
                               "classifier": classifier_path})
    epochs = DEFAULT_EPOCHS.get(loss, 1) if epochs is None else epochs
    _check_options(loss, classifier_path, epochs, batch_size, lr, lr_decay, lr_floor, clip, centre_lr_decay,
                   centre_lr_floor)
    if pairs_per_epoch is not None and pairs_per_epoch < 1:
        raise UsageError(f"pairs per epoch {pairs_per_epoch}: need at least 1 (or none for every pair)")
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}", hint=f"choose one of {', '.join(PRECISIONS)}")
    if out.is_dir():
        raise UsageError("is a folder; --out names the checkpoint file to write", out)
    state_path = resume_path_for(out)
    if state_path.exists() and not resume:
        raise UsageError("an interrupted run left its resume state here", state_path,
                          "pass --resume to continue it, or delete the file to start over")
    weights = LossWeights(alpha=alpha, sigma=sigma, beta=beta, gamma=gamma)
    bad = [f"{name} {value}" for name, value in weights.as_dict().items() if not (math.isfinite(value) and value >= 0)]
    if bad:
        raise UsageError(f"loss weight {', '.join(bad)}: weights must be finite numbers >= 0")
    dev = resolve_device(device)
    readers = _open_sets(set_paths, loss)
    try:
        classifier = load_classifier(classifier_path, dev, frozen=True)[0] if classifier_path else None
        config = {"loss": loss, "epochs": epochs, "batch_size": batch_size, "lr": lr, "lr_decay": lr_decay,
                  "lr_floor": lr_floor, "proximity_lr": proximity_lr, "distance_lr": distance_lr,
                  "centre_lr_decay": centre_lr_decay, "centre_lr_floor": centre_lr_floor, "clip": clip,
                  "pairs_per_epoch": pairs_per_epoch,
                  **weights.as_dict(), "seed": seed, "limit": limit, "latent_dim": LATENT_DIM,
                  "input": "x_clean" if loss == "identity" else "x_adv", "target": "x_clean",
                  "optimizer": "adam", "centre_optimizer": "sgd", "device": str(dev), "precision": precision,
                  "sets": [str(p) for p in set_paths], "classifier": str(classifier_path) if classifier_path else None}
        set_hashes = [sha256_file(p) for p in set_paths]
        classifier_hash = sha256_file(classifier_path) if classifier_path else None
        fingerprint = run_fingerprint(config, set_hashes, classifier_hash)
        history = _run(readers, state_path, config, fingerprint, weights, classifier, dev, resume, progress)
        meta = {"history": history["epochs"], "training_sets": [_describe_set(p, h, r)
                                                                  for p, h, r in zip(set_paths, set_hashes, readers)],
                "dataset": readers[0].dataset, "n_train": count_samples(readers, limit),
                "pairs_per_epoch": epoch_size(readers, limit, pairs_per_epoch),
                "pairs_seen": epoch_size(readers, limit, pairs_per_epoch) * len(history["epochs"]),
                "classifier_sha256": classifier_hash, "resumed_from_epoch": history["resumed_from"]}
    finally:
        for reader in readers:
            reader.close()
    model, centres = history["model"], history["centres"]
    extra = {name: tensor.detach().cpu() for name, tensor in centres.items()}
    save_checkpoint(out, kind="vae", arch="defense-vae", model=model, config=config, meta=meta,
                    extra_tensors=extra or None)
    log = _write_log(log_path_for(out), history["epochs"])
    steps_log = _write_steps_log(steps_log_path_for(out), history["epochs"])
    state_path.unlink(missing_ok=True)
    return {"out": str(out), "log": str(log), "steps_log": str(steps_log), "history": history["epochs"],
            "config": config, **meta}


def _run(readers, state_path, config, fingerprint, weights, classifier, dev, resume, progress) -> dict:
    loss, seed = config["loss"], config["seed"]
    seed_everything(seed)
    model = place(DefenseVAE(), dev)
    centres, centre_optims, centre_schedulers, centre_floors = {}, {}, {}, {}
    if loss in USES_CENTRES:
        for name, centre_lr in (("proximity_centres", config["proximity_lr"]),
                                ("distance_centres", config["distance_lr"])):
            centres[name] = init_centres(model.latent_dim).to(dev).requires_grad_(True)
            centre_optims[name] = torch.optim.SGD([centres[name]], lr=centre_lr)
            centre_schedulers[name] = torch.optim.lr_scheduler.ExponentialLR(centre_optims[name],
                                                                             gamma=config["centre_lr_decay"])
            centre_floors[name] = min(config["centre_lr_floor"], centre_lr)
    optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"])
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config["lr_decay"])
    history, start, skip, partial = [], 0, 0, {}
    if resume and state_path.exists():
        state = load_state(state_path, fingerprint)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        with torch.no_grad():
            for name in centres:
                centres[name].copy_(state["centres"][name])
                centre_optims[name].load_state_dict(state["centre_optimizers"][name])
                centre_schedulers[name].load_state_dict(state["centre_schedulers"][name])
        history, start = json.loads(state["history"]), state["epoch"]
        skip, partial = state.get("batch", 0), json.loads(state.get("partial", "{}"))
        if start > config["epochs"]:
            raise UsageError(f"the resume state is already at epoch {start}, beyond --epochs {config['epochs']}",
                              state_path)
        torch.set_rng_state(state["rng"])
        if dev.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], dev)
    resumed_from = start if resume and (start or skip) else None  # epochs finished before the resume
    names = ["x_clean", "y"] if config["input"] == "x_clean" else ["x_clean", "x_adv", "y"]
    total = epoch_size(readers, config["limit"], config.get("pairs_per_epoch"))
    floor = min(config["lr_floor"], config["lr"])
    trace_every = max(1, -(-total // config["batch_size"]) // STEPS_PER_EPOCH)
    stop = TerminationRequest()
    with stop:
        for epoch in range(start, config["epochs"]):
            model.train()
            # a run stopped mid-epoch resumes after its last finished batch, with that batch's sums and RNG state
            done, sums = (skip, dict(partial["sums"])) if epoch == start and skip else (0, {})
            seen, before = (partial["seen"], partial["seconds"]) if done else (0, 0.0)
            steps, window = (partial["steps"], partial["window"]) if done else ([], {})
            started = time.perf_counter()
            lr_now = optimizer.param_groups[0]["lr"]
            bar = tqdm(total=total, initial=seen, desc=f"vae {loss} epoch {epoch + 1}/{config['epochs']}",
                       unit="img", disable=not progress, mininterval=1.0)
            batches = shuffled_batches(readers, config["batch_size"], seed=seed, epoch=epoch, names=names,
                                       limit=config["limit"], per_epoch=config.get("pairs_per_epoch"))
            for index, batch in enumerate(batches):
                if index < done:
                    continue  # the order is a function of (seed, epoch): skipping replays it exactly
                x_in = to_device(batch[config["input"]], dev)
                target = to_device(batch["x_clean"], dev)
                labels = to_device(batch["y"], dev)
                values = train_step(model, optimizer, x_in, target, labels, loss=loss, weights=weights,
                                    classifier=classifier, centres=centres, centre_optims=centre_optims,
                                    clip=config["clip"], precision=config.get("precision", "fp32"))
                for name, value in values.items():
                    sums[name] = sums.get(name, 0.0) + value * len(labels)
                    window[name] = window.get(name, 0.0) + value * len(labels)
                seen += len(labels)
                window["images"] = window.get("images", 0) + len(labels)
                if (index + 1) % trace_every == 0:
                    steps.append(_trace_row(window, epoch=epoch, images=epoch * total + seen))
                    window = {}
                bar.update(len(labels))
                bar.set_postfix({name: f"{value:.4g}" for name, value in values.items()}, refresh=False)
                if stop.requested:
                    bar.close()
                    partial = {"sums": sums, "seen": seen, "seconds": before + time.perf_counter() - started,
                               "steps": steps, "window": window}
                    save_state(state_path, fingerprint=fingerprint, epoch=epoch, history=history, model=model,
                                optimizer=optimizer, scheduler=scheduler, centres=centres,
                                centre_optims=centre_optims, centre_schedulers=centre_schedulers, dev=dev,
                                batch=index + 1, partial=partial)
                    raise Interrupted(f"SIGTERM during epoch {epoch + 1}, after batch {index + 1}; state saved",
                                      state_path, "run the same command with --resume to continue")
            bar.close()
            if window:
                steps.append(_trace_row(window, epoch=epoch, images=epoch * total + seen))
            scheduler.step()
            for group in optimizer.param_groups:
                group["lr"] = max(group["lr"], floor)
            for name, centre_scheduler in centre_schedulers.items():  # the original's MinExponentialLR
                centre_scheduler.step()
                for group in centre_optims[name].param_groups:
                    group["lr"] = max(group["lr"], centre_floors[name])
            elapsed = before + time.perf_counter() - started
            history.append({"epoch": epoch + 1, **{k: sums[k] / seen for k in TERMS if k in sums}, "lr": lr_now,
                            "images_per_s": seen / elapsed, "seconds": elapsed, "steps": steps})
            save_state(state_path, fingerprint=fingerprint, epoch=epoch + 1, history=history, model=model,
                        optimizer=optimizer, scheduler=scheduler, centres=centres, centre_optims=centre_optims,
                        centre_schedulers=centre_schedulers, dev=dev)
    return {"epochs": history, "model": model.cpu(), "centres": centres, "resumed_from": resumed_from}


def train_step(model, optimizer, x_in, target, labels, *, loss: str, weights: LossWeights, classifier=None,
               centres: dict | None = None, centre_optims: dict | None = None, clip: float = 1.0,
               precision: str = "fp32") -> dict:
    """One optimisation step of the VAE (and of each learned centre set) on one batch; returns each loss term's
    value as a float. The body of the training loop, apart so that bench/ can time and check it alone."""
    centres, centre_optims = centres or {}, centre_optims or {}
    with torch.autocast(x_in.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        outputs = model(x_in)
    # the losses in float32: binary cross-entropy is unsafe under autocast, and the KL sums small terms
    recon, z, mean, logvar = (tensor.float() for tensor in outputs)
    objective, terms = total_loss(loss, weights, recon=recon, target=target, z=z, mean=mean, logvar=logvar,
                                  labels=labels, classifier=classifier,
                                  proximity_centres=centres.get("proximity_centres"),
                                  distance_centres=centres.get("distance_centres"))
    optimizer.zero_grad(set_to_none=True)
    for centre_optim in centre_optims.values():
        centre_optim.zero_grad(set_to_none=True)
    objective.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    for name, centre_optim in centre_optims.items():
        torch.nn.utils.clip_grad_norm_([centres[name]], clip)
        centre_optim.step()
    optimizer.step()
    return dict(zip(terms, torch.stack(list(terms.values())).tolist()))  # one device sync per batch


def _trace_row(window: dict, *, epoch: int, images: int) -> dict:
    """Mean loss terms over the batches since the last row: the training curve's points."""
    return {"epoch": epoch + 1, "images": images,
            **{name: value / window["images"] for name, value in window.items() if name != "images"}}


def _write_log(path, history) -> Path:
    columns = ["epoch", *[t for t in TERMS if t in history[0]], "lr", "images_per_s", "seconds"]
    return _write_csv(path, columns, history)


def _write_steps_log(path, history) -> Path:
    columns = ["epoch", "images", *[t for t in TERMS if t in history[0]]]
    return _write_csv(path, columns, [row for epoch in history for row in epoch.get("steps", [])])


def _write_csv(path, columns, rows) -> Path:
    with atomic_output(path) as tmp:
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    return path
