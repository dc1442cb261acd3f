"""docs/reproduction.py: the reproduction page from a run's tables, on tables that `madvae report --paper` wrote
from hand-made full-MNIST result JSONs (tests/test_report_paper.py's)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from madvae.paper import load_reference, write_with_paper
from madvae.report import write_tables
from test_report_paper import write_grid

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "docs" / "reproduction.py"
CONFIG = ("# full MNIST (a test's)\ndataset: {name: mnist, root: ../shared/data/mnist}  # IDX files\n"
          "report: {paper: true}\n")
TABLES = (("whitebox", "whitebox", "Table 1"), ("blackbox-paper", "blackbox_paper", "Table 2"),
          ("overpowered", "overpowered", "Table 3"))


@pytest.fixture
def results(tmp_path):
    results = tmp_path / "results"
    for kind, name, _ in TABLES:
        write_with_paper([write_grid(results / "eval" / name, kind, n=500)], results / "tables", name=name, kind=kind)
    # a table the page does not know by name goes under "Other tables"
    write_tables([results / "eval" / "whitebox"], results / "tables", name="extra", kind="whitebox")
    return results


def generate(tmp_path, results, *extra):
    config = tmp_path / "mnist.yaml"
    config.write_text(CONFIG)
    out = tmp_path / "docs" / "reproduction" / "mnist.md"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, SCRIPT, results, "--config", config, "--commit", "abc1234",
                           "--wall", "5 h 12 min on one H200", "--out", out, *extra],
                          capture_output=True, text=True, env=env, timeout=120)
    return done, out


def test_the_page_says_what_ran_then_tables_1_to_3_beside_the_papers(tmp_path, results):
    done, out = generate(tmp_path, results, "--estimate", "about 5 h (bench/estimate.py)")
    assert done.returncode == 0, done.stderr
    page = out.read_text()
    assert "- Commit: `abc1234`" in page and "- Wall time: 5 h 12 min on one H200" in page
    assert "- Estimated before the run: about 5 h (bench/estimate.py)" in page
    assert f"```yaml\n{CONFIG}```\n" in page  # verbatim, comments included
    assert "- Data set and split (from the tables): mnist test" in page
    assert "| Table 1 (white-box, defense-unaware) | `whitebox.md` | mnist test | 500 |" in page
    # each table beside the paper's and in full, as madvae report wrote it (headings two levels down)
    positions = []
    for kind, name, paper_table in TABLES:
        beside = (results / "tables" / f"{name}_paper.md").read_text()
        full = (results / "tables" / f"{name}.md").read_text()
        assert f"### Ours beside the paper's {paper_table}: mnist test" in page
        assert f"{paper_table} of Morlock and Wang (2020)" in page
        for line in beside.splitlines() + full.splitlines():
            assert line.startswith("#") or line in page.splitlines(), line
        positions.append(page.index(f"### Ours beside the paper's {paper_table}"))
    assert "Ours: mnist test, n = 500 per cell, preset paper (from the result files)." in page  # Table 3's caption
    assert "Accuracy against the true label: mnist test, n = 500 per cell." in page  # the full tables' caption
    assert "### White-box results: mnist test" in page
    positions += [page.index("\n## The paper's claims, checked on our results"), page.index("\n## Other tables")]
    assert positions == sorted(positions)
    assert "### extra" in page and "#### White-box results: mnist test" in page  # the other table, one more down
    assert not re.search(r"^# (?!MAD-VAE reproduction)", page.replace(CONFIG, ""), re.M)  # one page title


def test_the_claims_are_gathered_from_the_three_claims_files(tmp_path, results):
    done, out = generate(tmp_path, results)
    assert done.returncode == 0, done.stderr
    page = out.read_text()
    claims = load_reference()["claims"]
    section = page.split("\n## The paper's claims, checked on our results", 1)[1].split("\n## Other tables", 1)[0]
    # the paper's own numbers: no claim fails; its rankings lean their way inside the 95% intervals
    assert f"({len(claims)} claims; holds: 4, not shown: 6, does not hold: 0, cannot check: 0)" in section
    for claim in claims:
        assert re.search(rf"^\| Table \d \| {re.escape(claim['id'])} \| .* \| \*\*(holds|not shown)\*\*: ",
                         section, re.M), claim
    assert "- Estimated before the run: no estimate given" in page


def test_every_csv_is_copied_beside_the_page_and_linked(tmp_path, results):
    stale = tmp_path / "docs" / "reproduction" / "mnist" / "stale.csv"
    stale.parent.mkdir(parents=True)
    stale.write_text("from an earlier run\n")
    done, out = generate(tmp_path, results)
    assert done.returncode == 0, done.stderr
    page = out.read_text()
    tables = sorted(p.name for p in (results / "tables").glob("*.csv"))
    assert len(tables) == 2 * 2 + 1 + 3 * 2 + 2  # Tables 1-2: 2 metrics, Table 3: 1; each: paper, claims; extra
    assert sorted(p.name for p in stale.parent.iterdir()) == tables  # the stale one removed
    for name in tables:
        assert (stale.parent / name).read_bytes() == (results / "tables" / name).read_bytes()
        assert f"[{name}](mnist/{name})" in page


@pytest.mark.parametrize("gone", [["overpowered_paper.md"], ["whitebox.md", "blackbox_paper_claims.csv"]])
def test_a_missing_table_is_refused_naming_it(tmp_path, results, gone):
    for name in gone:
        (results / "tables" / name).unlink()
    done, out = generate(tmp_path, results)
    assert done.returncode == 1 and not out.exists()
    assert f"missing {', '.join(gone)}" in done.stderr and "report: {paper: true}" in done.stderr, done.stderr
