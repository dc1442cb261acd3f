"""The files of a table (madvae.report.ResultTable): one CSV per metric and the Markdown, every accuracy and
agreement cell with the half-width of its 95% Wilson interval, every caption sentence its own paragraph."""
from __future__ import annotations

import csv
import math
from pathlib import Path

from madvae.intervals import half_width
from madvae.util import atomic_output

METRICS = {"accuracy": "Accuracy against the true label",
           "agreement": "Agreement with the classifier's prediction on the clean image (the original code's metric)"}


def _cell(value) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def _cell_with_interval(value, n, table_n) -> str:
    """``0.9656 ± 0.0036``: the value and the half-width of its 95% Wilson interval, and the cell's n where it is
    not the table's."""
    text = _cell(value)
    half = half_width(value, n) if text else None
    if half is None:
        return text
    return f"{text} ± {half:.4f}" + (f" (n = {n})" if n != table_n else "")


def _cell_over_seeds(mean, sd, seeds, all_seeds) -> str:
    """``0.9656 ± 0.0036``: the mean over the seeds and their sample standard deviation, and the cell's number of
    seeds where it is not the table's."""
    text = _cell(mean)
    if not text:
        return text
    text += f" ± {sd:.4f}" if sd is not None else ""
    return text + (f" ({seeds} seed{'s' if seeds != 1 else ''})" if seeds != all_seeds else "")


# after the cells, so that a CSV read into pandas or R says what made each row without its Markdown caption
PROVENANCE_COLUMNS = ("Dataset", "Split", "n", "Preset")


def _provenance(table, row) -> list:
    counts = sorted({n for n in row.get("n") or [] if n is not None}) or [table.n]
    return [table.dataset, table.split, ";".join(map(str, counts)), row.get("preset") or "; ".join(table.presets)]


def _csv_rows(table, metric) -> list[list]:
    """A CSV's lines: one per row, then the row's dataset, split, n (per seed: each cell's) and attack preset;
    over seeds, one line per row and seed, then its mean and sd (the Seed column)."""
    if not table.seeds:
        return [[table.row_header, *table.columns, *PROVENANCE_COLUMNS]] + [
            [row["attack"], *map(_cell, row[metric]), *_provenance(table, row)] for row in table.rows]
    lines = [[table.row_header, "Seed", *table.columns, *PROVENANCE_COLUMNS]]
    for row in table.rows:
        per_seed, provenance = row["per_seed"][metric], _provenance(table, row)
        lines += [[row["attack"], seed, *map(_cell, per_seed[seed]), *provenance] for seed in table.seeds
                  if seed in per_seed]
        lines += [[row["attack"], "mean", *map(_cell, row[metric]), *provenance],
                  [row["attack"], "sd", *map(_cell, row["sd"][metric]), *provenance]]
    return lines


def write_table_files(table, out_dir, name: str) -> dict:
    """{metric or "markdown": path} of the files written: one CSV per metric (extra views, the transfer mode's
    substitute agreement, live in the Markdown and the JSONs) and the Markdown."""
    out_dir = Path(out_dir)
    written = {}
    csv_metrics = [metric for metric in table.metrics if metric in METRICS] or list(table.metrics)
    for metric in csv_metrics:
        path = out_dir / (f"{name}.csv" if len(csv_metrics) == 1 and metric not in METRICS else f"{name}_{metric}.csv")
        with atomic_output(path) as tmp:
            with open(tmp, "w", newline="") as handle:
                csv.writer(handle).writerows(_csv_rows(table, metric))
        written[metric] = path
    path = out_dir / f"{name}.md"
    with atomic_output(path) as tmp:
        Path(tmp).write_text(_markdown(table))
    written["markdown"] = path
    return written


def markdown_text(value) -> str:
    """Text from a result file as one Markdown table cell or line: a '|' or a line break in a defense name (or
    any field another lab wrote) would otherwise end the cell or forge a row."""
    text = " ".join(str(value).split())  # every line break and run of blanks becomes one space
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;")


def _markdown(table) -> str:
    md = markdown_text
    lines = [f"# {md(table.title)}: {md(table.dataset)} {md(table.split)}", ""]
    for metric in table.metrics:
        if len(table.metrics) > 1:
            lines += [f"## {metric.replace('_', ' ').capitalize()}", ""]
        lines += [f"| {md(table.row_header)} | " + " | ".join(map(md, table.columns)) + " |",
                  "|---|" + "---:|" * len(table.columns)]
        for row in table.rows:
            marks = table.marks.get(metric, {}).get(row["key"], [])
            counts = row.get("n") if metric in METRICS or metric == "value" else None
            if table.seeds:
                cells = [_cell_over_seeds(v, row["sd"][metric][k], row["seed_counts"][k], len(table.seeds))
                         for k, v in enumerate(row[metric])]
            else:
                cells = [_cell_with_interval(v, counts[k] if counts else None, table.n) for k, v in enumerate(row[metric])]
            cells = [cell + (" ↑" if k < len(marks) and marks[k] else "") for k, cell in enumerate(cells)]
            lines.append(f"| {md(row['attack'])} | " + " | ".join(cells) + " |")
        lines.append("")
        for sentence in table.caption(metric).splitlines():  # each caption sentence its own paragraph
            lines += [md(sentence), ""]
    return "\n".join(lines)
