"""Our Tables 1-3 beside the paper's (`madvae report --paper`): per cell ours, the paper's and the difference, on
the metric the paper's code computed; the cells only one side has; the paper's claims checked on our results.

The published numbers live in one cited file, madvae/reference/paper.json. Only full-MNIST test results are
compared: the paper's numbers are full-MNIST test numbers, and a table of the 5,000-digit sample or of the
validation split beside them, with a difference column, would read as a reproduction.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

from madvae.errors import MadvaeError, UsageError
from madvae.intervals import interval
from madvae.paper_claims import CHECKS, STATUSES, check_claims, reading
from madvae.report import METRICS, OVERPOWERED_ROWS, ResultTable, build_table, write_tables
from madvae.table_files import markdown_text
from madvae.util import atomic_output, read_json_file

REFERENCE_PATH = Path(__file__).with_name("reference") / "paper.json"
REFERENCE_TYPE = "madvae.paper-reference"
SCALES = {"fraction": (1.0, 4), "percent": (100.0, 2)}  # printed = fraction * factor; decimals we print
FIXED_GROUPS = {"No Attack": "clean", "No Defense": "no_defense"}  # what our table's columns hold; others defended


def load_reference(path=None) -> dict:
    """The paper's tables and claims, checked enough that a typo fails here, not halfway through a report."""
    path = Path(path) if path is not None else REFERENCE_PATH
    reference = read_json_file(path, "paper reference")
    try:
        _validate(reference)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MadvaeError(f"malformed paper reference ({exc})", path) from None
    return reference


def _validate(reference: dict) -> None:
    if reference.get("encoding-type") != REFERENCE_TYPE:
        raise ValueError(f"encoding-type is not {REFERENCE_TYPE}")
    factor, _ = SCALES[reference["scale"]["printed"]]
    for kind, spec in reference["tables"].items():
        columns, rows = spec["columns"], spec["rows"]
        for column in columns if kind != "overpowered" else ():
            if column["group"] != FIXED_GROUPS.get(column["key"], "defended") or column["metric"] not in METRICS:
                raise ValueError(f"{kind} column {column['key']}: group/metric {column['group']}.{column['metric']}")
        for row in rows if kind == "overpowered" else ():
            if row["metric"] not in OVERPOWERED_ROWS:
                raise ValueError(f"overpowered row {row['key']}: unknown metric {row['metric']!r}")
        if set(spec["values"]) != {row["key"] for row in rows}:
            raise ValueError(f"{kind}: values are not one list per row")
        for key, values in spec["values"].items():
            if len(values) != len(columns) or not all(_is_value(v, factor) for v in values):
                raise ValueError(f"{kind} row {key}: expected {len(columns)} numbers in [0, {factor:g}]")
    for claim in reference["claims"]:
        if claim["check"] not in CHECKS or claim["table"] not in reference["tables"]:
            raise ValueError(f"claim {claim['id']}: unknown check or table")
        reading(claim)  # every {parameter} of its reading is there


def _is_value(value, factor) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        and 0 <= value <= factor


def table_spec(reference: dict, kind: str) -> dict:
    if kind not in reference["tables"]:
        known = ", ".join(f"{k} ({s['paper_table']})" for k, s in reference["tables"].items())
        raise UsageError(f"the paper has no table of kind {kind!r} to compare with", hint=f"--paper takes {known}")
    return reference["tables"][kind]


@dataclass
class Comparison:
    kind: str
    spec: dict  # the reference's table
    scale: str
    ours: str  # our data set and split
    cells: list[dict] = field(default_factory=list)  # the paper's cells: row, column, metric, ours, paper, difference
    paper_only: list[str] = field(default_factory=list)  # the paper's rows, columns and cells we have no value for
    ours_only: list[str] = field(default_factory=list)  # our rows and columns the paper's table lacks
    claims: list[dict] = field(default_factory=list)
    caption: list[str] = field(default_factory=list)


def compare(table: ResultTable, reference: dict | None = None) -> Comparison:
    """Our table beside the paper's; a table of another data set or split is refused (see the module's note)."""
    reference = reference or load_reference()
    spec = table_spec(reference, table.kind)
    if (table.dataset, table.split) != (reference["dataset"], reference["split"]):
        raise UsageError(f"--paper compares {reference['dataset']} {reference['split']} results only (the paper's "
                          f"numbers are full-MNIST test numbers); these are {table.dataset} {table.split}",
                          hint=f"evaluate on `madvae gen --dataset {reference['dataset']} --split "
                               f"{reference['split']}` sets to compare")
    factor, _ = SCALES[reference["scale"]["printed"]]
    value, count = _our_values(table, spec)
    comparison = Comparison(table.kind, spec, reference["scale"]["printed"], f"{table.dataset} {table.split}")
    for row in spec["rows"]:
        for column, printed in zip(spec["columns"], spec["values"][row["key"]]):
            ours, n = value(row["key"], column["key"]), count(row["key"], column["key"])
            low_high = interval(ours, n)
            ours = None if ours is None else ours * factor
            comparison.cells.append({
                "row": row["printed"], "column": column["printed"], "metric": _metric(table.kind, row, column),
                "ours": ours, "paper": printed, "difference": None if ours is None else ours - printed, "n": n,
                "ours_interval": None if low_high is None else tuple(bound * factor for bound in low_high)})
    comparison.paper_only, comparison.ours_only = _unmatched(table, spec, value)
    claims = [c for c in reference["claims"] if c["table"] == table.kind]
    comparison.claims = check_claims(claims, spec, value, count)
    comparison.caption = _caption(table, spec, reference)
    return comparison


def _metric(kind: str, row: dict, column: dict) -> str:
    """The result-JSON field a cell compares (docs/format.md)."""
    return f"metrics.{row['metric']}" if kind == "overpowered" else f"metrics.{column['group']}.{column['metric']}"


def _our_values(table: ResultTable, spec: dict):
    """(value, count): value(paper row key, paper column key) -> our fraction on that cell's metric, or None;
    count(...) -> the n it is over, or None."""
    ours = {row["key"]: row for row in table.rows}
    metrics = {column["key"]: column.get("metric") for column in spec["columns"]}
    overpowered_rows = {row["key"]: row.get("metric") for row in spec["rows"]}

    def value(row_key, column_key):
        if table.kind == "overpowered":  # our rows are the metrics
            row, metric = ours.get(overpowered_rows[row_key]), "value"
        else:
            row, metric = ours.get(row_key), metrics[column_key]
        if row is None or column_key not in table.columns:
            return None
        return row[metric][table.columns.index(column_key)]

    def count(row_key, column_key):
        """The cell's n (None where the row has no counts: the overpowered distances)."""
        row = ours.get(overpowered_rows[row_key] if table.kind == "overpowered" else row_key)
        if row is None or "n" not in row or column_key not in table.columns:
            return None
        return row["n"][table.columns.index(column_key)]

    return value, count


def _unmatched(table: ResultTable, spec: dict, value) -> tuple[list[str], list[str]]:
    """(the paper's rows, columns and single cells we lack; our rows and columns the paper lacks)."""
    ours = {row["key"] for row in table.rows}
    # our overpowered table has a row per metric
    paper_rows = {row["metric"] if table.kind == "overpowered" else row["key"]: row for row in spec["rows"]}
    paper_columns = {column["key"]: column["printed"] for column in spec["columns"]}
    paper_only = [f"row {row['printed']}" for key, row in paper_rows.items() if key not in ours]
    paper_only += [f"column {label}" for key, label in paper_columns.items() if key not in table.columns]
    paper_only += [f"{row['printed']} × {label}" for key, row in paper_rows.items() if key in ours
                   for column, label in paper_columns.items()
                   if column in table.columns and value(row["key"], column) is None]
    ours_only = [f"row {row['attack']}" for row in table.rows if row["key"] not in paper_rows]
    ours_only += [f"column {column}" for column in table.columns if column not in paper_columns]
    return paper_only, ours_only


def _caption(table: ResultTable, spec: dict, reference: dict) -> list[str]:
    cite = reference["citation"]
    authors = " and ".join(name.split()[-1] for name in cite["authors"])
    presets = f"preset{'s' if len(table.presets) > 1 else ''} {', '.join(table.presets) or 'unrecorded'}"
    lines = [f"The paper: {spec['paper_table']} of {authors} ({cite['year']}), \"{cite['title']}\", arXiv:"
             f"{cite['arxiv']} (lines {spec['lines']} of its text): {spec['caption']} Full MNIST "
             f"{reference['split']}, n = {spec['n']}.",
             f"Ours: {table.dataset} {table.split}, n = {table.n} per cell, {presets} (from the result files)."]
    if table.n < spec["n"]:
        lines.append(f"Fewer images than the paper ({table.n} of {spec['n']}): one standard error of a cell is up to "
                     f"{0.5 / math.sqrt(table.n):.4f}, so smaller differences are sampling noise.")
    lines.append(f"Each cell: ours (± the half-width of its 95% Wilson interval over its n images) / the paper's "
                 f"(ours minus the paper's); scale: {reference['scale']['note']}. A claim that one defense beats "
                 "another holds only where their intervals do not overlap. "
                 f"Metric per cell: {_metric_summary(table.kind, spec)}.")
    lines.append(spec["metric_note"])
    return lines + table.notes


def _metric_summary(kind: str, spec: dict) -> str:
    if kind == "overpowered":
        return "; ".join(f"{row['printed']}: our {row['metric']}" for row in spec["rows"])
    groups: dict = {}
    for column in spec["columns"]:
        groups.setdefault(f"{column['group']} {column['metric']}", []).append(column["printed"])
    return "; ".join(f"{', '.join(names)}: our {what}" for what, names in groups.items())


def _number(value, decimals: int, signed: bool = False) -> str:
    return "" if value is None else f"{value:{'+' if signed else ''}.{decimals}f}"


def write_comparison(comparison: Comparison, out_dir, name: str) -> dict:
    """{name}_paper.md (the paper's table with ours in each cell, the unmatched cells, the claims),
    {name}_paper.csv (one line per cell of the paper's table) and {name}_claims.csv."""
    out_dir, (_, decimals) = Path(out_dir), SCALES[comparison.scale]
    files = {"paper_csv": out_dir / f"{name}_paper.csv", "claims_csv": out_dir / f"{name}_claims.csv",
             "paper_markdown": out_dir / f"{name}_paper.md"}
    with atomic_output(files["paper_csv"]) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["table", "row", "column", "metric", "scale", "ours", "paper", "difference", "n",
                         "ours_ci_low", "ours_ci_high"])
        for cell in comparison.cells:
            low, high = cell["ours_interval"] or (None, None)
            writer.writerow([comparison.spec["paper_table"], cell["row"], cell["column"], cell["metric"],
                             comparison.scale, _number(cell["ours"], decimals), cell["paper"],
                             _number(cell["difference"], decimals, signed=True), cell["n"] or "",
                             _number(low, decimals), _number(high, decimals)])
    with atomic_output(files["claims_csv"]) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["claim", "lines", "words", "reading", "status", "detail"])
        for claim in comparison.claims:
            writer.writerow([claim[key] for key in ("id", "lines", "words", "reading", "status", "detail")])
    with atomic_output(files["paper_markdown"]) as tmp:
        Path(tmp).write_text(_markdown(comparison, decimals))
    return files


def _markdown(comparison: Comparison, decimals: int) -> str:
    md, spec = markdown_text, comparison.spec
    columns = [column["printed"] for column in spec["columns"]]
    lines = [f"# Ours beside the paper's {spec['paper_table']}: {md(comparison.ours)}", "",
             f"| {spec['row_header']} | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    cells = iter(comparison.cells)
    for row in spec["rows"]:
        shown = []
        for _ in columns:
            cell = next(cells)
            ours = _number(cell["ours"], decimals) or "—"
            if cell["ours_interval"] is not None:
                low, high = cell["ours_interval"]
                ours += f" ± {_number((high - low) / 2, decimals)}"
            diff = f" ({_number(cell['difference'], decimals, signed=True)})" if cell["ours"] is not None else ""
            shown.append(f"{ours} / {cell['paper']}{diff}")
        lines.append(f"| {row['printed']} | " + " | ".join(shown) + " |")
    lines.append("")
    lines += [line for sentence in comparison.caption for line in (md(sentence), "")]
    lines += ["## Not compared", "",
              "- In the paper, missing from our results: " + (md("; ".join(comparison.paper_only)) or "none"),
              "- In our results, not in the paper's table: " + (md("; ".join(comparison.ours_only)) or "none"), ""]
    if comparison.claims:
        lines += ["## The paper's claims, checked on our results", "",
                  "| Claim | The paper (lines) | Read as | Ours |", "|---|---|---|---|"]
        for claim in comparison.claims:
            lines.append(f"| {md(claim['id'])} | \"{md(claim['words'])}\" ({claim['lines']}) | {md(claim['reading'])} "
                         f"| **{claim['status']}**: {md(claim['detail'])} |")
        lines.append("")
    return "\n".join(lines)


def tally(comparison: Comparison) -> str:
    """'30 of 36 cells of the paper's Table 1 compared; claims: holds 3, does not hold 1, cannot check 0'."""
    compared = sum(cell["ours"] is not None for cell in comparison.cells)
    counts = ", ".join(f"{status} {sum(c['status'] == status for c in comparison.claims)}"
                       for status in STATUSES)
    return f"{compared} of {len(comparison.cells)} cells of the paper's {comparison.spec['paper_table']} compared; " \
           f"claims: {counts}"


def write_with_paper(result_paths, out_dir, name: str | None = None, kind: str = "whitebox") -> dict:
    """write_tables, plus the comparison with the paper; refused before anything is written when the results
    cannot be compared."""
    name, reference = name or kind, load_reference()
    table_spec(reference, kind)  # an unknown kind fails before any result is read
    table = build_table(result_paths, kind)
    comparison = compare(table, reference)
    written = write_tables(result_paths, out_dir, name=name, kind=kind, table=table)
    written["files"].update(write_comparison(comparison, out_dir, name))
    written["comparison"] = comparison
    return written
