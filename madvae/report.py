"""Tables like the paper's Table 1 from `madvae attack` result JSON files: one per metric, CSV and Markdown."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from madvae.attacks import ADAPTIVE_ATTACKS, STORED_ATTACKS
from madvae.errors import MadvaeError, UsageError
from madvae.outcomes import defense_label, worst_case_rows
from madvae.registry import SUBSTITUTES, VARIANTS
from madvae.results import load_result
from madvae.seeds import over_seeds
from madvae.table_notes import (attack_settings_note, classifier_note, defense_notes, preset_name, same_settings,
                                settings_label)
from madvae.table_files import METRICS, write_table_files

ATTACK_ROWS = {name: spec.label for name, spec in STORED_ATTACKS.items()}
ADAPTIVE_ROWS = {name: spec.label for name, spec in ADAPTIVE_ATTACKS.items()}
SUBSTITUTE_ROWS = {name: name for name in SUBSTITUTES}
CLEAN_ROW = "No attack (clean digits)"
DEFENSE_ORDER = VARIANTS
BASE_COLUMNS = ("No Attack", "No Defense")


# result kinds whose tables are rows x (No Attack, No Defense, one column per defense), per metric
ROW_KINDS = {
    "whitebox": {"title": "White-box results", "row_header": "Attack", "rows": ATTACK_ROWS,
                 "row_of": lambda r: r["attack"], "per_defense_sets": False,
                 "note": "The attacks target the classifier alone (defense-unaware); a defense column classifies "
                         "the VAE's output for the adversarial image, No Attack the clean image without defense."},
    "blackbox-paper": {"title": "Black-box results, paper mode (white-box on the substitute)",
                       "row_header": "Substitute", "rows": SUBSTITUTE_ROWS,
                       "row_of": lambda r: r.get("substitute"), "per_defense_sets": False,
                       "note": "As the original code's Table 2: FGSM crafted on substitute X, purified by the VAE and "
                               "classified by the same X. This is a white-box attack on X, not a black-box one."},
    "blackbox-transfer": {"title": "Black-box results, transfer mode", "row_header": "Substitute",
                          "rows": SUBSTITUTE_ROWS, "row_of": lambda r: r.get("substitute"),
                          "per_defense_sets": True,
                          "note": "A real black-box attack: a substitute of this architecture is trained on labels "
                                  "queried from the target (classifier behind the defense) with Jacobian "
                                  "augmentation; FGSM crafted on it is classified by the target."},
    "adaptive": {"title": "Adaptive attacks (through the defense)", "row_header": "Attack",
                 "rows": ADAPTIVE_ROWS, "row_of": lambda r: r["attack"], "per_defense_sets": True,
                 "note": "Each attack is crafted against the whole pipeline classifier(VAE(x)) of its column "
                         "(No Defense: against the classifier alone); compare with the defense-unaware white-box "
                         "table."},
}
KINDS = (*ROW_KINDS, "overpowered")
INTERVAL_ROWS = ("accuracy", "original_accuracy")  # overpowered rows that are proportions of the images
OVERPOWERED_ROWS = {"accuracy": "Accuracy", "original_accuracy": "Original Accuracy",
                    "accuracy_within_budget": "Accuracy (L2 budget met)",
                    "original_accuracy_within_budget": "Original Accuracy (L2 budget met)",
                    "budget_fraction": "L2 budget met (fraction of pairs)", "mean_l2": "Mean L2 distance",
                    "clean": "Clean accuracy through the VAE"}
# said under every table of that split, so that a number cannot be mistaken for a test result
SPLIT_NOTES = {"val": "Validation split (held out of the training data): numbers for choosing settings such as "
                      "the loss weights, not test results."}


@dataclass
class ResultTable:
    kind: str
    dataset: str
    split: str
    n: int
    columns: list[str]  # column names after the row header
    row_header: str = "Attack"
    rows: list[dict] = field(default_factory=list)  # {"attack": label, "key": key, <metric>: [cells]}
    # metric -> per row key, the cells to mark (above the column's clean-through-defense value)
    marks: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=lambda: dict(METRICS))  # metric -> caption opening
    skipped: list[str] = field(default_factory=list)  # files without a row here (clean-set evaluations)
    presets: list[str] = field(default_factory=list)  # the attack presets of the results in the table
    notes: list[str] = field(default_factory=list)
    heading: str = ""  # the title of a kind outside ROW_KINDS (the security curves)
    seeds: list[str] = field(default_factory=list)  # merged over these seeds (madvae.seeds); [] for one seed

    @property
    def title(self) -> str:
        if self.heading:
            return self.heading
        return ROW_KINDS[self.kind]["title"] if self.kind in ROW_KINDS else "Overpowered Attack (latent space)"

    def caption(self, metric: str) -> str:
        note = ROW_KINDS[self.kind]["note"] if self.kind in ROW_KINDS else ""
        intervals = (" ± is the half-width of the 95% Wilson interval; a difference inside it is no win."
                     if (self.kind in ROW_KINDS or self.kind == "security") and metric in METRICS else "")
        per = "per cell"
        if self.seeds:
            per = "per seed and cell"
            intervals = (f" Each cell: the mean over {len(self.seeds)} seeds ({', '.join(self.seeds)}: the purifiers' "
                         "training and the attacks' random draws) ± the sample standard deviation over them; a "
                         "difference inside it is no win. The CSVs hold each seed's value.")
        return "\n".join([f"{self.metrics[metric]}: {self.dataset} {self.split}, n = {self.n} {per}.{intervals}",
                           *([SPLIT_NOTES[self.split]] if self.split in SPLIT_NOTES else []),
                           *([note] if note else []), *self.notes])


WhiteboxTable = ResultTable  # the name earlier releases used


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
        raise UsageError("no result files given")
    return files


def _same(results: dict, key, what: str) -> None:
    """All files must agree on ``key(result)``; otherwise name the files on each side."""
    groups: dict = {}
    for path, result in results.items():
        groups.setdefault(key(result), []).append(str(path))
    if len(groups) > 1:
        sides = "; ".join(f"{value}: {', '.join(files)}" for value, files in groups.items())
        raise MadvaeError(f"results of different {what} cannot share one table ({sides})")


def _load_all(result_paths, kind: str, also=()) -> tuple[dict, dict]:
    """(results of ``kind``, results of the kinds in ``also``: the adaptive table's worst case reads the stored
    attacks' results too). All share dataset, split and classifier; those of ``kind`` share n."""
    loaded = {path: load_result(path, kind, also) for path in expand_paths(result_paths)}
    results = {path: r for path, r in loaded.items() if r["kind"] == kind}
    others = {path: r for path, r in loaded.items() if r["kind"] != kind}
    if not results:
        raise MadvaeError(f"no {kind} results among the files", hint=f"the {kind} table needs some")
    _same(loaded, lambda r: r["dataset"], "datasets")
    # a validation number next to a test number would read as one experiment; model selection stays apart
    _same(loaded, lambda r: r["split"], "splits (train/val/test)")
    _same(results, lambda r: r["n"], "sample counts n")
    if kind != "blackbox-paper":  # there each row has its own (substitute) classifier
        _same(loaded, lambda r: r.get("classifier_sha256", ""), "classifiers (classifier_sha256)")
    return results, others


def _defense_columns(names) -> list[str]:
    """The paper's columns first, then any other defense alphabetically."""
    names = set(names) - {"none"}
    return [d for d in DEFENSE_ORDER if d in names] + sorted(names - set(DEFENSE_ORDER))


def _unique_per_defense(group: dict, what: str) -> None:
    seen: dict[str, Path] = {}
    for path, result in group.items():
        name = result["defense"]["name"]
        if name in seen:
            raise MadvaeError(f"two {what} results for defense {name!r}: {seen[name]}, {path}",
                              hint="pass only one of them")
        seen[name] = path


def _row_label(kind: str, label: str, group: dict) -> str:
    """The row's name, with its preset when reduced and, in the adaptive table, the defense it attacks."""
    any_result = next(iter(group.values()))
    parts = [label]
    if kind == "adaptive":
        samples = {r["defense"].get("samples", 0) for r in group.values() if r["defense"]["name"] != "none"}
        if len(samples) > 1:
            raise MadvaeError(f"{any_result['attack']} results against different defenses (samples "
                              f"{', '.join(map(str, sorted(samples)))}) cannot share one row",
                              hint="attack one defense per row: --samples K with eot, the posterior mean otherwise")
        parts[0] += f" vs {defense_label(next(iter(samples), 0))}"
    tags = [settings_label(kind, any_result)]
    if any(r.get("transfer") for r in group.values()):
        tags.append("transfer")
    tag = ", ".join(t for t in tags if t)
    return f"{parts[0]} ({tag})" if tag else parts[0]


def _column_results(results: dict) -> dict:
    """{defense column: one of its results}, after checking that a column is one purifier throughout."""
    by_column: dict = {}
    for path, result in results.items():
        name = result["defense"]["name"]
        if name == "none":
            continue
        first = by_column.setdefault(name, (path, result))
        if first[1]["defense"].get("sha256") != result["defense"].get("sha256"):
            raise MadvaeError(f"defense {name!r} is two different checkpoints (defense.sha256): {first[0]}, {path}",
                              hint="one column is one purifier")
    return {name: result for name, (_, result) in by_column.items()}


def build_row_table(result_paths, kind: str = "whitebox") -> ResultTable:
    """Rows (attacks or substitutes) x No Attack, No Defense and one column per defense, per metric."""
    if kind not in ROW_KINDS:
        raise UsageError(f"unknown table kind {kind!r}", hint=f"choose one of {', '.join(KINDS)}")
    spec = ROW_KINDS[kind]
    results, stored = _load_all(result_paths, kind, also=("whitebox",) if kind == "adaptive" else ())
    first = next(iter(results.values()))
    table = ResultTable(kind, first["dataset"], first["split"], first["n"], list(BASE_COLUMNS),
                        row_header=spec["row_header"])
    by_row: dict[str, dict] = {}
    for path, result in results.items():
        key = spec["row_of"](result)
        if key not in spec["rows"]:
            table.skipped.append(str(path))
            continue
        by_row.setdefault(key, {})[path] = result
    table.columns += _defense_columns(r["defense"]["name"] for g in by_row.values() for r in g.values())
    table.presets = sorted({preset_name(r) for g in by_row.values() for r in g.values()})
    by_column = _column_results({p: r for g in by_row.values() for p, r in g.items()})
    extra = kind == "blackbox-transfer"
    if extra:
        table.metrics["substitute_agreement"] = ("Substitute agreement with the target on the evaluated clean "
                                                 "images (how well the attacker's copy learned the target)")
        queries = sorted({int(r.get("queries", 0)) for g in by_row.values() for r in g.values()})
        table.notes.append(f"Oracle queries per substitute: {', '.join(map(str, queries))}.")
    settings = []
    for key, label in spec["rows"].items():
        group = by_row.get(key)
        if not group:
            continue
        _unique_per_defense(group, key)
        if not spec["per_defense_sets"]:
            # one adversarial set per row, whatever the defense: the baselines must agree
            _same(group, lambda r: r.get("set_sha256", ""), f"{key} sets (set_sha256)")
        same_settings(group, key)
        baseline = next((r for r in group.values() if r["defense"]["name"] == "none"), None)
        if baseline is None and not spec["per_defense_sets"]:
            baseline = next(iter(group.values()))
        row = {"attack": _row_label(kind, label, group), "key": key,
               "preset": "; ".join(sorted({preset_name(r) for r in group.values()}))}
        if any(r.get("transfer") for r in group.values()):
            table.notes.append(f"{label} (transfer): its set was crafted on another classifier than the one "
                               "evaluated (source_classifier_sha256), so it is a transfer attack, not white-box.")
        note = attack_settings_note(kind, label, next(iter(group.values())))
        if note:
            settings.append(note)
        for metric in METRICS:
            any_result = next(iter(group.values()))
            cells = {"No Attack": any_result["metrics"]["clean"][metric],
                     "No Defense": baseline["metrics"]["no_defense"][metric] if baseline else None}
            for result in group.values():
                if result["defense"]["name"] != "none":
                    cells[result["defense"]["name"]] = result["metrics"]["defended"][metric]
            row[metric] = [cells.get(column) for column in table.columns]
        counts = {"No Attack": any_result["n"], "No Defense": baseline["n"] if baseline else None,
                  **{r["defense"]["name"]: r["n"] for r in group.values() if r["defense"]["name"] != "none"}}
        row["n"] = [counts.get(column) for column in table.columns]
        if extra:
            cells = {("No Defense" if r["defense"]["name"] == "none" else r["defense"]["name"]):
                     r.get("substitute_agreement") for r in group.values()}
            row["substitute_agreement"] = [cells.get(column) for column in table.columns]
        table.rows.append(row)
    if not table.rows:
        raise MadvaeError(f"no {kind} results with a table row among the files (only clean-set evaluations?)")
    if kind == "whitebox":
        _add_clean_row(table, by_column)
    if kind == "adaptive":
        rows, notes = worst_case_rows(results, stored, table.columns, {**ATTACK_ROWS, **ADAPTIVE_ROWS})
        table.rows += rows
        table.notes += notes
    else:
        samples = sorted({r["defense"].get("samples", 0) for r in by_column.values()})
        if samples == [0]:
            table.notes.append("Defense: each purifier decodes the posterior mean (the paper's test-time defense).")
        elif samples:
            table.notes.append("Defense: " + ", ".join(defense_label(k) for k in samples) + " (K sampled "
                               "decodings averaged; 0: the posterior mean).")
    table.notes += _settings_notes(settings, table.columns, by_column, results)
    return table


def _settings_notes(row_notes, columns, by_column, results) -> list[str]:
    lines = defense_notes(columns, by_column)
    classifier = classifier_note(results.values())
    if classifier:
        lines.append(classifier)
    lines = row_notes + lines
    if not lines:
        return []
    return ["Reduced settings (read from the result files; quick settings overstate robustness): " + lines[0],
            *lines[1:]]


def _add_clean_row(table: ResultTable, by_column: dict) -> None:
    """Table 1's last row: the clean digits through each defense, and the marks of the cells above it."""
    row = {"attack": CLEAN_ROW, "key": "clean", "preset": "none (clean)"}
    for metric in METRICS:
        clean = table.rows[0][metric][0]
        cells = {"No Attack": clean, "No Defense": clean}
        for name, result in by_column.items():
            cells[name] = (result["metrics"].get("defended_clean") or {}).get(metric)
        row[metric] = [cells.get(column) for column in table.columns]
        row["n"] = [(by_column[column]["n"] if column in by_column else table.rows[0]["n"][0])
                    for column in table.columns]
    table.rows.append(row)
    mark_above_clean(table)
    table.notes.append(f"{CLEAN_ROW}: each purifier's output for the clean test digits. A defended cell marked ↑ "
                       "is above that row's value for the same purifier: the attack's perturbation helps the "
                       "classifier once purified (label leaking: FGSM-like attacks step along the true label's "
                       "gradient, and purifiers trained on such sets learn to undo exactly that), which is not "
                       "robustness; read such a cell as at most the clean-through-defense value. A margin of a "
                       "few digits is within sampling noise.")


def mark_above_clean(table: ResultTable) -> None:
    """Mark each defended cell above the clean row's value for the same purifier (label leaking, Table 1)."""
    clean = next(row for row in table.rows if row["key"] == "clean")
    for metric in METRICS:
        table.marks[metric] = {r["key"]: [k >= 2 and v is not None and clean[metric][k] is not None
                                          and v > clean[metric][k] for k, v in enumerate(r[metric])]
                               for r in table.rows if r is not clean}


def build_whitebox_table(result_paths) -> ResultTable:
    return build_table(result_paths, "whitebox")


def build_overpowered_table(result_paths) -> ResultTable:
    """Table 3's shape: one row per metric, one column per defense (identity is the baseline)."""
    results, _ = _load_all(result_paths, "overpowered")
    _unique_per_defense(results, "overpowered")
    same_settings(results, "overpowered")
    first = next(iter(results.values()))
    by_defense = {r["defense"]["name"]: r for r in results.values()}
    columns = _defense_columns(by_defense)
    table = ResultTable("overpowered", first["dataset"], first["split"], first["n"], columns, row_header="Metric",
                        metrics={"value": "Overpowered Attack: classifier(VAE(G(z*))) against the true label"},
                        presets=sorted({preset_name(r) for r in results.values()}))
    norms = first.get("params", {}).get("norms")
    table.notes.append("Accuracy: over all (image, robustness norm) pairs; Original Accuracy: images correct "
                       "under every norm" + (f" (norms {', '.join(map(str, norms))})" if norms else "") +
                       ". The L2-budget rows keep only attacks whose G(z*) stayed within the distance budget.")
    for key, label in OVERPOWERED_ROWS.items():
        table.rows.append({"attack": label, "key": key, "preset": "; ".join(table.presets),
                           "value": [by_defense[c]["metrics"][key] if c in by_defense else None for c in columns],
                           # intervals over the images for the two accuracies (their pairs share images: the
                           # interval over images is the wider one); none for distances and budget shares
                           **({"n": [by_defense[c]["n"] if c in by_defense else None for c in columns]}
                              if key in INTERVAL_ROWS else {})})
    table.notes.append("± is the half-width of the 95% Wilson interval over the n images (accuracy and original "
                       "accuracy only).")
    note = attack_settings_note("overpowered", "Overpowered Attack", first)
    table.notes += _settings_notes([note] if note else [], columns, by_defense, results)
    return table


def build_table(result_paths, kind: str = "whitebox") -> ResultTable:
    """The table of ``kind``; results of several seeds make one table over them (madvae.seeds)."""
    build = build_overpowered_table if kind == "overpowered" else lambda paths: build_row_table(paths, kind)
    return over_seeds(build, expand_paths(result_paths))


def write_tables(result_paths, out_dir, name: str | None = None, kind: str = "whitebox",
                 table: ResultTable | None = None) -> dict:
    """Write {name}_accuracy.csv and {name}_agreement.csv (overpowered: {name}.csv) and {name}.md into out_dir
    (madvae.table_files); name defaults to the kind; ``table``: already built from the files. Returns {"files":
    {metric or "markdown": path}, "table": table}."""
    name = name or kind
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise UsageError(f"--name {name!r} must be a plain file name stem")
    table = table or build_table(result_paths, kind)
    return {"files": write_table_files(table, out_dir, name), "table": table}
