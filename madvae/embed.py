"""UMAP clustering figures (paper section 3.4): a 2-D embedding of images, VAE latent means or VAE outputs.

Writes ``{prefix}.csv`` (index,x,y,label; index is the sample's position in the set) and ``{prefix}.png``.
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
from madvae.errors import MadvaeError
from madvae.store import NUM_CLASSES, open_set
from madvae.util import atomic_output, named_paths, resolve_device

SPACES = ("input", "latent", "output")
COLOURS = ("true", "predicted")
FIELDS = ("x_adv", "x_clean")
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
              figsize: tuple[float, float] = (7.0, 5.0), dpi: int = 150) -> dict:
    """Embed ``n`` seeded random samples of a set with UMAP and write the coordinates and the figure.

    space: input (the images), latent (the VAE's posterior means) or output (VAE decodings of the mean).
    colour: true (the set's labels) or predicted (the classifier's label for what a defended pipeline
    classifies: the image itself in input space, the VAE output in latent and output space)."""
    figure = Figure(str(out_prefix), space, None if vae_path is None else str(vae_path))
    return embed_figures(set_path, [figure], field=field, classifier_path=classifier_path, colour=colour, n=n,
                         seed=seed, device=device, figsize=figsize, dpi=dpi)[0]


def embed_figures(set_path, figures: list[Figure], *, field: str | None = None, classifier_path=None,
                  colour: str = "true", n: int = 3000, seed: int = 42, device: str = "auto",
                  figsize: tuple[float, float] = (7.0, 5.0), dpi: int = 150, progress: bool = False) -> list[dict]:
    """Several figures of the same samples of one set in one process: UMAP's numba compilation (about 20 s
    on 2 cores) is paid once instead of once per figure. Returns one info dict per figure, in order."""
    if not figures:
        raise MadvaeError("no figure requested", hint="give --space (and --vae for latent or output)")
    for figure in figures:
        _check_figure(figure)
    if colour not in COLOURS:
        raise MadvaeError(f"unknown colour source {colour!r}", hint=f"choose one of {', '.join(COLOURS)}")
    if field is not None and field not in FIELDS:
        raise MadvaeError(f"unknown field {field!r}", hint=f"choose one of {', '.join(FIELDS)}")
    if n < MIN_SAMPLES:
        raise MadvaeError(f"--n {n} is too small: UMAP needs at least {MIN_SAMPLES} samples")
    if colour == "predicted" and classifier_path is None:
        raise MadvaeError("colour predicted needs a classifier checkpoint (--classifier)")
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
        info = {"dataset": reader.dataset, "split": reader.split, "attack": reader.attack}

    colour_text = f"predicted label ({classifier_arch})" if colour == "predicted" else "true label"
    written = []
    for figure in tqdm(figures, desc="UMAP figures", unit="fig", disable=not progress or len(figures) == 1):
        vae, defense = vaes[figure.vae_path] if figure.vae_path is not None else (None, "none")
        features, predicted = _features(images, figure.space, vae, classifier, dev)
        labels = predicted if colour == "predicted" else true_labels
        coords = _umap(features, seed)
        csv_path, png_path = Path(figure.prefix + ".csv"), Path(figure.prefix + ".png")
        _write_csv(csv_path, indices, coords, labels)
        title = (f"{info['dataset']} {info['split']}, attack {info['attack']}, defense {defense}\n"
                 f"UMAP of {figure.space} space ({field}, n = {len(indices)}), coloured by {colour_text}")
        _write_png(png_path, coords, labels, title, figsize, dpi)
        written.append({"csv": csv_path, "png": png_path, "n": int(len(indices)), "space": figure.space,
                        "field": field, "colour": colour, "defense": defense, "title": title, **info})
    return written


def plan_figures(spaces: list[str], vaes: list[str], *, out=None, out_dir=None) -> list[Figure]:
    """The figures a command line asks for. ``out``: exactly one figure at that prefix. ``out_dir``: the input
    figure (if asked) as DIR/input and, for every ``[NAME=]PATH`` in vaes and every other space,
    DIR/NAME_SPACE (NAME defaults to the checkpoint's file stem)."""
    if (out is None) == (out_dir is None):
        raise MadvaeError("give exactly one of --out (one figure) and --out-dir (several figures)")
    named = named_paths(vaes, "--vae")
    spaces = list(dict.fromkeys(spaces))
    if out is not None:
        if len(spaces) != 1 or len(named) > 1:
            raise MadvaeError("--out writes one figure: give one --space and at most one --vae",
                              hint="use --out-dir for several figures")
        return [Figure(str(out), spaces[0], next(iter(named.values()), None))]
    through_vae = [space for space in spaces if space != "input"]
    if through_vae and not named:
        raise MadvaeError(f"space {through_vae[0]} needs a VAE checkpoint (--vae)")
    if named and not through_vae:
        raise MadvaeError("--vae is not used in space input (the images themselves are embedded)",
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
        raise MadvaeError(f"space {figure.space} needs a VAE checkpoint (--vae)")
    if figure.space == "input" and figure.vae_path is not None:
        raise MadvaeError("--vae is not used in space input (the images themselves are embedded)",
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


def _umap(features: np.ndarray, seed: int) -> np.ndarray:
    import umap  # slow first import (numba); only this verb needs it

    # n_jobs=1: a fixed random_state forces one thread anyway, and saying so silences umap's warning
    reducer = umap.UMAP(n_components=2, random_state=seed, n_jobs=1, n_neighbors=min(15, len(features) - 1))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs.*")
        return np.asarray(reducer.fit_transform(features), dtype=np.float64)


def _write_csv(path: Path, indices, coords, labels) -> None:
    with atomic_output(path) as tmp:
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["index", "x", "y", "label"])
            for index, (x, y), label in zip(indices, coords, labels):
                writer.writerow([int(index), f"{x:.6g}", f"{y:.6g}", int(label)])


def _write_png(path: Path, coords, labels, title: str, figsize, dpi: int) -> None:
    # Figure + Agg canvas directly: no pyplot global state, no display needed
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    size = 14 * min(1.0, max(0.3, np.sqrt(len(coords) / PAPER_SAMPLES)))
    points = ax.scatter(coords[:, 0], coords[:, 1], c=labels, s=size, cmap=colormaps["Spectral"].resampled(10),
                        vmin=-0.5, vmax=NUM_CLASSES - 0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal", "datalim")
    ax.set_title(title, fontsize=10)
    bar = fig.colorbar(points, ax=ax, boundaries=np.arange(NUM_CLASSES + 1) - 0.5)
    bar.set_ticks(np.arange(NUM_CLASSES))
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
