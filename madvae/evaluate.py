"""Purify-then-classify evaluation of stored sets: accuracy and agreement, written as a result JSON."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from madvae import __version__
from madvae.checkpoint import load_checkpoint
from madvae.errors import MadvaeError
from madvae.outcomes import OUTCOME_ENCODING, encode_bits
from madvae.results import RESULT_TYPE, RESULT_VERSION, write_result
from madvae.store import open_set
from madvae.util import resolve_device, seed_everything, sha256_file, to_device


@torch.inference_mode()
def predict_labels(classifier, batches, device, field: str = "x_clean", purifier=None) -> np.ndarray:
    """Predicted labels for ``batch[field]`` over an iterable of batches (dicts of numpy arrays)."""
    classifier.eval()
    predictions = []
    for batch in batches:
        x = to_device(batch[field], device)
        if purifier is not None:
            x = purifier(x)
        predictions.append(classifier(x).argmax(1).cpu().numpy())
    return np.concatenate(predictions) if predictions else np.zeros(0, dtype=np.int64)


def make_purifier(vae, samples: int = 0):
    """x -> VAE output. samples=0 decodes the posterior mean (the paper's test-time defense); samples=K
    averages K decodings of sampled latents (a stochastic defense)."""
    vae.eval()

    def purify(x):
        if samples <= 0:
            return vae(x, sample=False)[0]
        mean, logvar = vae.encode(x)
        std = torch.exp(0.5 * logvar)
        return torch.stack([vae.decode(mean + torch.randn_like(std) * std) for _ in range(samples)]).mean(0)

    return purify


def metrics(predictions: np.ndarray, labels: np.ndarray, clean_predictions: np.ndarray) -> dict:
    """accuracy: against the true label. agreement: against the classifier's prediction on the clean image
    (what the original MAD-VAE code reported as accuracy)."""
    return {"accuracy": float((predictions == labels).mean()),
            "agreement": float((predictions == clean_predictions).mean())}


def load_classifier(classifier_path, dev):
    """(model in eval mode, checkpoint) for a classifier checkpoint; anything else is a clear error."""
    checkpoint = load_checkpoint(classifier_path, expect_kind="classifier")
    return checkpoint.build_model(dev).eval(), checkpoint


def load_defense(vae_path, dev, *, defense_name: str | None = None, samples: int = 0, evaluated_set=None):
    """(vae or None, purifier or None, defense description for the result JSON).

    ``evaluated_set``: the set about to be scored; a VAE trained on that very file is refused (its numbers would
    be training-set numbers)."""
    if vae_path is None:
        return None, None, {"name": "none"}
    vae_ckpt = load_checkpoint(vae_path, expect_kind="vae")
    if evaluated_set is not None:
        set_sha256 = sha256_file(evaluated_set)
        trained_on = [entry.get("sha256") for entry in vae_ckpt.meta.get("training_sets", [])
                      if isinstance(entry, dict)]
        if set_sha256 in trained_on:
            raise MadvaeError(f"the VAE {vae_path} was trained on this very set (its SHA-256 is among the VAE's "
                              "training sets)", evaluated_set, "evaluate on a set the purifier has not seen")
    vae = vae_ckpt.build_model(dev).eval()
    defense = {"name": defense_name or vae_ckpt.config.get("loss", vae_ckpt.arch), "checkpoint": str(vae_path),
               "sha256": sha256_file(vae_path), "samples": samples, "training": vae_training(vae_ckpt)}
    return vae, make_purifier(vae, samples), defense


def vae_training(checkpoint) -> dict:
    """What the purifier's training was, as the tables need it to say so (madvae.report.settings_notes)."""
    config, meta = checkpoint.config, checkpoint.meta
    sets = [{key: entry.get(key) for key in ("attack", "preset", "quick", "n")} | {"name": Path(entry["path"]).stem}
            for entry in meta.get("training_sets", []) if isinstance(entry, dict) and "path" in entry]
    return {"loss": config.get("loss"), "epochs": config.get("epochs"), "batch_size": config.get("batch_size"),
            "n_train": meta.get("n_train"), "pairs_per_epoch": meta.get("pairs_per_epoch"),
            "pairs_seen": meta.get("pairs_seen"), "sets": sets}


def classifier_training(checkpoint) -> dict:
    """The target (or substitute) classifier's training: epochs and images seen, for the tables' notes."""
    return {"arch": checkpoint.arch, "epochs": checkpoint.config.get("epochs"),
            "n_train": checkpoint.meta.get("n_train")}


def result_header(kind: str, reader, set_path, n: int, classifier_path, classifier_ckpt, defense: dict,
                  *, attack: str | None = None, params: dict | None = None) -> dict:
    """The fields every result JSON shares (format: madvae.results); the caller adds
    ``metrics`` and anything its kind needs. attack/params default to those stored in the set."""
    return {
        "encoding-type": RESULT_TYPE, "encoding-version": RESULT_VERSION, "creator_version": __version__,
        "kind": kind, "dataset": reader.dataset, "split": reader.split, "n": int(n),
        "attack": attack if attack is not None else reader.attack,
        "params": params if params is not None else reader.params,
        "set": str(set_path), "set_sha256": sha256_file(set_path),
        "classifier": str(classifier_path), "classifier_sha256": sha256_file(classifier_path),
        "classifier_arch": classifier_ckpt.arch, "classifier_training": classifier_training(classifier_ckpt),
        "defense": defense,
    }


def evaluate_set(set_path, classifier_path, out, *, vae_path=None, defense_name: str | None = None,
                 samples: int = 0, device: str = "auto", batch_size: int = 500, limit: int | None = None,
                 seed: int = 0, progress: bool = True) -> dict:
    if samples < 0:
        raise MadvaeError("--samples must be 0 (posterior mean) or a positive count")
    dev = resolve_device(device)
    seed_everything(seed)
    classifier, classifier_ckpt = load_classifier(classifier_path, dev)
    _, purifier, defense = load_defense(vae_path, dev, defense_name=defense_name, samples=samples,
                                        evaluated_set=set_path)
    with open_set(set_path) as reader:
        n = min(len(reader), limit) if limit else len(reader)
        predictions = {key: [] for key in ("clean", "no_defense", "defended", "defended_clean")}
        labels = []
        bar = tqdm(total=n, desc=f"attack {reader.attack} vs {defense['name']}", unit="img",
                   disable=not progress, mininterval=1.0)
        for batch in reader.batches(batch_size, limit=n):
            labels.append(batch["y"])
            one = [batch]
            predictions["clean"].append(predict_labels(classifier, one, dev, "x_clean"))
            if reader.has_adv:
                predictions["no_defense"].append(predict_labels(classifier, one, dev, "x_adv"))
            if purifier is not None:
                predictions["defended_clean"].append(predict_labels(classifier, one, dev, "x_clean", purifier))
                if reader.has_adv:
                    predictions["defended"].append(predict_labels(classifier, one, dev, "x_adv", purifier))
            bar.update(len(batch["y"]))
        bar.close()
        labels = np.concatenate(labels)
        clean = np.concatenate(predictions["clean"])
        result = result_header("whitebox", reader, set_path, n, classifier_path, classifier_ckpt, defense)
        # a set crafted on another classifier is a transfer attack on this one, not a white-box result
        source = reader.attrs.get("source_classifier_sha256") or None
        result["source_classifier_sha256"] = source
        result["transfer"] = bool(reader.has_adv and source != result["classifier_sha256"])
        predicted = {key: np.concatenate(values) for key, values in predictions.items() if values}
        result["metrics"] = {key: metrics(values, labels, clean) for key, values in predicted.items()}
        result["outcomes"] = per_image_outcomes(predicted, labels, clean, images_of(reader, result["set_sha256"]))
    write_result(out, result)
    return result


def images_of(reader, set_sha256: str) -> dict:
    """Which images the rows of a result are: the first n of a clean set, named by its SHA-256. An adversarial
    set holds the first n images of the clean set it was crafted from (madvae gen --limit keeps the first N)."""
    source = reader.provenance.get("input_set_sha256") if reader.has_adv else set_sha256
    return {"clean_set_sha256": source or set_sha256, "start": 0}


def per_image_outcomes(predicted: dict, labels: np.ndarray, clean: np.ndarray, images: dict) -> dict:
    """The result's per-image record (docs/format.md, "Per-image outcomes"): for each metric group, whether each
    image was classified as its true label (``correct``) and as the clean image (``agree``), as bit strings."""
    return {"encoding": OUTCOME_ENCODING, "images": {**images, "count": int(len(labels))},
            "correct": {key: encode_bits(values == labels) for key, values in predicted.items()},
            "agree": {key: encode_bits(values == clean) for key, values in predicted.items()}}
