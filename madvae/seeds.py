"""Tables over seeds. The workflow's `seeds:` repeats the purifiers' training and every evaluation once per seed;
`madvae report` then builds one table per seed from the same files and merges them: each cell the mean over the
seeds and their sample standard deviation, each seed's own value kept for the CSVs (madvae.table_files)."""
from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path
from typing import TYPE_CHECKING

from madvae.errors import MadvaeError
from madvae.results import load_result

if TYPE_CHECKING:  # madvae.report imports this module
    from madvae.report import ResultTable


def seed_label(result: dict) -> str:
    """The seed a result belongs to: its evaluation's seed, with the purifier's training seed when that differs
    (``trained/evaluated``). Results written before seeds were recorded count as seed 0, the default of both."""
    evaluated = result.get("seed", 0)
    trained = (result["defense"].get("training") or {}).get("seed")
    return str(evaluated) if trained is None or trained == evaluated else f"{trained}/{evaluated}"


def _label_order(label: str):
    return tuple(int(part) if part.isdigit() else 0 for part in label.split("/"))


def results_by_seed(paths) -> dict[str, list[Path]]:
    """{seed label: its files}, labels in numeric order."""
    groups: dict[str, list[Path]] = {}
    for path in paths:
        groups.setdefault(seed_label(load_result(path, None)), []).append(Path(path))
    return {label: groups[label] for label in sorted(groups, key=_label_order)}


def over_seeds(build, paths):
    """``build(paths)`` for the files of one seed; with several seeds, the per-seed tables merged."""
    groups = results_by_seed(paths)
    if len(groups) == 1:
        return build(paths)
    return merge_seed_tables({label: build(files) for label, files in groups.items()})


def _ordered_union(lists) -> list:
    return list(dict.fromkeys(item for items in lists for item in items))


def merge_seed_tables(tables: dict) -> ResultTable:
    """One table whose cells are the mean over the seeds' cells (``row["sd"]``: their sample standard deviation,
    None from a single value; ``row["per_seed"]``: {metric: {seed: cells}}). Every seed must be the same
    experiment: one kind, dataset, split and n."""
    first = next(iter(tables.values()))
    for label, table in tables.items():
        found = (table.kind, table.dataset, table.split, table.n)
        if found != (first.kind, first.dataset, first.split, first.n):
            raise MadvaeError(f"seed {label}'s results ({', '.join(map(str, found))}) are not the same experiment "
                              f"as seed {next(iter(tables))}'s ({first.kind}, {first.dataset}, {first.split}, "
                              f"{first.n})", hint="one table takes one kind, dataset, split and n for every seed")
    columns = _ordered_union(t.columns for t in tables.values())
    merged = dataclasses.replace(
        first, columns=columns, rows=[], marks={}, seeds=list(tables),
        presets=sorted(set(_ordered_union(t.presets for t in tables.values()))),
        notes=_ordered_union(t.notes for t in tables.values()),
        skipped=_ordered_union(t.skipped for t in tables.values()))
    for key in _ordered_union([row["key"] for row in t.rows] for t in tables.values()):
        sources = {label: row for label, t in tables.items() for row in t.rows if row["key"] == key}
        merged.rows.append(_merge_row(sources, {label: tables[label].columns for label in sources}, columns,
                                      merged.metrics))
    if first.marks:  # Table 1's marks, recomputed on the means
        from madvae.report import mark_above_clean

        mark_above_clean(merged)
    return merged


def _merge_row(sources: dict, source_columns: dict, columns: list, metrics) -> dict:
    def cells(label, field):
        row, own = sources[label], source_columns[label]
        values = row.get(field)
        return [values[own.index(c)] if values is not None and c in own else None for c in columns]

    row = {k: v for k, v in next(iter(sources.values())).items() if k not in (*metrics, "n")}
    row.update(sd={}, per_seed={}, seed_counts=[0] * len(columns))
    for metric in metrics:
        per_seed = {label: cells(label, metric) for label in sources}
        row["per_seed"][metric] = per_seed
        means, sds = [], []
        for k in range(len(columns)):
            values = [v[k] for v in per_seed.values() if v[k] is not None]
            row["seed_counts"][k] = max(row["seed_counts"][k], len(values))
            means.append(statistics.fmean(values) if values else None)
            sds.append(statistics.stdev(values) if len(values) > 1 else None)
        row[metric], row["sd"][metric] = means, sds
    if any("n" in source for source in sources.values()):
        counts = [cells(label, "n") for label in sources]
        row["n"] = [next((c[k] for c in counts if c[k] is not None), None) for k in range(len(columns))]
    return row
