"""Security-evaluation curves: an adaptive attack's accuracy through the defense at each eps of a grid, on the same
clean images (Carlini et al. 2019's robustness curve), written as one result JSON of kind `curve`.

At eps 0 the images are left as they are, so the curve starts at the clean accuracy through the defense; each
point is over the same n images and carries its count, so the tables give each its 95% Wilson interval.
"""
from __future__ import annotations

import numpy as np

from madvae.defense import load_evaluation
from madvae.errors import UsageError
from madvae.evaluate.adaptive import attack_batches, checked_request
from madvae.outcomes import metrics
from madvae.results import result_header, write_result
from madvae.store import open_set

EPS_GRID = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4)  # the grid of the workflow's curves by default


def evaluate_curve(set_path, classifier_path, out, *, attack: str, eps_grid=EPS_GRID, vae_path=None,
                   defense_name: str | None = None, params=None, quick: bool = False, samples: int = 0,
                   device: str = "auto", batch_size: int = 250, limit: int | None = None, seed: int = 0,
                   progress: bool = True) -> dict:
    """``metrics``: per eps of ``eps_grid`` (ascending, in [0, 1]) the accuracy (true labels) and agreement (clean
    predictions) of the pipeline: classifier(VAE(x_adv)), or the classifier alone without a VAE."""
    grid = [float(eps) for eps in eps_grid]
    if not grid or any(not 0 <= eps <= 1 for eps in grid) or grid != sorted(set(grid)):
        raise UsageError(f"--eps-grid {','.join(map(str, grid)) or '(empty)'}: give ascending distinct numbers in "
                          "[0, 1]", hint="e.g. --eps-grid 0,0.1,0.2,0.3,0.4")
    if any(str(item).partition("=")[0].strip() == "eps" for item in (params or [])):
        raise UsageError("--param eps does not apply with --eps-grid (the grid gives every eps)")
    _, resolved = checked_request(attack, params, quick, samples, vae_path, batch_size, limit)
    loaded = load_evaluation(classifier_path, vae_path, device=device, seed=seed, defense_name=defense_name,
                             samples=samples, evaluated_set=set_path)
    pipeline = "defended" if loaded.purifier is not None else "no_defense"
    points = {"eps": grid, "accuracy": [], "agreement": []}
    with open_set(set_path) as reader:
        n = min(len(reader), limit) if limit else len(reader)
        for eps in grid:
            predictions, labels, _ = attack_batches(loaded, reader, attack, {**resolved, "eps": eps}, n, batch_size,
                                                    progress, label=f"{attack} eps {eps} vs {loaded.defense['name']}")
            clean = np.concatenate(predictions["clean"])
            scored = metrics(np.concatenate(predictions[pipeline]), np.concatenate(labels), clean)
            points["accuracy"].append(scored["accuracy"])
            points["agreement"].append(scored["agreement"])
        result = result_header("curve", reader, set_path, n, classifier_path, loaded.classifier_checkpoint,
                               loaded.defense, attack=attack, params={k: v for k, v in resolved.items() if k != "eps"}, seed=seed)
    result.update(quick=quick, metrics={pipeline: points})
    write_result(out, result)
    return result
