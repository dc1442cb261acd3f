"""Figures beside the tables: sample grids (clean / adversarial / purified digits with the classifier's
predictions) and training curves of the purifiers' loss terms."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch

from madvae.errors import MadvaeError
from madvae.defense import load_classifier, load_defense
from madvae.store import open_set
from madvae.util import atomic_output, resolve_device


def _figure(width: float, height: float, dpi: int):
    # Figure + Agg canvas directly: no pyplot global state, no display needed
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path, dpi: int) -> Path:
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return path


_NOT_ATTACK_PARAMS = {"attack", "batch_size", "device", "library", "library_version", "preset", "quick", "torch_version"}


def _first_of_each_class(labels: np.ndarray, per_class: int) -> np.ndarray:
    """Indices of the first ``per_class`` samples of every label present, in label order: every digit shows."""
    picked = [np.flatnonzero(labels == digit)[:per_class] for digit in range(10)]
    return np.concatenate(picked)


@torch.inference_mode()
def sample_grid(set_path, out, *, classifier_path, vaes: dict[str, Path], per_class: int = 1,
                device: str = "auto", dpi: int = 120) -> Path:
    """One column per sample (the first of each digit); rows: clean, adversarial, then each purifier's output of
    the adversarial image. Each digit is titled with the classifier's prediction, red when wrong."""
    dev = resolve_device(device)
    with open_set(set_path) as reader:
        if not reader.has_adv:
            raise MadvaeError("a clean set: sample grids need an adversarial set (x_adv)", set_path)
        labels = reader.read(0, len(reader), ["y"])["y"]
        index = _first_of_each_class(labels, per_class)
        data = {name: np.stack([reader.read(int(i), int(i) + 1, [name])[name][0] for i in index])
                for name in ("x_clean", "x_adv")}
        shown = {k: v for k, v in reader.params.items() if k not in _NOT_ATTACK_PARAMS}
        title = (f"{reader.dataset} {reader.split}, {reader.attack}: the classifier's prediction above each digit "
                 f"(red: wrong)\n" + ", ".join(f"{k} {v}" for k, v in sorted(shown.items())))
    classifier, _ = load_classifier(classifier_path, dev)
    rows = [("clean", torch.from_numpy(data["x_clean"])), (f"{reader.attack}", torch.from_numpy(data["x_adv"]))]
    for name, path in vaes.items():
        _, purify, _ = load_defense(path, dev)
        rows.append((f"{name}(adv)", purify(rows[1][1].to(dev)).cpu()))
    truth = labels[index]
    margin = 1.7  # inches, for the row names
    fig = _figure(0.9 * len(index) + margin, 1.0 * len(rows) + 0.6, dpi)
    grid = fig.add_gridspec(len(rows), len(index))
    for r, (row_name, images) in enumerate(rows):
        predicted = classifier(images.to(dev)).argmax(1).cpu().numpy()
        for c in range(len(index)):
            ax = fig.add_subplot(grid[r, c])
            ax.imshow(images[c, 0].numpy(), cmap="gray", vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(str(predicted[c]), fontsize=8, color="black" if predicted[c] == truth[c] else "red", pad=2)
            if c == 0:
                ax.set_ylabel(row_name, fontsize=8, rotation=0, ha="right", va="center")
    fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(left=margin / (0.9 * len(index) + margin), right=0.99, top=0.82, bottom=0.02, hspace=0.5)
    return _save(fig, Path(out), dpi)


def read_log(path) -> dict[str, np.ndarray]:
    """A training log (CSV written by `madvae train`) as columns of floats."""
    path = Path(path)
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise MadvaeError(f"cannot read: {exc.strerror or exc}", path) from exc
    if not rows or "total" not in rows[0]:
        raise MadvaeError("not a madvae training log (no 'total' column)", path)
    try:
        return {key: np.array([float(row[key]) if row[key] != "" else np.nan for row in rows])
                for key in rows[0]}
    except (TypeError, ValueError) as exc:
        raise MadvaeError(f"not a madvae training log ({exc})", path) from exc


TERMS = ("reconstruction", "kl", "classification", "proximity", "distance", "total")


def training_curves(logs: dict[str, Path], out, *, dpi: int = 120) -> Path:
    """One panel per loss term, one line per purifier, against training images seen."""
    curves = {name: read_log(path) for name, path in logs.items()}
    terms = [t for t in TERMS if any(t in c and np.isfinite(c[t]).any() for c in curves.values())]
    fig = _figure(3.2 * min(3, len(terms)), 2.6 * -(-len(terms) // 3), dpi)
    for k, term in enumerate(terms):
        ax = fig.add_subplot(-(-len(terms) // 3), min(3, len(terms)), k + 1)
        for name, curve in curves.items():
            if term in curve and np.isfinite(curve[term]).any():
                x = curve["images"] if "images" in curve else curve["epoch"]
                ax.plot(x, curve[term], marker="." if len(x) < 30 else None, label=name, linewidth=1)
        ax.set_title(term, fontsize=9)
        ax.set_xlabel("training images seen" if all("images" in c for c in curves.values()) else "epoch",
                      fontsize=8)
        ax.tick_params(labelsize=7)
        if term in ("total", "reconstruction") and all((c.get(term, np.ones(1)) > 0).all() for c in curves.values()):
            ax.set_yscale("log")
    fig.axes[0].legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, Path(out), dpi)
