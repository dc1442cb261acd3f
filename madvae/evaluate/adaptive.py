"""Adaptive evaluation: craft an attack that knows the defense on a set's clean images, then classify them with
and without the defense; the result JSON has the same header and metrics as the white-box evaluation."""
from __future__ import annotations

import inspect

import numpy as np
import torch
from tqdm import tqdm

from madvae.attacks import ADAPTIVE_ATTACKS, get_attack, resolve_params, run_attack
from madvae.defense import load_evaluation
from madvae.errors import MadvaeError, UsageError
from madvae.outcomes import scored
from madvae.results import result_header, write_result
from madvae.store import open_set
from madvae.util import to_device


@torch.inference_mode()
def _labels(classifier, x, purifier=None) -> np.ndarray:
    return classifier(x if purifier is None else purifier(x)).argmax(1).cpu().numpy()


def checked_request(attack: str, params, quick: bool, samples: int, vae_path, batch_size: int, limit):
    """(spec, resolved params) of an adaptive evaluation, refusing a defense the attack does not attack."""
    spec = get_attack(attack, "adaptive")
    resolved = resolve_params(attack, "test", params, quick)
    if samples < 0:
        raise UsageError("--samples must be 0 (posterior mean) or a positive count")
    if spec.decoding == "sampled" and vae_path is not None and samples < 1:
        raise MadvaeError(f"{attack} attacks the stochastic defense: give samples >= 1",
                          hint="samples=0 is the deterministic posterior-mean defense; attack it with pgd-e2e")
    if spec.decoding == "mean" and samples > 0:
        # the attack's gradient goes through the posterior-mean decoding: scoring a K-sample defense instead would
        # report one defense's accuracy under an attack on another
        stochastic = ", ".join(name for name, other in ADAPTIVE_ATTACKS.items() if other.decoding != "mean")
        raise UsageError(f"{attack} attacks the posterior-mean defense; --samples {samples} (a {samples}-sample "
                          f"defense) is attacked with --mode {stochastic}", hint="drop --samples, or use another mode")
    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    if limit is not None and limit < 1:
        raise UsageError("--limit must be at least 1")
    return spec, resolved


def attack_batches(loaded, reader, attack: str, resolved: dict, n: int, batch_size: int, progress: bool,
                   label: str = ""):
    """(predictions, labels, record) of the attack on the first n clean images, batch by batch: clean,
    no_defense and, with a VAE, defended and defended_clean predictions; eps 0 leaves the images as they are."""
    spec = get_attack(attack)
    predictions = {key: [] for key in ("clean", "no_defense", "defended", "defended_clean")}
    labels = []
    # PGD attacks: one tick per image and gradient step (on a CPU a single batch can take minutes); the others
    # one per image
    steps = resolved["nb_iter"] * resolved["restarts"] if "nb_iter" in resolved else None
    bar = tqdm(total=n * (steps or 1), desc=label or f"{attack} vs {loaded.defense['name']}",
               unit="img-step" if steps else "img", unit_scale=True, disable=not progress, mininterval=1.0)
    keeps_record = "record" in inspect.signature(spec.function()).parameters
    record = {} if keeps_record else None
    for batch in reader.batches(batch_size, limit=n, names=["x_clean", "y"]):
        x, y = to_device(batch["x_clean"], loaded.device), to_device(batch["y"], loaded.device)
        found = {}
        if resolved["eps"] == 0:  # the start of a curve: nothing to perturb
            x_adv = x
        else:
            x_adv = run_attack(attack, loaded.target, x, y, resolved,
                               on_step=lambda size=len(y): bar.update(size) if steps else None,
                               **({"record": found} if keeps_record else {}))
        for key, value in found.items():  # per-image counts, summed over the batches
            record[key] = record.get(key, 0) + value
        bar.update(len(y) * (steps or 1) if resolved["eps"] == 0 or not steps else 0)
        labels.append(batch["y"])
        predictions["clean"].append(_labels(loaded.classifier, x))
        predictions["no_defense"].append(_labels(loaded.classifier, x_adv))
        if loaded.purifier is not None:
            predictions["defended"].append(_labels(loaded.classifier, x_adv, loaded.purifier))
            predictions["defended_clean"].append(_labels(loaded.classifier, x, loaded.purifier))
    bar.close()
    return predictions, labels, record


def evaluate_adaptive(set_path, classifier_path, out, *, attack: str, vae_path=None, defense_name: str | None = None,
                      params=None, quick: bool = False, samples: int = 0, device: str = "auto",
                      batch_size: int = 250, limit: int | None = None, seed: int = 0,
                      progress: bool = True) -> dict:
    """``params``: overrides of the attack's defaults ("name=value" strings, pairs or a dict); ``quick``: the
    CPU-sized cut; ``samples``: 0 defends with the posterior-mean decoding, K with the average of K sampled
    decodings (eot needs K >= 1: it attacks that stochastic defense). Without a VAE every attack is plain PGD
    on the classifier (the No Defense column) and only clean/no_defense metrics are written."""
    _, resolved = checked_request(attack, params, quick, samples, vae_path, batch_size, limit)
    loaded = load_evaluation(classifier_path, vae_path, device=device, seed=seed, defense_name=defense_name,
                             samples=samples, evaluated_set=set_path)
    with open_set(set_path) as reader:
        n = min(len(reader), limit) if limit else len(reader)
        predictions, labels, record = attack_batches(loaded, reader, attack, resolved, n, batch_size, progress)
        result = result_header("adaptive", reader, set_path, n, classifier_path, loaded.classifier_checkpoint,
                               loaded.defense, attack=attack, params=resolved, seed=seed)
        result["quick"] = quick
        if record is not None:
            result["fooled_by"] = record  # images each component fooled first, in the order they ran
        result.update(scored(predictions, labels, reader, result["set_sha256"]))
    write_result(out, result)
    return result
