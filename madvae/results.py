"""The result JSON format (`madvae.result`): `madvae attack` writes one object per evaluation, `madvae report` and
`madvae inspect --verify` read them. The fields are declared once, in madvae.schemas.RESULT (docs/format.md)."""
from __future__ import annotations

import json
from pathlib import Path

from madvae import __version__
from madvae.errors import MadvaeError, UsageError
from madvae.schemas import RESULT, validate
from madvae.util import atomic_output, read_json_file, sha256_file

RESULT_TYPE = "madvae.result"
RESULT_VERSION = "1.0"


def vae_training(checkpoint) -> dict:
    """What the purifier's training was, as the tables need it to say so (madvae.report.settings_notes)."""
    config, meta = checkpoint.config, checkpoint.meta
    sets = [{key: entry.get(key) for key in ("attack", "preset", "quick", "n")} | {"name": Path(entry["path"]).stem}
            for entry in meta.get("training_sets", []) if isinstance(entry, dict) and "path" in entry]
    return {"loss": config.get("loss"), "epochs": config.get("epochs"), "batch_size": config.get("batch_size"),
            "n_train": meta.get("n_train"), "pairs_per_epoch": meta.get("pairs_per_epoch"),
            "pairs_seen": meta.get("pairs_seen"), "sets": sets, "seed": config.get("seed")}


def classifier_training(checkpoint) -> dict:
    """The target (or substitute) classifier's training: epochs and images seen, for the tables' notes."""
    return {"arch": checkpoint.arch, "epochs": checkpoint.config.get("epochs"),
            "n_train": checkpoint.meta.get("n_train")}


def result_header(kind: str, reader, set_path, n: int, classifier_path, classifier_ckpt, defense: dict,
                  *, attack: str | None = None, params: dict | None = None, seed: int | None = None) -> dict:
    """The fields every result shares; the caller adds ``metrics`` and anything its kind needs. attack/params
    default to those stored in the set; ``seed``: the evaluation's (a table over seeds groups by it and by the
    purifier's training seed, madvae.seeds)."""
    return {
        "encoding-type": RESULT_TYPE, "encoding-version": RESULT_VERSION, "creator_version": __version__,
        "kind": kind, "dataset": reader.dataset, "split": reader.split, "n": int(n),
        "attack": attack if attack is not None else reader.attack,
        "params": params if params is not None else reader.params,
        "set": str(set_path), "set_sha256": sha256_file(set_path),
        "classifier": str(classifier_path), "classifier_sha256": sha256_file(classifier_path),
        "classifier_arch": classifier_ckpt.arch, "classifier_training": classifier_training(classifier_ckpt),
        "defense": defense, **({} if seed is None else {"seed": int(seed)}),
    }


def metric_text(group: str, values, accuracy: str = "accuracy", agreement: str = "agreement") -> str:
    """One metric group as text: ``defended accuracy 0.9100 agreement 0.9300``, a curve's accuracy per eps, or a
    plain number (n/a where it is null: a within-budget accuracy when no attack met the budget)."""
    if isinstance(values, dict) and "eps" in values:
        return f"{group} {accuracy} " + ", ".join(f"eps {e:g}: {a:.4f}" for e, a in zip(values["eps"], values["accuracy"]))
    if isinstance(values, dict):
        return f"{group} {accuracy} {values['accuracy']:.4f} {agreement} {values['agreement']:.4f}"
    return f"{group} {values:.4f}" if isinstance(values, (int, float)) else f"{group} n/a"


def write_result(path, payload: dict) -> Path:
    """Validate (a field of the wrong type is a bug here, not in a reader's file) and write atomically."""
    validate(payload, RESULT, path)
    with atomic_output(path) as tmp:
        Path(tmp).write_text(json.dumps(payload, indent=2, sort_keys=True, allow_nan=False) + "\n")
    return Path(path)


def load_result(path, kind: str | None = "whitebox", also=()) -> dict:
    """One validated result of ``kind`` (or of a kind in ``also``; None: any kind); anything else is one error
    naming the file and the field."""
    path = Path(path)
    result = read_json_file(path, "result")
    if not isinstance(result, dict) or result.get("encoding-type") != RESULT_TYPE:
        found = result.get("encoding-type") if isinstance(result, dict) else type(result).__name__
        raise MadvaeError(f"not a madvae result (encoding-type {found!r})", path)
    version = str(result.get("encoding-version", ""))
    if version.split(".")[0] != RESULT_VERSION.split(".")[0]:
        raise MadvaeError(f"unsupported result encoding-version {version!r}", path)
    validate(result, RESULT, path)
    found = result["kind"]
    if kind is not None and found != kind and found not in also:
        raise UsageError(f"a {found!r} result does not belong in the {kind} table", path,
                          hint=f"pass --kind {found}")
    return result
