"""Purify-then-classify evaluation of stored sets: accuracy and agreement, written as a result JSON."""
from __future__ import annotations

from tqdm import tqdm

from madvae.defense import load_evaluation, predict_labels
from madvae.errors import UsageError
from madvae.outcomes import scored
from madvae.results import result_header, write_result
from madvae.store import open_set


def evaluate_set(set_path, classifier_path, out, *, vae_path=None, defense_name: str | None = None,
                 samples: int = 0, device: str = "auto", batch_size: int = 500, limit: int | None = None,
                 seed: int = 0, progress: bool = True) -> dict:
    if samples < 0:
        raise UsageError("--samples must be 0 (posterior mean) or a positive count")
    loaded = load_evaluation(classifier_path, vae_path, device=device, seed=seed, defense_name=defense_name,
                             samples=samples, evaluated_set=set_path)
    dev, classifier, purifier, defense = loaded.device, loaded.classifier, loaded.purifier, loaded.defense
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
        result = result_header("whitebox", reader, set_path, n, classifier_path, loaded.classifier_checkpoint,
                               defense, seed=seed)
        # a set crafted on another classifier is a transfer attack on this one, not a white-box result
        source = reader.attrs.get("source_classifier_sha256") or None
        result["source_classifier_sha256"] = source
        result["transfer"] = bool(reader.has_adv and source != result["classifier_sha256"])
        result.update(scored(predictions, labels, reader, result["set_sha256"]))
    write_result(out, result)
    return result

