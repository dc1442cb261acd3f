"""Per-image outcomes of an evaluation, and the worst case over attacks that they make possible.

A result JSON keeps, for each metric group (clean, no_defense, defended, defended_clean), one bit per image: was
it classified as its true label (``correct``), and as the clean image (``agree``). The bits are numpy's packbits
(first image in the top bit of the first byte) written as hex (docs/format.md, "Per-image outcomes").

The number a reader should quote for a defense is the per-image worst case: an image is robust only if every
attack run on it failed (and the clean digit itself was right). One attack's accuracy is an upper bound on it.
"""
from __future__ import annotations

import numpy as np

from madvae.errors import MadvaeError

OUTCOME_ENCODING = "bits-hex"
METRIC_BITS = {"accuracy": "correct", "agreement": "agree"}


def metrics(predictions: np.ndarray, labels: np.ndarray, clean_predictions: np.ndarray) -> dict:
    """accuracy: against the true label. agreement: against the classifier's prediction on the clean image
    (what the original MAD-VAE code reported as accuracy)."""
    return {"accuracy": float((predictions == labels).mean()),
            "agreement": float((predictions == clean_predictions).mean())}


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


def scored(predictions: dict, labels: list, reader, set_sha256: str) -> dict:
    """A row result's ``metrics`` and ``outcomes`` from per-batch predictions ({metric group: [arrays]}, groups
    with no batches left out) and per-batch true labels."""
    labels = np.concatenate(labels)
    predicted = {key: np.concatenate(values) for key, values in predictions.items() if values}
    clean = predicted["clean"]
    return {"metrics": {key: metrics(values, labels, clean) for key, values in predicted.items()},
            "outcomes": per_image_outcomes(predicted, labels, clean, images_of(reader, set_sha256))}


def encode_bits(values) -> str:
    return np.packbits(np.asarray(values, dtype=bool)).tobytes().hex()


def decode_bits(text, count: int) -> np.ndarray:
    """The booleans of ``encode_bits``; a string of the wrong length or alphabet raises ValueError."""
    if not isinstance(text, str):
        raise ValueError(f"expected a hex string, got {type(text).__name__}")
    raw = bytes.fromhex(text)
    if len(raw) != -(-count // 8):
        raise ValueError(f"holds {len(raw) * 8} bits, expected {count}")
    return np.unpackbits(np.frombuffer(raw, dtype=np.uint8))[:count].astype(bool)


def defense_label(samples) -> str:
    """The defense a defended number is for: the paper's posterior-mean decoding, or K sampled decodings."""
    return "posterior-mean defense" if not samples else f"{samples}-sample defense"


def read_outcomes(path, result: dict) -> tuple[dict, int]:
    """(the result's outcomes, its image count), checked; a missing or malformed record names the file."""
    record = result.get("outcomes")
    if not isinstance(record, dict) or record.get("encoding") != OUTCOME_ENCODING:
        raise MadvaeError("no per-image outcomes (a result written before madvae recorded them, or another "
                          "encoding)", path, "re-run this evaluation to include it in the worst case")
    images = record.get("images")
    count = images.get("count") if isinstance(images, dict) else None
    if (not isinstance(count, int) or isinstance(count, bool) or count != result.get("n")
            or images.get("start") != 0 or not isinstance(images.get("clean_set_sha256"), str)):
        raise MadvaeError("outcomes.images must name the clean set (clean_set_sha256), start 0 and count n", path)
    return record, count


def _bits(path, record: dict, which: str, group: str, count: int, keep: int) -> np.ndarray:
    try:
        return decode_bits(record[which][group], count)[:keep]
    except (KeyError, TypeError, ValueError) as exc:
        raise MadvaeError(f"outcomes.{which}.{group} is missing or malformed ({exc})", path) from None


def worst_case_rows(results: dict, stored: dict, columns: list[str], labels: dict) -> tuple[list[dict], list[str]]:
    """One row per defense kind (posterior mean, K samples) over every given attack on that defense.

    ``results``/``stored``: {path: result} of the table's kind and of stored (white-box) attacks; every one must
    carry outcomes for the same clean images. Per column, an image counts when it was right on the clean digit
    and under every attack on that column's defense (No Defense: every attack on the classifier alone); the
    rows cover the first m images that all the attacks ran on. ``labels``: attack name -> row label."""
    every = {**results, **stored}
    records = {path: read_outcomes(path, result) for path, result in every.items()}
    sources = {record["images"]["clean_set_sha256"] for record, _ in records.values()}
    if len(sources) > 1:
        raise MadvaeError("the worst case needs every attack on the same images, but the results come from "
                          f"{len(sources)} clean sets (outcomes.images.clean_set_sha256)",
                          hint="give the stored and adaptive results of one test set")
    keep = min(count for _, count in records.values())
    kinds = sorted({r["defense"].get("samples", 0) for r in every.values() if r["defense"]["name"] != "none"})
    undefended = [p for p, r in every.items() if r["defense"]["name"] == "none"]
    rows, notes = [], []
    for samples in kinds:
        attacked = [p for p, r in every.items()
                    if r["defense"]["name"] != "none" and r["defense"].get("samples", 0) == samples]
        row = {"attack": f"Worst case vs {defense_label(samples)}", "key": f"worst-case-{samples}"}
        for metric, which in METRIC_BITS.items():
            cells = {}
            for column in columns[2:]:
                parts = [p for p in attacked if every[p]["defense"]["name"] == column]
                if parts:
                    right = _bits(parts[0], records[parts[0]][0], which, "defended_clean", records[parts[0]][1],
                                  keep)
                    for path in parts:
                        right = right & _bits(path, records[path][0], which, "defended", records[path][1], keep)
                    cells[column] = float(right.mean())
            any_path = next(iter(every))
            clean = _bits(any_path, records[any_path][0], which, "clean", records[any_path][1], keep)
            cells["No Attack"] = float(clean.mean())
            if undefended:
                right = clean
                for path in undefended:
                    right = right & _bits(path, records[path][0], which, "no_defense", records[path][1], keep)
                cells["No Defense"] = float(right.mean())
            row[metric] = [cells.get(column) for column in columns]
        row["n"] = [keep if value is not None else None for value in row[metric]]  # the first `keep` images
        rows.append(row)
        names = sorted({labels.get(every[p]["attack"], every[p]["attack"]) for p in attacked})
        notes.append(f"{row['attack']}: per image, right only if the clean digit and every one of "
                     f"{', '.join(names)} against that purifier's {defense_label(samples)} failed to fool it; over "
                     f"the first {keep} test images that all of them ran on.")
    if undefended and rows:
        names = sorted({labels.get(every[p]["attack"], every[p]["attack"]) for p in undefended})
        notes.append(f"Worst case, No Defense: every one of {', '.join(names)} on the classifier alone.")
    return rows, notes
