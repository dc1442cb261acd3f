"""The committed full-MNIST record (docs/reproduction/mnist.md and its CSVs) is what `madvae report --paper` wrote:
every compared cell on the page is the CSV's, the CSV's paper column is the shipped reference's, each difference
is ours minus the paper's, and the page's claim tally is the claims CSVs'. A hand edit of any of them fails here."""
from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "reproduction" / "mnist.md"
CSVS = ROOT / "docs" / "reproduction" / "mnist"
TABLES = {"whitebox": "Table 1", "blackbox_paper": "Table 2", "overpowered": "Table 3"}


def rows(name: str) -> list[dict]:
    with open(CSVS / name, newline="") as handle:
        return list(csv.DictReader(handle))


def page_cells(table: str) -> dict:
    """{(row, column): cell text} of the page's "Ours beside the paper's <table>" Markdown table."""
    text = PAGE.read_text()
    section = text.split(f"### Ours beside the paper's {table}:", 1)[1].split("\n#", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    cells = {}
    for line in lines[2:]:
        values = [cell.strip() for cell in line.strip("|").split("|")]
        cells.update({(values[0], column): value for column, value in zip(header[1:], values[1:])})
    return cells


@pytest.mark.parametrize("stem", list(TABLES))
def test_every_compared_cell_on_the_page_is_the_csvs(stem):
    cells = page_cells(TABLES[stem])
    compared = rows(f"{stem}_paper.csv")
    assert compared and len(compared) == len(cells)
    for row in compared:
        ours, paper, difference = float(row["ours"]), float(row["paper"]), float(row["difference"])
        assert abs(ours - paper - difference) < 1e-4 + 1e-9, row
        shown = re.fullmatch(r"(\S+) / (\S+) \((\S+)\)", cells[(row["row"], row["column"])])
        assert shown and [float(v) for v in shown.groups()] == [ours, paper, difference], row


def test_the_paper_column_is_the_shipped_reference():
    from madvae.paper import load_reference

    printed = {value for spec in load_reference()["tables"].values()
               for values in spec["values"].values() for value in values if value is not None}
    for stem in TABLES:
        for row in rows(f"{stem}_paper.csv"):
            assert float(row["paper"]) in printed, row


def test_the_claim_tally_is_the_claims_csvs():
    statuses = [row["status"] for stem in TABLES for row in rows(f"{stem}_claims.csv")]
    tally = re.search(r"\((\d+) claims; holds: (\d+), does not hold: (\d+), cannot check: (\d+)\)", PAGE.read_text())
    assert tally, "the page states no claim tally"
    assert [int(v) for v in tally.groups()] == [len(statuses), statuses.count("holds"),
                                               statuses.count("does not hold"), statuses.count("cannot check")]
