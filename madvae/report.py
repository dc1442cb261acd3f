"""Tables like the paper's Table 1 from `madvae attack` result JSON files: one per metric, CSV and Markdown."""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from madvae.errors import MadvaeError
from madvae.util import atomic_output

# the result JSON format: `madvae attack` (evaluate.py) writes it, this module reads it
RESULT_TYPE = "madvae.result"
RESULT_VERSION = "1.0"
ATTACK_ROWS = {"fgsm": "FGSM", "rfgsm": "Rand-FGSM", "cw": "CW", "mifgsm": "MI-FGSM", "pgd": "PGD",
               "single-pixel": "Single Pixel"}
DEFENSE_ORDER = ("vanilla", "classification", "proximity-distance", "combined", "identity")
BASE_COLUMNS = ("No Attack", "No Defense")
METRICS = {"accuracy": "Accuracy against the true label",
           "agreement": "Agreement with the classifier's prediction on the clean image (the original code's metric)"}


@dataclass
class WhiteboxTable:
    dataset: str
    split: str
    n: int
    columns: list[str]  # "No Attack", "No Defense", then defense names
    rows: list[dict] = field(default_factory=list)  # {"attack": label, "accuracy": [...], "agreement": [...]}
    skipped: list[str] = field(default_factory=list)  # files whose attack has no row (clean-set evaluations)

    def caption(self, metric: str) -> str:
        return (f"{METRICS[metric]}: {self.dataset} {self.split}, n = {self.n} per attack.\n"
                "The attacks target the classifier alone (defense-unaware); a defense column classifies the VAE's "
                "output for the adversarial image, No Attack the clean image without defense.")


def expand_paths(paths) -> list[Path]:
    """Result files as given; a folder stands for its *.json files."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(path.glob("*.json"))
            if not found:
                raise MadvaeError("folder holds no *.json result files", path)
            files.extend(found)
        else:
            files.append(path)
    if not files:
        raise MadvaeError("no result files given")
    return files


def load_result(path) -> dict:
    """One validated white-box result; anything else is an error naming the file."""
    path = Path(path)
    try:
        result = json.loads(path.read_text())
    except FileNotFoundError:
        raise MadvaeError("no such result file", path) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MadvaeError(f"not a readable JSON file ({exc})", path) from None
    if not isinstance(result, dict) or result.get("encoding-type") != RESULT_TYPE:
        kind = result.get("encoding-type") if isinstance(result, dict) else type(result).__name__
        raise MadvaeError(f"not a madvae result (encoding-type {kind!r})", path)
    version = str(result.get("encoding-version", ""))
    if version.split(".")[0] != RESULT_VERSION.split(".")[0]:
        raise MadvaeError(f"unsupported result encoding-version {version!r}", path)
    if result.get("kind") != "whitebox":
        raise MadvaeError(f"a {result.get('kind')!r} result does not belong in the white-box table", path)
    defense = result.get("defense")
    try:
        if not isinstance(defense, dict) or not isinstance(defense.get("name"), str):
            raise KeyError("defense.name")
        for key in ("dataset", "split", "n", "attack"):
            if key not in result:
                raise KeyError(key)
        needed = ["clean"]
        if result["attack"] != "none":
            needed.append("no_defense")
            if defense["name"] != "none":
                needed.append("defended")
        for key in needed:
            for metric in METRICS:
                group = result.get("metrics", {}).get(key) if isinstance(result.get("metrics"), dict) else None
                value = group.get(metric) if isinstance(group, dict) else None
                if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
                    raise KeyError(f"metrics.{key}.{metric} (got {value!r}, expected a number in [0, 1])")
    except (KeyError, TypeError) as exc:
        missing = exc.args[0] if isinstance(exc, KeyError) else exc
        raise MadvaeError(f"result is missing or has a malformed field: {missing}", path) from None
    return result


def _same(results: dict, key, what: str) -> None:
    """All files must agree on ``key(result)``; otherwise name the files on each side."""
    groups: dict = {}
    for path, result in results.items():
        groups.setdefault(key(result), []).append(str(path))
    if len(groups) > 1:
        sides = "; ".join(f"{value}: {', '.join(files)}" for value, files in groups.items())
        raise MadvaeError(f"results of different {what} cannot share one table ({sides})")


def build_whitebox_table(result_paths) -> WhiteboxTable:
    results = {path: load_result(path) for path in expand_paths(result_paths)}
    _same(results, lambda r: (r["dataset"], r["split"]), "datasets or splits")
    _same(results, lambda r: r["n"], "sample counts n")
    _same(results, lambda r: r.get("classifier_sha256", ""), "classifiers (classifier_sha256)")
    first = next(iter(results.values()))
    table = WhiteboxTable(first["dataset"], first["split"], first["n"], list(BASE_COLUMNS))

    by_attack: dict[str, dict] = {}
    for path, result in results.items():
        if result["attack"] not in ATTACK_ROWS:
            table.skipped.append(str(path))
            continue
        by_attack.setdefault(result["attack"], {})[path] = result
    defenses = {r["defense"]["name"] for group in by_attack.values() for r in group.values()} - {"none"}
    # the paper's columns first, then any other defense alphabetically
    table.columns += [d for d in DEFENSE_ORDER if d in defenses] + sorted(defenses - set(DEFENSE_ORDER))

    for attack, label in ATTACK_ROWS.items():
        group = by_attack.get(attack)
        if not group:
            continue
        # every result of one attack evaluates the same adversarial set; the baselines must therefore agree
        _same(group, lambda r: r.get("set_sha256", ""), f"{attack} sets (set_sha256)")
        seen: dict[str, Path] = {}
        for path, result in group.items():
            name = result["defense"]["name"]
            if name != "none" and name in seen:
                raise MadvaeError(f"two {attack} results for defense {name!r}: {seen[name]}, {path}",
                                  hint="pass only one of them")
            seen[name] = path
        row = {"attack": label, "key": attack}
        for metric in METRICS:
            any_result = next(iter(group.values()))["metrics"]
            cells = {"No Attack": any_result["clean"][metric], "No Defense": any_result["no_defense"][metric]}
            for result in group.values():
                if result["defense"]["name"] != "none":
                    cells[result["defense"]["name"]] = result["metrics"]["defended"][metric]
            row[metric] = [cells.get(column) for column in table.columns]
        table.rows.append(row)
    if not table.rows:
        raise MadvaeError("no white-box attack results among the files (only clean-set evaluations)")
    return table


def _cell(value) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def write_tables(result_paths, out_dir, name: str = "whitebox") -> dict:
    """Write {name}_accuracy.csv, {name}_agreement.csv and {name}.md into out_dir; return their paths."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise MadvaeError(f"--name {name!r} must be a plain file name stem")
    table = build_whitebox_table(result_paths)
    out_dir = Path(out_dir)
    written = {}
    for metric in METRICS:
        path = out_dir / f"{name}_{metric}.csv"
        with atomic_output(path) as tmp:
            with open(tmp, "w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["Attack", *table.columns])
                for row in table.rows:
                    writer.writerow([row["attack"], *map(_cell, row[metric])])
        written[metric] = path
    path = out_dir / f"{name}.md"
    with atomic_output(path) as tmp:
        Path(tmp).write_text(_markdown(table))
    written["markdown"] = path
    return {"files": written, "table": table}


def _markdown(table: WhiteboxTable) -> str:
    lines = [f"# White-box results: {table.dataset} {table.split}", ""]
    for metric in METRICS:
        lines += [f"## {metric.capitalize()}", "",
                  "| Attack | " + " | ".join(table.columns) + " |",
                  "|---|" + "---:|" * len(table.columns)]
        lines += [f"| {row['attack']} | " + " | ".join(map(_cell, row[metric])) + " |" for row in table.rows]
        lines.append("")
        for sentence in table.caption(metric).splitlines():  # each caption sentence its own paragraph
            lines += [sentence, ""]
    return "\n".join(lines)
