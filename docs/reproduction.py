"""Write a reproduction page from a run's results/tables/ and copy the tables' CSVs beside it.

Every number on the page (e.g. docs/reproduction/mnist.md) is one that `madvae report --paper` wrote, never typed in.

    .venv/bin/python docs/reproduction.py RESULTS_DIR --config config/mnist.yaml --commit SHA --wall "..." \\
        [--estimate "..."] --out docs/reproduction/mnist.md

The page: what ran (data set, split and n read from the tables, the config file verbatim, commit, wall time, the
estimate made before the run), then Tables 1-3 each beside the paper's and in full, the paper's claims checked, and
the other tables present. The CSVs go to the folder named after the page (docs/reproduction/mnist/).
"""
from __future__ import annotations

import argparse
import csv
import re
import shutil
from pathlib import Path

from madvae.paper_claims import FAILS, HOLDS, UNKNOWN
from madvae.report import markdown_text as md

# the tables the workflow's report.paper option puts beside the paper's: (file stem, title)
PAPER_TABLES = (("whitebox", "Table 1 (white-box, defense-unaware)"),
                ("blackbox_paper", "Table 2 (black-box, the paper's code's mode)"),
                ("overpowered", "Table 3 (Overpowered Attack)"))
OTHER_TITLES = {"blackbox_transfer": "Table 2 in transfer mode (a real black-box attack; beyond the paper's code)",
                "adaptive": "Adaptive attacks and the worst case (beyond the paper)",
                "selection": "Model selection on the validation sets"}


def expected_files(stem: str) -> list[str]:
    return [f"{stem}.md", f"{stem}_paper.md", f"{stem}_claims.csv"]


def missing_files(tables: Path) -> list[str]:
    return [name for stem, _ in PAPER_TABLES for name in expected_files(stem) if not (tables / name).is_file()]


def demoted(text: str, levels: int) -> str:
    """A table's Markdown under the page's headings: each heading `levels` deeper."""
    return re.sub(r"^(#+) ", lambda m: "#" * (len(m.group(1)) + levels) + " ", text, flags=re.M).strip()


def data_of(text: str) -> tuple[str, str]:
    """(data set and split, n per cell) as the table's heading and caption state them; "—" where they do not."""
    heading = re.search(r"^# .*: (\S+ \S+)$", text, re.M)
    n = re.search(r"\bn = (\d+) per cell\b", text)
    return heading.group(1) if heading else "—", n.group(1) if n else "—"


def fence(text: str) -> str:
    """A code fence longer than any run of backticks in the text, so the text stays verbatim."""
    runs = [len(run) for run in re.findall(r"`+", text)]
    return "`" * max(3, max(runs, default=0) + 1)


def csvs_of(stem: str, csvs: list[str]) -> list[str]:
    """The CSVs madvae report wrote beside STEM.md: STEM.csv, STEM_accuracy.csv, STEM_paper.csv, ..."""
    return [name for name in csvs if re.fullmatch(rf"{re.escape(stem)}(_[a-z]+)?\.csv", name)]


def links(names: list[str], folder: str) -> str:
    return "Files: " + ", ".join(f"[{name}]({folder}/{name})" for name in names) if names else ""


def claims_section(tables: Path) -> list[str]:
    rows = []
    for stem, title in PAPER_TABLES:
        with open(tables / f"{stem}_claims.csv", newline="") as handle:
            rows += [(title, claim) for claim in csv.DictReader(handle)]
    tally = ", ".join(f"{status}: {sum(c['status'] == status for _, c in rows)}" for status in (HOLDS, FAILS, UNKNOWN))
    lines = ["## The paper's claims, checked on our results", "",
             f"From the `*_claims.csv` files ({len(rows)} claims; {tally}).", "",
             "| Table | Claim | The paper (lines) | Read as | Ours |", "|---|---|---|---|---|"]
    lines += [f"| {title.split(' (')[0]} | {md(c['claim'])} | \"{md(c['words'])}\" ({md(c['lines'])}) | "
              f"{md(c['reading'])} | **{md(c['status'])}**: {md(c['detail'])} |" for title, c in rows]
    return lines + [""]


def page(results: Path, config: Path, commit: str, wall: str, estimate: str | None, folder: str) -> str:
    tables = results / "tables"
    if not tables.is_dir():
        raise SystemExit(f"{tables}: no such folder (RESULTS_DIR is the run's results folder)")
    missing = missing_files(tables)
    if missing:
        raise SystemExit(f"{tables}: missing {', '.join(missing)}; Tables 1-3 beside the paper's come from the "
                         f"workflow with `report: {{paper: true}}` (or `madvae report --paper`)")
    csvs = sorted(path.name for path in tables.glob("*.csv"))
    used = {name for stem, _ in PAPER_TABLES for name in expected_files(stem)}
    present = {path.stem for path in tables.glob("*.md") if path.name not in used}
    others = [stem for stem in OTHER_TITLES if stem in present] + sorted(present - set(OTHER_TITLES))
    sections = list(PAPER_TABLES) + [(stem, OTHER_TITLES.get(stem, stem)) for stem in others]
    texts = {stem: (tables / f"{stem}.md").read_text() for stem, _ in sections}
    config_text = config.read_text()

    lines = ["# MAD-VAE reproduction: ours beside the paper's Tables 1-3", "",
             f"Generated by `docs/reproduction.py` from the `{md(tables)}/` of the run below; every number on this "
             f"page is one `madvae report` wrote there (the tables' CSVs are in [{folder}/]({folder}/)).", "",
             "## What ran", "",
             f"- Commit: `{md(commit)}`",
             f"- Wall time: {md(wall)}",
             f"- Estimated before the run: {md(estimate) if estimate else 'no estimate given'}",
             f"- Data set and split (from the tables): "
             f"{', '.join(sorted({data_of(text)[0] for text in texts.values()}))}", "",
             "| Table | File | Data set and split | n per cell |", "|---|---|---|---:|"]
    lines += [f"| {md(title)} | `{stem}.md` | {' | '.join(data_of(texts[stem]))} |" for stem, title in sections]
    mark = fence(config_text)
    lines += ["", f"The config file, `{md(config)}` (on top of `config/config.yaml`: keys it leaves out keep that "
              "file's values):", "", f"{mark}yaml", config_text.rstrip("\n"), mark, ""]
    for stem, title in PAPER_TABLES:
        lines += [f"## {title}", "", demoted((tables / f"{stem}_paper.md").read_text(), 2), "",
                  demoted(texts[stem], 2), "", links(csvs_of(stem, csvs), folder), ""]
    lines += claims_section(tables)
    if others:
        lines += ["## Other tables", ""]
        for stem in others:
            lines += [f"### {md(dict(sections)[stem])}", "", demoted(texts[stem], 3), "",
                      links(csvs_of(stem, csvs), folder), ""]
    unlinked = [name for name in csvs if not any(name in csvs_of(stem, csvs) for stem, _ in sections)]
    if unlinked:
        lines += ["## Other files", "", links(unlinked, folder), ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def copy_csvs(tables: Path, folder: Path) -> None:
    """The tables' CSVs beside the page, and only this run's: stale ones from an earlier run are removed."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.csv"):
        old.unlink()
    for path in sorted(tables.glob("*.csv")):
        shutil.copyfile(path, folder / path.name)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="the run's results folder (its tables/ are read)")
    parser.add_argument("--config", type=Path, required=True, help="the config file the run was given")
    parser.add_argument("--commit", required=True)
    parser.add_argument("--wall", required=True, help="the run's wall time, e.g. '5 h 12 min on one H200'")
    parser.add_argument("--estimate", help="the compute estimate made before the run")
    parser.add_argument("--out", type=Path, required=True, help="the page, e.g. docs/reproduction/mnist.md")
    args = parser.parse_args(argv)
    if not args.config.is_file():
        raise SystemExit(f"{args.config}: no such config file")
    folder = args.out.with_suffix("")
    text = page(args.results, args.config, args.commit, args.wall, args.estimate, folder.name)
    copy_csvs(args.results / "tables", folder)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
