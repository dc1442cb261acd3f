"""The Overpowered attack (paper section 3.3, Table 3) against one VAE purifier, written as a result JSON.

The VAE plays both parts: its decoder G is attacked in latent space, and the defended prediction is
classifier(VAE(G(z*))) with the VAE decoding the posterior mean.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from tqdm import tqdm

from madvae.attacks import OVERPOWERED_PRESETS, resolve_params, run_attack
from madvae.attacks.overpowered import (IMAGE_PIXELS, LAM_SCALINGS, OPTIMISER_DEFAULTS, STOPPING,
                                        THRESHOLD, l2_budget, noise_seeds)
from madvae.defense import Target, load_evaluation
from madvae.errors import MadvaeError, UsageError
from madvae.results import result_header, write_result
from madvae.store import open_set
from madvae.util import atomic_output

FIGURE_IMAGES = 10
STEPS_LISTED = 100  # the JSON lists every image's first goal step up to this many images


def _resolve(preset: str, overrides: dict, limit, available: int, params=None) -> dict:
    """The preset's attack settings with the overrides (keyword values, then ``params``: "name=value" strings),
    each checked by the one resolver, and n: ``limit`` images, else the preset's count (at most the set's)."""
    if preset not in OVERPOWERED_PRESETS:
        raise MadvaeError(f"unknown overpowered preset {preset!r}",
                          hint=f"choose one of {', '.join(OVERPOWERED_PRESETS)}")
    resolved = resolve_params("overpowered", preset,
                              [(k, v) for k, v in overrides.items() if v is not None] + list(params or []))
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= available):
        raise UsageError(f"--limit {limit!r} is out of range: the set holds {available} images",
                          hint=f"give 1..{available}")
    n = limit if limit is not None else min(OVERPOWERED_PRESETS[preset]["n"], available)
    return {"preset": preset, **{key: resolved[key] for key in ("norms", "restarts", "steps", "noise_samples")},
            "n": n}


def evaluate_overpowered(set_path, classifier_path, out, *, vae_path, defense_name: str | None = None,
                         preset: str = "quick", params=None, norms=None, restarts: int | None = None,
                         steps: int | None = None,
                         noise_samples: int | None = None, limit: int | None = None, batch_size: int = 100,
                         device: str = "auto", seed: int = 0, progress: bool = True, figure=None,
                         lam_scaling: str = OPTIMISER_DEFAULTS["lam_scaling"]) -> dict:
    """Attack the first ``limit`` clean images of ``set_path`` (default: the preset's n) once per norm.

    Metrics over the (image, norm) pairs, each pair correct when classifier(VAE(x_star)) is the true label:
      accuracy                         correct pairs / all pairs (the paper's "Accuracy")
      original_accuracy                images correct under every norm / images (the paper's "Original Accuracy")
      accuracy_within_budget           correct pairs / pairs whose x_star is within the L2 budget
      original_accuracy_within_budget  among images within the budget under EVERY norm, those correct under
                                       every norm (an image with one out-of-budget norm is left out: its
                                       all-norm verdict would mix budgets)
      budget_fraction, mean_l2         pairs within the budget; mean ||x_star - x|| over pairs
      clean                            accuracy of classifier(VAE(x)) on the clean images
    A within-budget number with no pairs to count is null. ``steps_run`` per norm: the steps every image ran
    (all: no early stop), how many met the attack's goal, the mean first step at which they did, and that step per
    image (0: never) for up to STEPS_LISTED images.
    Each image's noise is seeded from (seed, its index in the set, norm), so with the default ``lam_scaling``
    the result does not depend on ``batch_size``. ``figure``: a PNG of the first images at the first norm (clean
    above, x_star below, with their L2 distances)."""
    if vae_path is None:
        raise MadvaeError("the overpowered attack needs a VAE: it attacks the decoder's latent space",
                          hint="give --vae PATH")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UsageError(f"--batch-size must be a whole number >= 1 (got {batch_size!r})")
    if lam_scaling not in LAM_SCALINGS:
        raise MadvaeError(f"unknown lam_scaling {lam_scaling!r}", hint=f"choose one of {', '.join(LAM_SCALINGS)}")
    optimiser = {**OPTIMISER_DEFAULTS, "lam_scaling": lam_scaling}
    with open_set(set_path) as reader:
        params = _resolve(preset, {"norms": norms, "restarts": restarts, "steps": steps,
                                   "noise_samples": noise_samples}, limit, len(reader), params)
        loaded = load_evaluation(classifier_path, vae_path, device=device, seed=seed, defense_name=defense_name)
        dev, classifier, purifier, defense, target = (loaded.device, loaded.classifier, loaded.purifier,
                                                      loaded.defense, loaded.target)
        n = params["n"]
        data = reader.read(0, n, ["x_clean", "y"])
        x_all, labels = torch.from_numpy(data["x_clean"]), data["y"]
        batches = [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
        bar = tqdm(total=len(params["norms"]) * len(batches) * params["steps"], unit="step", mininterval=1.0,
                   desc=f"overpowered vs {defense['name']}", disable=not progress)
        attack = {key: params[key] for key in ("restarts", "steps", "noise_samples")}
        runs = []  # per norm: dict of numpy arrays over the n images
        for norm in params["norms"]:
            parts = []
            for start, stop in batches:
                x = x_all[start:stop].to(dev)
                y = torch.from_numpy(labels[start:stop]).to(dev)
                attacked = {}
                run_attack("overpowered", target, x, y, {**attack, "norm": norm, **optimiser}, record=attacked,
                           image_seeds=noise_seeds(seed, range(start, stop), norm), on_step=lambda *_: bar.update(1))
                with torch.inference_mode():
                    predicted = classifier(purifier(attacked["x_star"])).argmax(1)
                parts.append({"x_star": attacked["x_star"].detach().cpu().numpy(),
                              "l2": attacked["l2"].detach().cpu().numpy(),
                              "met_budget": attacked["met_budget"].cpu().numpy(),
                              "steps_run": attacked["steps_run"].cpu().numpy(),
                              "first_done": attacked["first_done"].cpu().numpy(),
                              "predicted": predicted.cpu().numpy()})
            runs.append({key: np.concatenate([p[key] for p in parts]) for key in parts[0]})
        bar.close()
        with torch.inference_mode():
            clean_predicted = torch.cat([classifier(purifier(x_all[s:t].to(dev))).argmax(1).cpu()
                                         for s, t in batches]).numpy()
        params.update({"threshold_mse": THRESHOLD, "l2_budget": l2_budget(), "seed": seed, "stop": STOPPING,
                       **optimiser})
        result = result_header("overpowered", reader, set_path, n, classifier_path, loaded.classifier_checkpoint, defense,
                               attack="overpowered", params=params, seed=seed)
    result.update(overpowered_metrics(runs, labels, clean_predicted, params["norms"]))
    result["steps_run"] = {str(norm): steps_summary(run["steps_run"], run["first_done"])
                           for norm, run in zip(params["norms"], runs)}
    write_result(out, result)
    if figure is not None:
        count = min(FIGURE_IMAGES, n)
        overpowered_figure(x_all[:count].numpy(), runs[0]["x_star"][:count], runs[0]["l2"][:count], figure,
                           title=f"Overpowered attack on {defense['name']}, norm {params['norms'][0]}")
    return result


def _mean(values) -> float | None:
    return float(np.mean(values)) if np.size(values) else None


def steps_summary(steps_run, first_done) -> dict:
    """The steps each image ran at one norm (every image all of them: no early stop) and the first step at which
    each met the attack's goal (within the budget with noisy margin <= -1; 0: never), compactly."""
    met = first_done[first_done > 0]
    summary = {"steps_per_image": sorted({int(v) for v in steps_run}), "goal_met": int(len(met)),
               "first_goal_step_mean": float(np.mean(met)) if len(met) else None}
    if len(first_done) <= STEPS_LISTED:
        summary["first_goal_step"] = [int(v) for v in first_done]
    return summary


def overpowered_metrics(runs, labels, clean_predicted, norms) -> dict:
    """``runs``: per norm, arrays predicted / met_budget / l2 over the same images. See evaluate_overpowered."""
    correct = np.stack([run["predicted"] == labels for run in runs], 1)  # images x norms
    met = np.stack([run["met_budget"] for run in runs], 1)
    l2 = np.stack([run["l2"] for run in runs], 1)
    all_met = met.all(1)
    metrics = {"accuracy": _mean(correct), "original_accuracy": _mean(correct.all(1)),
               "accuracy_within_budget": _mean(correct[met]),
               "original_accuracy_within_budget": _mean(correct.all(1)[all_met]),
               "budget_fraction": _mean(met), "mean_l2": _mean(l2),
               "clean": _mean(clean_predicted == labels)}
    per_norm = {str(norm): {"accuracy": _mean(correct[:, k]), "mean_l2": _mean(l2[:, k]),
                            "budget_fraction": _mean(met[:, k]),
                            "accuracy_within_budget": _mean(correct[met[:, k], k])}
                for k, norm in enumerate(norms)}
    return {"metrics": metrics, "per_norm": per_norm}


def overpowered_figure(clean, attacked, l2, png_path, *, title: str | None = None, dpi: int = 150) -> None:
    """Like the paper's Figure 7: clean digits in the top row, their attack outputs G(z*) below, each with
    its L2 distance. ``clean``/``attacked``: K x 1 x 28 x 28 arrays in [0, 1]."""
    # Figure + Agg canvas directly: no pyplot global state, no display needed
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    count = len(clean)
    if count == 0:
        raise MadvaeError("no images to draw", png_path)
    fig = Figure(figsize=(1.1 * count + 0.4, 2.9), dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, count, squeeze=False)
    for k in range(count):
        for row, image in enumerate((clean[k], attacked[k])):
            ax = axes[row][k]
            ax.imshow(np.asarray(image).reshape(28, 28), cmap="gray", vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[1][k].set_xlabel(f"L2 {float(l2[k]):.3f}", fontsize=9)
    axes[0][0].set_ylabel("clean", fontsize=9)
    axes[1][0].set_ylabel("G(z*)", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_output(png_path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)


def overpowered_params(preset: str = "quick", norm: float = 1.0, restarts: int | None = None,
                       steps: int | None = None, noise_samples: int | None = None, params=None) -> dict:
    """The attack settings of one run at one robustness norm (the preset's, with overrides: keyword values, then
    ``params``, "name=value" strings of restarts, steps or noise_samples), validated as evaluate_overpowered
    validates them; a bad value is a MadvaeError."""
    for item in params or []:
        if str(item).partition("=")[0].strip() == "norms":
            raise UsageError(f"--param {item!r} does not apply to madvae embed", hint="the norm is --norm")
    if isinstance(norm, bool) or not isinstance(norm, (int, float)) or not 0 <= norm <= math.sqrt(IMAGE_PIXELS):
        raise UsageError(f"--norm {norm!r} must be a number in [0, 28] (the L2 norm of the attack's noise)",
                          hint="the paper's figures use 1.0")
    params = _resolve(preset, {"norms": [norm], "restarts": restarts, "steps": steps,
                               "noise_samples": noise_samples}, None, 1, params)
    del params["n"]  # the preset's image count: the caller picks the images
    params["norm"] = params.pop("norms")[0]
    return params


def attack_latents(vae, classifier, x, y, *, params: dict, batch_size: int = 100, seed: int = 0,
                   bar=None) -> dict:
    """The Overpowered Attack at one robustness norm on images ``x`` (numpy N x 1 x 28 x 28 in [0, 1], labels
    ``y``), batched as evaluate_overpowered runs it: what the paper's Figures 5 and 6 embed.

    ``params`` comes from overpowered_params. Returns numpy arrays over the N images:
      z_before, z_after            the encoder mean z0 (where the attack starts) and the attacked latent z*
      output_before, output_after  G(z0) (the VAE's own output for x) and G(z*) (the attack's image x*)
      l2, met_budget               ||G(z*) - x|| and whether it is within the attack's L2 budget (l2_budget())
      predicted_before, predicted_after  the defended predictions classifier(VAE(x)) and classifier(VAE(x*))
    The models must be on one device; image k's noise draws come from a generator seeded from (``seed``, k,
    norm), so the result is a function of the seed and not of ``batch_size``. ``bar``: a tqdm advanced by one
    per step of each batch (params["steps"] per batch: every image runs every step)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UsageError(f"--batch-size must be a whole number >= 1 (got {batch_size!r})")
    dev = next(vae.parameters()).device
    vae.eval()
    keys = ("z_before", "z_after", "output_before", "output_after", "l2", "met_budget", "predicted_before",
            "predicted_after")
    parts = {key: [] for key in keys}
    for start in range(0, len(x), batch_size):
        images = torch.from_numpy(np.asarray(x[start:start + batch_size], dtype=np.float32)).to(dev)
        labels = torch.from_numpy(np.asarray(y[start:start + batch_size], dtype=np.int64)).to(dev)
        attacked = {}
        run_attack("overpowered", Target(classifier, vae), images, labels,
                   {key: params[key] for key in ("norm", "restarts", "steps", "noise_samples")} | OPTIMISER_DEFAULTS,
                   record=attacked, image_seeds=noise_seeds(seed, range(start, start + len(images)), params["norm"]),
                   on_step=None if bar is None else lambda *_: bar.update(1))
        with torch.inference_mode():
            z0 = vae.encode(images)[0]  # the attack's start, recomputed: it returns only the best z
            before = vae.decode(z0)
            batch = {"z_before": z0, "z_after": attacked["z_star"], "output_before": before,
                     "output_after": attacked["x_star"], "l2": attacked["l2"], "met_budget": attacked["met_budget"],
                     "predicted_before": classifier(before).argmax(1),
                     "predicted_after": classifier(vae(attacked["x_star"], sample=False)[0]).argmax(1)}
        for key in keys:
            parts[key].append(batch[key].detach().cpu().numpy())
    return {key: np.concatenate(values) for key, values in parts.items()}
