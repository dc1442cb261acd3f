"""`madvae inspect`: a human summary of a set, a checkpoint or a result JSON; an invalid file raises MadvaeError."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from madvae.checkpoint import load_checkpoint
from madvae.errors import MadvaeError
from madvae.results import load_result, metric_text
from madvae.store import NUM_CLASSES, open_set
from madvae.util import refuse_special_file, sha256_file

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def file_kind(path) -> str:
    """"set", "result" or "checkpoint", from the file's first bytes (and its suffix: a broken set is reported as
    a set, a broken result as a result)."""
    path = Path(path)
    refuse_special_file(path)
    if not path.is_file():
        raise MadvaeError("no such file", path)
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head == HDF5_MAGIC or path.suffix.lower() in (".h5", ".hdf5"):
        return "set"
    if head.lstrip()[:1] == b"{" or path.suffix.lower() == ".json":
        return "result"
    return "checkpoint"


def inspect_path(path) -> dict:
    return {"set": summarize_set, "result": summarize_result, "checkpoint": summarize_checkpoint}[file_kind(path)](path)


def summarize_result(path) -> dict:
    """A `madvae attack` result: what was attacked, through what, on how many images, and its numbers."""
    result = load_result(path, kind=None)
    return {"type": "result", "path": str(path), "sha256": sha256_file(path), "kind": result["kind"],
            "encoding": f"{result['encoding-type']} {result['encoding-version']}", "dataset": result["dataset"],
            "split": result["split"], "n": result["n"], "attack": result["attack"],
            "defense": result["defense"]["name"], "samples": result["defense"].get("samples", 0),
            "seed": result.get("seed"), "quick": result.get("quick", False), "params": result.get("params", {}),
            "creator_version": result.get("creator_version"), "metrics": result["metrics"]}


def summarize_set(path, batch_size: int = 2048) -> dict:
    with open_set(path) as reader:
        counts = np.zeros(NUM_CLASSES, dtype=np.int64)
        linf, l2 = [], []
        for batch in reader.batches(batch_size):
            counts += np.bincount(batch["y"], minlength=NUM_CLASSES)
            if reader.has_adv:
                delta = (batch["x_adv"] - batch["x_clean"]).reshape(len(batch["y"]), -1)
                linf.append(np.abs(delta).max(1))
                l2.append(np.sqrt((delta.astype(np.float64) ** 2).sum(1)))
        summary = {
            "type": "set", "path": str(path), "sha256": sha256_file(path), "n": reader.n,
            "dataset": reader.dataset, "split": reader.split, "attack": reader.attack, "params": reader.params,
            "seed": reader.attrs["seed"], "created": reader.attrs["created"],
            "creator": f"{reader.attrs['creator']} {reader.attrs['creator_version']}",
            "encoding": f"{reader.attrs['encoding-type']} {reader.attrs['encoding-version']}",
            "label_counts": counts.tolist(), "provenance": reader.provenance,
            "source_classifier_sha256": reader.attrs.get("source_classifier_sha256", ""),
        }
    if linf:
        linf, l2 = np.concatenate(linf), np.concatenate(l2)
        summary["perturbation"] = {
            "linf_mean": float(linf.mean()), "linf_max": float(linf.max()),
            "l2_mean": float(l2.mean()), "l2_median": float(np.median(l2)), "l2_max": float(l2.max()),
            "unchanged_fraction": float((linf == 0).mean())}
    return summary


def summarize_checkpoint(path) -> dict:
    ckpt = load_checkpoint(path)
    n_parameters = sum(int(t.numel()) for k, t in ckpt.state_dict.items() if "running" not in k
                       and "num_batches" not in k)
    ckpt.build_model()  # proves the weights fit the named architecture
    return {"type": "checkpoint", "path": str(path), "sha256": sha256_file(path), "kind": ckpt.kind,
            "arch": ckpt.arch, "created": ckpt.created, "creator_version": ckpt.creator_version,
            "parameters": n_parameters, "config": ckpt.config, "meta": ckpt.meta}


def format_summary(summary: dict) -> str:
    lines = []
    if summary["type"] == "set":
        lines.append(f"{summary['path']}: madvae set ({summary['encoding']}), {summary['n']} samples")
        lines.append(f"  dataset {summary['dataset']}, split {summary['split']}, attack {summary['attack']}, "
                     f"seed {summary['seed']}")
        if summary["params"]:
            lines.append(f"  params {json.dumps(summary['params'], sort_keys=True)}")
        lines.append("  labels " + " ".join(f"{i}:{c}" for i, c in enumerate(summary["label_counts"])))
        if "perturbation" in summary:
            p = summary["perturbation"]
            lines.append(f"  L-inf mean {p['linf_mean']:.4f} max {p['linf_max']:.4f}; L2 mean {p['l2_mean']:.4f} "
                         f"median {p['l2_median']:.4f} max {p['l2_max']:.4f}; unchanged {p['unchanged_fraction']:.1%}")
            lines.append(f"  crafted on classifier sha256 {summary['source_classifier_sha256'][:16]}...")
        lines.append(f"  created {summary['created']} by {summary['creator']}")
        for key, value in summary["provenance"].items():
            lines.append(f"  provenance {key}: {value}")
    elif summary["type"] == "result":
        defense = summary["defense"] + (f" ({summary['samples']} samples)" if summary["samples"] else "")
        lines.append(f"{summary['path']}: madvae {summary['kind']} result ({summary['encoding']}), attack "
                     f"{summary['attack']}{' (quick)' if summary['quick'] else ''}, defense {defense}")
        seed = "unrecorded" if summary["seed"] is None else summary["seed"]
        lines.append(f"  {summary['dataset']} {summary['split']}, n {summary['n']}, seed {seed}")
        if summary["params"]:
            lines.append(f"  params {json.dumps(summary['params'], sort_keys=True)}")
        lines += [f"  {metric_text(group, values)}" for group, values in summary["metrics"].items()]
        lines.append(f"  written by madvae {summary['creator_version']}")
    else:
        lines.append(f"{summary['path']}: madvae {summary['kind']} checkpoint, arch {summary['arch']}, "
                     f"{summary['parameters']:,} parameters")
        lines.append(f"  created {summary['created']} by madvae {summary['creator_version']}")
        lines.append(f"  config {json.dumps(summary['config'], sort_keys=True)}")
        meta = {k: v for k, v in summary["meta"].items() if k != "history"}
        lines.append(f"  meta {json.dumps(meta, sort_keys=True)}")
    lines.append(f"  sha256 {summary['sha256']}")
    return "\n".join(lines)
