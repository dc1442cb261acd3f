"""UMAP clustering figures (paper sections 3.4 and 3.5): a 2-D embedding of images, VAE latent means or VAE
outputs, and of latents and outputs before and after the Overpowered Attack (Figures 5 and 6).

Writes ``{prefix}.csv`` (index,x,y,label; index is the sample's position in the set; the Overpowered spaces add
a column stage, before or after) and ``{prefix}.png``.
"""
from __future__ import annotations

import csv
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from madvae.checkpoint import load_checkpoint
from madvae.errors import MadvaeError, UsageError
from madvae.evaluate.overpowered import attack_latents, overpowered_params
from madvae.registry import EMBED_COLOURS, EMBED_SPACES, SET_FIELDS
from madvae.store import NUM_CLASSES, open_set
from madvae.util import atomic_output, named_paths, resolve_device

# The Overpowered spaces embed the clean samples before and the attack's results after, jointly (one UMAP fit,
# so that a point's move between the two panels is a move in the same map): overpowered-latent the encoder means
# z0 and the attacked latents z* (Figure 6), overpowered-output G(z0) and the attack's images G(z*) (Figure 5).
OVERPOWERED_SPACES = {
    "overpowered-latent": ("latent means before and after the attack", "before: encoder means z0",
                           "after: attacked latents z*"),
    "overpowered-output": ("decoder outputs before and after the attack", "before: G(z0), the VAE's output",
                           "after: G(z*), the attack's images"),
}
SPACES, COLOURS, FIELDS = EMBED_SPACES, EMBED_COLOURS, SET_FIELDS
MIN_SAMPLES = 5  # UMAP's spectral initialisation fails below this
PAPER_SAMPLES = 3000  # the paper's point size 14 was chosen for 3,000 points
BATCH = 500


@dataclass(frozen=True)
class Figure:
    """One figure to draw: PREFIX.csv and PREFIX.png of ``space`` (through ``vae_path`` unless input)."""
    prefix: str
    space: str = "input"
    vae_path: str | None = None


def embed_set(set_path, out_prefix, *, space: str = "input", field: str | None = None, vae_path=None,
              classifier_path=None, colour: str = "true", n: int = 3000, seed: int = 42, device: str = "auto",
              figsize: tuple[float, float] = (7.0, 5.0), dpi: int = 150, overpowered: dict | None = None) -> dict:
    """Embed ``n`` seeded random samples of a set with UMAP and write the coordinates and the figure.

    space: input (the images), latent (the VAE's posterior means), output (VAE decodings of the mean), or
    overpowered-latent / overpowered-output (see OVERPOWERED_SPACES; needs the classifier the attack targets).
    colour: true (the set's labels) or predicted (the classifier's label for what a defended pipeline
    classifies: the image itself in input space, the VAE output in the other spaces).
    overpowered: the attack's settings, keywords of overpowered_params (preset, norm, restarts, steps,
    noise_samples); default the quick preset at robustness norm 1.0, the norm of the paper's figures."""
    figure = Figure(str(out_prefix), space, None if vae_path is None else str(vae_path))
    return embed_figures(set_path, [figure], field=field, classifier_path=classifier_path, colour=colour, n=n,
                         seed=seed, device=device, figsize=figsize, dpi=dpi, overpowered=overpowered)[0]


def embed_figures(set_path, figures: list[Figure], *, field: str | None = None, classifier_path=None,
                  colour: str = "true", n: int = 3000, seed: int = 42, device: str = "auto",
                  figsize: tuple[float, float] = (7.0, 5.0), dpi: int = 150, progress: bool = False,
                  overpowered: dict | None = None) -> list[dict]:
    """Several figures of the same samples of one set in one process: UMAP's numba compilation (about 20 s
    on 2 cores) is paid once instead of once per figure, and the Overpowered Attack runs once per VAE for
    both of its spaces. Returns one info dict per figure, in order. An Overpowered figure has two panels side
    by side, each ``figsize``."""
    if not figures:
        raise MadvaeError("no figure requested", hint="give --space (and --vae for latent or output)")
    for figure in figures:
        _check_figure(figure)
    if colour not in COLOURS:
        raise MadvaeError(f"unknown colour source {colour!r}", hint=f"choose one of {', '.join(COLOURS)}")
    if field is not None and field not in FIELDS:
        raise MadvaeError(f"unknown field {field!r}", hint=f"choose one of {', '.join(FIELDS)}")
    if n < MIN_SAMPLES:
        raise UsageError(f"--n {n} is too small: UMAP needs at least {MIN_SAMPLES} samples")
    if colour == "predicted" and classifier_path is None:
        raise UsageError("colour predicted needs a classifier checkpoint (--classifier)")
    attacked = [figure.space for figure in figures if figure.space in OVERPOWERED_SPACES]
    if overpowered and not attacked:
        raise UsageError("--norm, --preset and --param set the Overpowered Attack: they apply to the overpowered "
                          "spaces only", hint="add --space overpowered-latent or --space overpowered-output")
    attack_params = None
    if attacked:
        if classifier_path is None:
            raise UsageError(f"space {attacked[0]} needs a classifier checkpoint (--classifier): the Overpowered "
                              "Attack targets it")
        if field == "x_adv":
            raise UsageError(f"space {attacked[0]} attacks the clean images: --field x_adv does not apply",
                              hint="drop --field")
        attack_params = overpowered_params(**(overpowered or {}))
    dev = resolve_device(device)
    # load every checkpoint before any heavy work, so a wrong file fails at once
    vaes = {}
    for path in dict.fromkeys(f.vae_path for f in figures if f.vae_path is not None):
        checkpoint = load_checkpoint(path, expect_kind="vae")
        vaes[path] = (checkpoint.build_model(dev), str(checkpoint.config.get("loss", checkpoint.arch)))
    classifier, classifier_arch = None, ""
    if classifier_path is not None:
        classifier_ckpt = load_checkpoint(classifier_path, expect_kind="classifier")
        classifier, classifier_arch = classifier_ckpt.build_model(dev), classifier_ckpt.arch

    with open_set(set_path) as reader:
        field = field or ("x_adv" if reader.has_adv else "x_clean")
        if field == "x_adv" and not reader.has_adv:
            raise MadvaeError("clean set: it has no x_adv", set_path, "use --field x_clean")
        indices = np.sort(np.random.default_rng(seed).choice(reader.n, size=min(n, reader.n), replace=False))
        if len(indices) < MIN_SAMPLES:
            raise MadvaeError(f"only {reader.n} samples: UMAP needs at least {MIN_SAMPLES}", set_path)
        images, true_labels = _read_samples(reader, indices, field)
        clean = images if field == "x_clean" or not attacked else _read_samples(reader, indices, "x_clean")[0]
        info = {"dataset": reader.dataset, "split": reader.split, "attack": reader.attack}

    colour_text = f"predicted label ({classifier_arch})" if colour == "predicted" else "true label"
    written, runs = [], {}
    for figure in tqdm(figures, desc="UMAP figures", unit="fig", disable=not progress or len(figures) == 1):
        vae, defense = vaes[figure.vae_path] if figure.vae_path is not None else (None, "none")
        if figure.space in OVERPOWERED_SPACES:
            if figure.vae_path not in runs:
                runs[figure.vae_path] = _attack(vae, classifier, clean, true_labels, attack_params, seed, defense,
                                                progress)
            written.append(_overpowered_figure(figure, runs[figure.vae_path], indices, true_labels, colour,
                                               classifier_arch, attack_params, defense, info, seed, figsize, dpi))
            continue
        features, predicted = _features(images, figure.space, vae, classifier, dev)
        labels = predicted if colour == "predicted" else true_labels
        coords = umap_coordinates(features, seed)
        csv_path, png_path = Path(figure.prefix + ".csv"), Path(figure.prefix + ".png")
        _write_csv(csv_path, indices, coords, labels)
        title = (f"{info['dataset']} {info['split']}, attack {info['attack']}, defense {defense}\n"
                 f"UMAP of {figure.space} space ({field}, n = {len(indices)}), coloured by {colour_text}")
        _write_png(png_path, [(coords, labels, None)], title, figsize, dpi)
        written.append({"csv": csv_path, "png": png_path, "n": int(len(indices)), "space": figure.space,
                        "field": field, "colour": colour, "defense": defense, "title": title, **info})
    return written


def _attack(vae, classifier, images, labels, params: dict, seed: int, defense: str, progress: bool) -> dict:
    batch = 100  # evaluate_overpowered's default batch: the early stop is decided per batch
    total = -(-len(images) // batch) * params["steps"]
    with tqdm(total=total, unit="step", mininterval=1.0, desc=f"overpowered vs {defense}",
              disable=not progress) as bar:
        return attack_latents(vae, classifier, images, labels, params=params, batch_size=batch, seed=seed, bar=bar)


def _overpowered_figure(figure: Figure, run: dict, indices, true_labels, colour: str, classifier_arch: str,
                        params: dict, defense: str, info: dict, seed: int, figsize, dpi: int) -> dict:
    """Figure 5 (overpowered-output) or 6 (overpowered-latent): before and after, one joint UMAP fit."""
    stage = "z" if figure.space == "overpowered-latent" else "output"
    before, after = (run[f"{stage}_{when}"].reshape(len(indices), -1) for when in ("before", "after"))
    coords = umap_coordinates(np.concatenate([before, after]).astype(np.float32), seed)
    if colour == "predicted":
        labels = (run["predicted_before"], run["predicted_after"])
        colour_text = f"the defended prediction ({classifier_arch} after the VAE)"
    else:
        labels, colour_text = (true_labels, true_labels), "true label"
    what, first, second = OVERPOWERED_SPACES[figure.space]
    n = len(indices)
    title = (f"{info['dataset']} {info['split']}: Overpowered Attack on {defense}, robustness norm "
             f"{float(params['norm'])}, n = {n}\nUMAP of {what} ({params['preset']} preset, {params['steps']} steps), "
             f"coloured by {colour_text}")
    csv_path, png_path = Path(figure.prefix + ".csv"), Path(figure.prefix + ".png")
    _write_csv(csv_path, np.concatenate([indices, indices]), coords, np.concatenate(labels),
               stages=["before"] * n + ["after"] * n)
    _write_png(png_path, [(coords[:n], labels[0], first), (coords[n:], labels[1], second)], title,
               (2 * figsize[0], figsize[1]), dpi)
    return {"csv": csv_path, "png": png_path, "n": int(n), "space": figure.space, "field": "x_clean",
            "colour": colour, "defense": defense, "title": title, "norm": params["norm"],
            "budget_fraction": float(np.mean(run["met_budget"])), **info}


def plan_figures(spaces: list[str], vaes: list[str], *, out=None, out_dir=None) -> list[Figure]:
    """The figures a command line asks for. ``out``: exactly one figure at that prefix. ``out_dir``: the input
    figure (if asked) as DIR/input and, for every ``[NAME=]PATH`` in vaes and every other space,
    DIR/NAME_SPACE (NAME defaults to the checkpoint's file stem)."""
    if (out is None) == (out_dir is None):
        raise UsageError("give exactly one of --out (one figure) and --out-dir (several figures)")
    named = named_paths(vaes, "--vae")
    spaces = list(dict.fromkeys(spaces))
    if out is not None:
        if len(spaces) != 1 or len(named) > 1:
            raise UsageError("--out writes one figure: give one --space and at most one --vae",
                              hint="use --out-dir for several figures")
        return [Figure(str(out), spaces[0], next(iter(named.values()), None))]
    through_vae = [space for space in spaces if space != "input"]
    if through_vae and not named:
        raise UsageError(f"space {through_vae[0]} needs a VAE checkpoint (--vae)")
    if named and not through_vae:
        raise UsageError("--vae is not used in space input (the images themselves are embedded)",
                          hint="add --space latent or --space output")
    folder = Path(out_dir)
    figures = [Figure(str(folder / "input"))] if "input" in spaces else []
    figures += [Figure(str(folder / f"{name}_{space}"), space, path)
                for name, path in named.items() for space in through_vae]
    return figures


def _check_figure(figure: Figure) -> None:
    if figure.space not in SPACES:
        raise MadvaeError(f"unknown space {figure.space!r}", hint=f"choose one of {', '.join(SPACES)}")
    if figure.space != "input" and figure.vae_path is None:
        raise UsageError(f"space {figure.space} needs a VAE checkpoint (--vae)")
    if figure.space == "input" and figure.vae_path is not None:
        raise UsageError("--vae is not used in space input (the images themselves are embedded)",
                          hint="use --space latent or output to embed through the VAE")


def _read_samples(reader, indices: np.ndarray, field: str):
    """Read the chosen samples one chunk-sized block at a time, skipping blocks with none of them
    (single-sample reads would decompress the same chunk over and over)."""
    block = reader.chunk_len
    images, labels = [], []
    for start in range(0, reader.n, block):
        stop = min(start + block, reader.n)
        wanted = indices[(indices >= start) & (indices < stop)]
        if len(wanted) == 0:
            continue
        batch = reader.read(start, stop, [field, "y"])
        images.append(batch[field][wanted - start])
        labels.append(batch["y"][wanted - start])
    return np.concatenate(images), np.concatenate(labels)


@torch.inference_mode()
def _features(images: np.ndarray, space: str, vae, classifier, device):
    """Rows to embed (flattened) and, when a classifier is given, its predicted labels."""
    features, predicted = [], []
    for start in range(0, len(images), BATCH):
        x = torch.from_numpy(images[start:start + BATCH]).to(device)
        classified = x
        if vae is not None:
            recon, _, mean, _ = vae(x, sample=False)  # eval mode: decode the posterior mean
            classified = recon
            rows = mean if space == "latent" else recon
        else:
            rows = x
        features.append(rows.flatten(1).float().cpu().numpy())
        if classifier is not None:
            predicted.append(classifier(classified).argmax(1).cpu().numpy())
    return np.concatenate(features), (np.concatenate(predicted) if predicted else None)


def umap_coordinates(features: np.ndarray, seed: int) -> np.ndarray:
    import umap  # slow first import (numba); only this verb needs it

    # n_jobs=1: a fixed random_state forces one thread anyway, and saying so silences umap's warning
    reducer = umap.UMAP(n_components=2, random_state=seed, n_jobs=1, n_neighbors=min(15, len(features) - 1))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs.*")
        return np.asarray(reducer.fit_transform(features), dtype=np.float64)


def _write_csv(path: Path, indices, coords, labels, stages=None) -> None:
    with atomic_output(path) as tmp:
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["index", "x", "y", "label"] + ([] if stages is None else ["stage"]))
            for k, (index, (x, y), label) in enumerate(zip(indices, coords, labels)):
                extra = [] if stages is None else [stages[k]]
                writer.writerow([int(index), f"{x:.6g}", f"{y:.6g}", int(label), *extra])


def _write_png(path: Path, panels, title: str, figsize, dpi: int) -> None:
    """``panels``: (coords, labels, subtitle) per panel, side by side with one colour bar. One panel carries
    ``title`` itself; several have it above them and share their limits (one embedding: a point that moves
    between panels moved in the map)."""
    # Figure + Agg canvas directly: no pyplot global state, no display needed
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    single = len(panels) == 1
    fig = Figure(figsize=figsize, dpi=dpi, layout=None if single else "constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    every = np.concatenate([coords for coords, _, _ in panels])
    low, high = every.min(0), every.max(0)
    pad = 0.05 * np.maximum(high - low, 1e-6)
    for ax, (coords, labels, subtitle) in zip(axes, panels):
        size = 14 * min(1.0, max(0.3, np.sqrt(len(coords) / PAPER_SAMPLES)))
        points = ax.scatter(coords[:, 0], coords[:, 1], c=labels, s=size,
                            cmap=colormaps["Spectral"].resampled(10), vmin=-0.5, vmax=NUM_CLASSES - 0.5)
        ax.set_xticks([])
        ax.set_yticks([])
        if single:
            ax.set_aspect("equal", "datalim")
            ax.set_title(title, fontsize=10)
        else:
            ax.set_xlim(low[0] - pad[0], high[0] + pad[0])
            ax.set_ylim(low[1] - pad[1], high[1] + pad[1])
            ax.set_aspect("equal", "box")
            ax.set_title(subtitle, fontsize=10)
    bar = fig.colorbar(points, ax=axes[0] if single else list(axes), boundaries=np.arange(NUM_CLASSES + 1) - 0.5)
    bar.set_ticks(np.arange(NUM_CLASSES))
    if single:
        fig.tight_layout()
    else:
        fig.suptitle(title, fontsize=10)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
