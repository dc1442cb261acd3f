"""Model selection for training-option sweeps: each candidate purifier's validation results -> one kept model
per variant, a table of every combination (CSV, Markdown) and a JSON record of the winners.

A candidate is one checkpoint; its variant is the result's defense name and its combination the training
options saved in the checkpoint (so nothing is parsed from paths). The paper chose its loss weights the same
way: on a validation set made with another attack setting than the test sets.
"""
from __future__ import annotations

import csv
import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from madvae.checkpoint import load_checkpoint
from madvae.errors import MadvaeError, UsageError
from madvae.registry import SWEEP_OPTIONS
from madvae.report import DEFENSE_ORDER, _same, expand_paths
from madvae.table_files import markdown_text
from madvae.results import load_result
from madvae.util import atomic_output, read_json_file, sha256_file

SELECTION_TYPE = "madvae.selection"
SELECTION_VERSION = "1.0"
OPTIONS = SWEEP_OPTIONS  # what a sweep may vary
CRITERIA = {
    "mean-accuracy": "mean validation accuracy over the validation attacks",
    "min-accuracy": "lowest validation accuracy over the validation attacks (the worst attack)",
}
DECIMALS = 10  # scores equal to this many decimals are a tie (means of k/n fractions differ only in rounding)
TIE_BREAK = ("ties go to the higher other statistic (min for mean-accuracy, mean for min-accuracy), then to the "
             f"smallest option values compared in the order {', '.join(OPTIONS)}")


@dataclass
class Candidate:
    variant: str
    checkpoint: str
    sha256: str
    loss: str
    options: dict  # OPTIONS -> value, from the checkpoint's saved config
    accuracy: dict = field(default_factory=dict)  # validation set label -> accuracy through this purifier
    rank: int = 0
    kept: bool = False

    @property
    def mean(self) -> float:
        return sum(self.accuracy.values()) / len(self.accuracy)

    @property
    def min(self) -> float:
        return min(self.accuracy.values())


def _candidates(result_paths) -> tuple[list[Candidate], list[str], dict]:
    """(candidates, validation set labels, the results' shared dataset/split/n)."""
    results = {path: load_result(path, "whitebox") for path in expand_paths(result_paths)}
    for path, result in results.items():
        if result["split"] != "val":  # selecting on test data would leak the test set into the model
            raise MadvaeError(f"a result on split {result['split']!r}; selection uses validation results only",
                              path, "evaluate the candidates on sets made from --split val")
        if result["defense"]["name"] == "none" or not result["defense"].get("checkpoint"):
            raise MadvaeError("an undefended result; selection compares purifiers (madvae attack --vae)", path)
        if result["attack"] == "none":
            raise MadvaeError("a clean-set result; selection needs adversarial validation sets", path)
    _same(results, lambda r: (r["dataset"], r["split"]), "datasets or splits")
    _same(results, lambda r: r["n"], "sample counts n")
    _same(results, lambda r: r.get("classifier_sha256", ""), "classifiers (classifier_sha256)")
    sets: dict[str, tuple] = {}
    by_checkpoint: dict[tuple, Candidate] = {}
    for path, result in results.items():
        label, defense = Path(result["set"]).stem, result["defense"]
        seen = sets.setdefault(label, (result.get("set_sha256"), path))
        if seen[0] != result.get("set_sha256"):
            raise MadvaeError(f"two different validation sets named {label!r}: {seen[1]}, {path}",
                              hint="every candidate must be scored on the same sets")
        key = (defense["name"], defense.get("sha256"))
        if key not in by_checkpoint:
            by_checkpoint[key] = _candidate(defense, path)
        candidate = by_checkpoint[key]
        if label in candidate.accuracy:
            raise MadvaeError(f"two results of checkpoint {candidate.checkpoint} on set {label!r}", path,
                              "pass only one of them")
        candidate.accuracy[label] = result["metrics"]["defended"]["accuracy"]
    labels = sorted(sets)
    candidates = list(by_checkpoint.values())
    _check_grid(candidates, labels)
    first = next(iter(results.values()))
    return candidates, labels, {"dataset": first["dataset"], "split": first["split"], "n": first["n"]}


def _candidate(defense: dict, result_path) -> Candidate:
    """A candidate from the checkpoint a result names; it must still be the file that was evaluated."""
    path = Path(defense["checkpoint"])
    if not path.is_file():
        raise MadvaeError(f"the evaluated checkpoint {path} is not there", result_path,
                          "selection reads each candidate's training options from its checkpoint")
    if sha256_file(path) != defense.get("sha256"):
        raise MadvaeError("checkpoint changed since it was evaluated (sha256 differs from the result's)", path,
                          f"re-run the evaluation {result_path}")
    config = load_checkpoint(path, expect_kind="vae").config
    missing = [key for key in OPTIONS if key not in config]
    if missing or "loss" not in config:
        raise MadvaeError(f"checkpoint config lacks {', '.join(missing or ['loss'])}", path)
    return Candidate(defense["name"], str(path), defense["sha256"], config["loss"],
                     {key: config[key] for key in OPTIONS})


def _check_grid(candidates: list[Candidate], labels: list[str]) -> None:
    """Every candidate scored on every set, one loss per variant, no combination twice in a variant."""
    seen: dict[tuple, Candidate] = {}
    for c in candidates:
        missing = sorted(set(labels) - set(c.accuracy))
        if missing:
            raise MadvaeError(f"no validation result on {', '.join(missing)}", c.checkpoint,
                              "every candidate must be scored on the same sets")
        first = next(o for o in candidates if o.variant == c.variant)
        if first.loss != c.loss:
            raise MadvaeError(f"variant {c.variant!r} mixes losses {first.loss} ({first.checkpoint}) and {c.loss}",
                              c.checkpoint)
        key = (c.variant, tuple(c.options[k] for k in OPTIONS))
        if key in seen:
            raise MadvaeError(f"variant {c.variant!r} has two checkpoints with the same options: "
                              f"{seen[key].checkpoint}, {c.checkpoint}", hint="pass the results of only one")
        seen[key] = c


def _order(variants) -> list[str]:
    names = set(variants)
    return [d for d in DEFENSE_ORDER if d in names] + sorted(names - set(DEFENSE_ORDER))


def select(result_paths, criterion: str = "mean-accuracy") -> dict:
    """Rank each variant's candidates by ``criterion`` (higher is better; ties as TIE_BREAK) and keep the first.
    Returns the selection record that write_selection stores as JSON."""
    if criterion not in CRITERIA:
        raise MadvaeError(f"unknown selection criterion {criterion!r}", hint=f"choose one of {', '.join(CRITERIA)}")
    candidates, labels, shared = _candidates(result_paths)
    swept = [key for key in OPTIONS if len({(c.variant, c.options[key]) for c in candidates})
             > len({c.variant for c in candidates})]  # an option with two values within some variant

    def rank_key(c: Candidate):
        first, second = (c.mean, c.min) if criterion == "mean-accuracy" else (c.min, c.mean)
        return -round(first, DECIMALS), -round(second, DECIMALS), tuple(c.options[k] for k in OPTIONS)

    selected, rows = {}, []
    for variant in _order(c.variant for c in candidates):
        group = sorted((c for c in candidates if c.variant == variant), key=rank_key)
        for rank, c in enumerate(group, 1):
            c.rank, c.kept = rank, rank == 1
        winner = group[0]
        selected[variant] = {"checkpoint": winner.checkpoint, "sha256": winner.sha256, "options": winner.options,
                             "score": winner.mean if criterion == "mean-accuracy" else winner.min}
        rows += sorted(group, key=lambda c: tuple(c.options[k] for k in OPTIONS))  # grid order in the table
    return {"encoding-type": SELECTION_TYPE, "encoding-version": SELECTION_VERSION, **shared,
            "criterion": criterion, "criterion_text": CRITERIA[criterion], "tie_break": TIE_BREAK,
            "attacks": labels, "swept": swept, "selected": selected,
            "candidates": [{"variant": c.variant, "checkpoint": c.checkpoint, "sha256": c.sha256,
                            "options": c.options, "accuracy": c.accuracy, "mean": c.mean, "min": c.min,
                            "rank": c.rank, "kept": c.kept} for c in rows]}


def _cell(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) and not math.isnan(value) else str(value)


def _rows(record: dict) -> tuple[list[str], list[list[str]]]:
    header = ["variant", *record["swept"], *record["attacks"], "mean", "min", "rank", "kept"]
    rows = [[c["variant"], *(str(c["options"][k]) for k in record["swept"]),
             *(_cell(c["accuracy"][a]) for a in record["attacks"]), _cell(c["mean"]), _cell(c["min"]),
             str(c["rank"]), "yes" if c["kept"] else "no"] for c in record["candidates"]]
    return header, rows


def write_selection(result_paths, out_dir, name: str = "selection", criterion: str = "mean-accuracy") -> dict:
    """Write {name}.csv, {name}.md and {name}.json (the winners, read by install_selected) into out_dir."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise UsageError(f"--name {name!r} must be a plain file name stem")
    record = select(result_paths, criterion)
    out_dir = Path(out_dir)
    header, rows = _rows(record)
    files = {"csv": out_dir / f"{name}.csv", "markdown": out_dir / f"{name}.md", "json": out_dir / f"{name}.json"}
    with atomic_output(files["csv"]) as tmp:
        with open(tmp, "w", newline="") as handle:
            csv.writer(handle).writerows([header, *rows])
    with atomic_output(files["markdown"]) as tmp:
        Path(tmp).write_text(_markdown(record, header, rows))
    with atomic_output(files["json"]) as tmp:
        Path(tmp).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return {"files": files, "record": record}


def _markdown(record: dict, header: list[str], rows: list[list[str]]) -> str:
    md = markdown_text  # names and values come from other files: one cell each, never a forged row
    lines = [f"# Model selection on the validation sets: {md(record['dataset'])} {md(record['split'])}", "",
             "| " + " | ".join(map(md, header)) + " |", "|---|" + "---:|" * (len(header) - 1)]
    lines += ["| " + " | ".join(map(md, row)) + " |" for row in rows]
    return "\n".join(lines + [
        "", f"Accuracy of classifier(VAE(x_adv)) against the true label on each validation set "
            f"({', '.join(record['attacks'])}), n = {record['n']} per cell.", "",
        f"Criterion: {record['criterion']}, the {record['criterion_text']}; higher is better. Equal scores "
        f"(to {DECIMALS} decimals): {record['tie_break']}.", "",
        "kept: the one model of each variant that goes on to the test tables.", ""])


def load_selection(path) -> dict:
    path = Path(path)
    record = read_json_file(path, "selection")
    if not isinstance(record, dict) or record.get("encoding-type") != SELECTION_TYPE \
            or not isinstance(record.get("selected"), dict):
        raise MadvaeError("not a madvae selection record", path, "write one with madvae report --kind selection")
    return record


def install_selected(selection_path, variant: str, out) -> dict:
    """Copy the kept checkpoint of ``variant`` byte for byte to ``out``, with its training logs beside it
    (<stem>.train.csv, <stem>.steps.csv, as madvae train writes them)."""
    from madvae.train import log_path_for, steps_log_path_for

    record = load_selection(selection_path)
    if variant not in record["selected"]:
        raise MadvaeError(f"no kept model for variant {variant!r} (selected: {', '.join(record['selected'])})",
                          selection_path)
    winner = record["selected"][variant]
    if not isinstance(winner, dict) or not all(isinstance(winner.get(k), str) for k in ("checkpoint", "sha256")):
        raise MadvaeError(f"selected.{variant} lacks its checkpoint or sha256", selection_path)
    source = Path(winner["checkpoint"])
    if not source.is_file() or sha256_file(source) != winner["sha256"]:
        raise MadvaeError("the kept checkpoint is missing or changed since the selection", source,
                          f"re-run the selection {selection_path}")
    pairs = [(source, Path(out)), (log_path_for(source), log_path_for(out)),
             (steps_log_path_for(source), steps_log_path_for(out))]
    for src, _ in pairs[1:]:
        if not src.is_file():
            raise MadvaeError("training log of the kept checkpoint is missing", src)
    for src, dst in pairs:
        with atomic_output(dst) as tmp:
            shutil.copyfile(src, tmp)
    return {"variant": variant, "source": str(source), "out": str(out), "options": winner["options"]}


def main(argv=None) -> int:
    """The workflow's install_vae step, `python -m madvae.selection SELECTION.json VARIANT OUT.pt`: a module
    entry rather than a Snakemake script, so it runs with the same Python as every other rule (--sdm none,
    conda or apptainer)."""
    import sys

    args = sys.argv[1:] if argv is None else list(argv)
    if len(args) != 3:
        print("usage: python -m madvae.selection SELECTION.json VARIANT OUT.pt", file=sys.stderr)
        return UsageError.EXIT_CODE
    try:
        done = install_selected(*args)
    except MadvaeError as exc:  # one line, as the madvae CLI prints it
        print(f"madvae: error: {exc}", file=sys.stderr)
        return exc.EXIT_CODE
    options = ", ".join(f"{key} {value}" for key, value in done["options"].items())
    print(f"{done['out']}: kept {done['source']} ({options}) with its training logs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
