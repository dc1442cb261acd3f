"""FGSM through substitutes A-E (the paper's Table 2), in two modes, each written as a result JSON.

- paper: what the original code called black-box. FGSM is crafted on substitute X and the VAE's output is
  classified by the same X, so it is a white-box attack on X (a defense-unaware one, like Table 1).
- transfer: a real black-box in Defense-GAN's setting. The attacker holds `holdout` unlabelled images of the set,
  queries the target pipeline classifier(VAE(x)) for labels only, trains a substitute by Jacobian augmentation
  (madvae.attacks.blackbox), crafts FGSM on it and the pipeline classifies the rest of the set.
"""
from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from madvae.attacks import SUBSTITUTE_TRAINING, resolve_params, run_attack
from madvae.attacks.blackbox import train_substitute
from madvae.checkpoint import save_checkpoint
from madvae.defense import Target, load_evaluation
from madvae.errors import MadvaeError
from madvae.outcomes import metrics
from madvae.registry import SUBSTITUTES
from madvae.results import result_header, write_result
from madvae.store import open_set
from madvae.util import sha256_file, to_device

PAPER_NOTE = ("white-box on the substitute: crafted on and classified by the same model "
              "(the original code's Table 2)")
TRANSFER_NOTE = ("black-box transfer: FGSM crafted on a substitute trained only on the target pipeline's labels "
                 "for the held-out images (Papernot et al. 2017, Defense-GAN's setting); the held-out images are "
                 "not evaluated")


def _check_substitute_arch(arch: str, path=None) -> None:
    if arch not in SUBSTITUTES:
        raise MadvaeError(f"substitute architecture {arch!r} is not one of Table 6's substitutes", path,
                          f"choose one of {', '.join(SUBSTITUTES)}")


@torch.no_grad()
def _labels(classifier, x, purifier=None, batch_size: int = 500):
    """classifier(purifier(x)) labels for a tensor, `batch_size` images at a time."""
    out = []
    for start in range(0, len(x), batch_size):
        part = x[start:start + batch_size]
        out.append(classifier(purifier(part) if purifier is not None else part).argmax(1))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long, device=x.device)


def _to_device(batch, dev):
    return to_device(batch["x_clean"], dev), to_device(batch["y"], dev)


class _Collector:
    """Per-key predictions gathered batch by batch, turned into the result's metrics at the end."""

    def __init__(self):
        self.predictions, self.labels = {}, []

    def add(self, labels, **predictions):
        self.labels.append(labels.cpu().numpy())
        for key, value in predictions.items():
            self.predictions.setdefault(key, []).append(value.cpu().numpy())

    def metrics(self) -> dict:
        labels = np.concatenate(self.labels)
        clean = np.concatenate(self.predictions["clean"])
        return {key: metrics(np.concatenate(values), labels, clean) for key, values in self.predictions.items()}


def _predict_all(collector, classifier, purifier, x, x_adv, y, batch_size):
    """clean, no_defense and, with a VAE, defended and defended_clean; returns the pipeline's clean labels."""
    clean = _labels(classifier, x, batch_size=batch_size)
    found = {"clean": clean, "no_defense": _labels(classifier, x_adv, batch_size=batch_size)}
    if purifier is not None:
        found["defended"] = _labels(classifier, x_adv, purifier, batch_size)
        found["defended_clean"] = _labels(classifier, x, purifier, batch_size)
    collector.add(y, **found)
    return found.get("defended_clean", clean)


def evaluate_blackbox_paper(set_path, substitute_path, out, *, vae_path=None, defense_name: str | None = None,
                            params=None, device: str = "auto", batch_size: int = 500, limit: int | None = None,
                            seed: int = 0, progress: bool = True) -> dict:
    """The original code's Table 2: FGSM on substitute X (a trained A-E checkpoint), VAE, then the same X.
    ``params``: overrides of FGSM's test preset (its eps)."""
    params = resolve_params("fgsm", "test", params)
    loaded = load_evaluation(substitute_path, vae_path, device=device, seed=seed, defense_name=defense_name,
                             check_classifier=lambda ckpt: _check_substitute_arch(ckpt.arch, substitute_path))
    dev, substitute, checkpoint = loaded.device, loaded.classifier, loaded.classifier_checkpoint
    purifier, defense = loaded.purifier, loaded.defense
    collector = _Collector()
    with open_set(set_path) as reader:
        n = min(len(reader), limit) if limit else len(reader)
        bar = tqdm(total=n, desc=f"fgsm on {checkpoint.arch} vs {defense['name']}", unit="img",
                   disable=not progress, mininterval=1.0)
        for batch in reader.batches(batch_size, limit=n, names=["x_clean", "y"]):
            x, y = _to_device(batch, dev)
            # true labels, as the original code passed them to advertorch
            x_adv = run_attack("fgsm", Target(substitute), x, y, params)
            _predict_all(collector, substitute, purifier, x, x_adv, y, batch_size)
            bar.update(len(y))
        bar.close()
        result = result_header("blackbox-paper", reader, set_path, n, substitute_path, checkpoint, defense,
                               attack="fgsm", params=params, seed=seed)
    result.update(metrics=collector.metrics(), substitute=checkpoint.arch, note=PAPER_NOTE)
    write_result(out, result)
    return result


def _read_rows(reader, rows, pool: int, batch_size: int):
    """The images at the sorted indices `rows` (< pool), read batch by batch, never the whole set at once."""
    found = []
    for start in range(0, pool, batch_size):
        inside = rows[(rows >= start) & (rows < start + batch_size)]
        if len(inside):
            found.append(reader.read(start, min(start + batch_size, pool), ["x_clean"])["x_clean"][inside - start])
    return torch.from_numpy(np.concatenate(found))


def evaluate_blackbox_transfer(set_path, classifier_path, out, *, vae_path=None, defense_name: str | None = None,
                               substitute_arch: str = "A", params=None, flip_every: int | None = None,
                               quick: bool = False, device: str = "auto", batch_size: int = 500,
                               limit: int | None = None, seed: int = 0, save_substitute=None,
                               progress: bool = True) -> dict:
    """A real black-box FGSM on classifier(VAE(x)) through a substitute trained on its labels.

    `holdout` images of the set (the first `limit` if given), drawn with `seed`, are the attacker's and are not
    evaluated; n = the rest. ``params``: overrides of SUBSTITUTE_TRAINING (holdout, rounds, lam,
    substitute_epochs and FGSM's eps), applied over ``quick``'s CPU-sized cut: a setting the user gave is kept."""
    _check_substitute_arch(substitute_arch)
    settings = resolve_params(SUBSTITUTE_TRAINING, "test", params, quick)
    holdout, rounds, lam, substitute_epochs = (settings[key] for key in ("holdout", "rounds", "lam",
                                                                          "substitute_epochs"))
    params = resolve_params("fgsm", "test", {"eps": settings["eps"]})
    loaded = load_evaluation(classifier_path, vae_path, device=device, seed=seed, defense_name=defense_name)
    dev, classifier, checkpoint = loaded.device, loaded.classifier, loaded.classifier_checkpoint
    purifier, defense = loaded.purifier, loaded.defense
    collector = _Collector()
    with open_set(set_path) as reader:
        pool = min(len(reader), limit) if limit else len(reader)
        if holdout >= pool:
            raise MadvaeError(f"holdout {holdout} leaves nothing to evaluate in {pool} images", set_path,
                              "use a smaller --holdout or a larger set")
        held = np.sort(np.random.default_rng(seed).choice(pool, size=holdout, replace=False))
        x_seed = _read_rows(reader, held, pool, batch_size).to(dev)

        def oracle(x):  # labels only: all the attacker sees of the target
            return _labels(classifier, x, purifier, batch_size)

        substitute, info = train_substitute(substitute_arch, oracle, x_seed, rounds=rounds, lam=lam,
                                            epochs=substitute_epochs, flip_every=flip_every, seed=seed,
                                            progress=progress)
        is_held = np.zeros(pool, dtype=bool)
        is_held[held] = True
        n, agree, start = 0, 0, 0
        bar = tqdm(total=pool - holdout, desc=f"fgsm via {substitute_arch} vs {defense['name']}", unit="img",
                   disable=not progress, mininterval=1.0)
        for batch in reader.batches(batch_size, limit=pool, names=["x_clean", "y"]):
            keep = torch.from_numpy(~is_held[start:start + len(batch["y"])])
            start += len(batch["y"])
            x, y = (t[keep.to(t.device)] for t in _to_device(batch, dev))
            if not len(y):
                continue
            substitute_labels = _labels(substitute, x, batch_size=batch_size)
            # FGSM against the substitute's own label: the attacker has no labels for these images (asking the
            # oracle would be more queries), and it is what Papernot et al. and cleverhans' FastGradientMethod
            # (y=None) did, which also avoids the label-leaking effect of true labels.
            x_adv = run_attack("fgsm", Target(substitute), x, substitute_labels, params)
            pipeline_clean = _predict_all(collector, classifier, purifier, x, x_adv, y, batch_size)
            agree += int((substitute_labels == pipeline_clean).sum())
            n += len(y)
            bar.update(len(y))
        bar.close()
        result = result_header("blackbox-transfer", reader, set_path, n, classifier_path, checkpoint, defense,
                               attack="fgsm", seed=seed,
                               params={**params, "holdout": holdout, "rounds": rounds, "lam": lam,
                                       "substitute_epochs": substitute_epochs, "substitute_arch": substitute_arch,
                                       "flip_every": flip_every, "quick": quick})
    result.update(metrics=collector.metrics(), queries=info["queries"], substitute_agreement=agree / n,
                  substitute=substitute_arch, substitute_training=info,
                  holdout_indices=held.tolist(), note=TRANSFER_NOTE)
    if save_substitute is not None:
        save_checkpoint(save_substitute, kind="classifier", arch=substitute_arch, model=substitute,
                        config={"mode": "blackbox-transfer", "seed": seed, **result["params"]},
                        meta={"oracle_classifier_sha256": sha256_file(classifier_path), "defense": defense,
                              "set": str(set_path), "holdout_indices": held.tolist(), **info})
    write_result(out, result)
    return result
