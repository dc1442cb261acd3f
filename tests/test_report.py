"""`madvae report`: hand-made result JSONs -> Table-1-shaped CSV and Markdown, per metric."""
from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from madvae.cli import app
from madvae.errors import MadvaeError
from madvae.report import build_whitebox_table, write_tables

runner = CliRunner()


def result(attack, defense, *, clean=(0.97, 1.0), no_defense=(0.03, 0.02), defended=None, dataset="mnist-5k",
           n=1000):
    metrics = {"clean": dict(zip(("accuracy", "agreement"), clean)),
               "no_defense": dict(zip(("accuracy", "agreement"), no_defense))}
    if defense != "none":
        metrics["defended"] = dict(zip(("accuracy", "agreement"), defended))
        metrics["defended_clean"] = {"accuracy": 0.9, "agreement": 0.9}
    return {"encoding-type": "madvae.result", "encoding-version": "1.0", "creator_version": "0.1.0",
            "kind": "whitebox", "dataset": dataset, "split": "test", "n": n, "attack": attack, "params": {},
            "set": f"{attack}.h5", "set_sha256": f"sha-{attack}", "classifier": "clf.pt",
            "classifier_sha256": "sha-clf", "defense": {"name": defense, "checkpoint": "v.pt", "sha256": "s",
                                                        "samples": 0},
            "metrics": metrics}


def write(folder, name, payload):
    path = folder / name
    path.write_text(json.dumps(payload))
    return path


@pytest.fixture
def results_dir(tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    # accuracy and agreement differ in every cell, so a swapped metric or column shows
    write(folder, "pgd-none.json", result("pgd", "none", clean=(0.97, 1.0), no_defense=(0.01, 0.02)))
    write(folder, "pgd-vanilla.json", result("pgd", "vanilla", no_defense=(0.01, 0.02), defended=(0.81, 0.82)))
    write(folder, "pgd-combined.json", result("pgd", "combined", no_defense=(0.01, 0.02), defended=(0.91, 0.92)))
    write(folder, "fgsm-class.json", result("fgsm", "classification", no_defense=(0.11, 0.12),
                                            defended=(0.95, 0.96)))
    write(folder, "fgsm-identity.json", result("fgsm", "identity", no_defense=(0.11, 0.12), defended=(0.5, 0.6)))
    return folder


PROVENANCE = ["Dataset", "Split", "n", "Preset"]


def read_csv(path, provenance=False):
    """A table CSV's lines; without ``provenance``, only the cells (every CSV ends in the four columns that say
    what made each row: checked here on every table the tests read)."""
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][-4:] == PROVENANCE, rows[0]
    return rows if provenance else [row[:-4] for row in rows]


def test_every_csv_row_says_its_dataset_split_n_and_preset(results_dir, tmp_path):
    payload = result("cw", "vanilla", defended=(0.5, 0.5))
    payload["params"] = {"preset": "test", "quick": True}
    write(results_dir, "cw-vanilla.json", payload)
    write(results_dir, "cw-none.json", {**result("cw", "none"), "params": {"preset": "test", "quick": True}})
    rows = read_csv(write_tables([results_dir], tmp_path / "t")["files"]["accuracy"], provenance=True)
    by_row = {row[0]: row[-4:] for row in rows[1:]}
    assert by_row["FGSM"] == ["mnist-5k", "test", "1000", "unrecorded"]
    assert by_row["CW (quick)"] == ["mnist-5k", "test", "1000", "test (quick)"]
    assert by_row["No attack (clean digits)"] == ["mnist-5k", "test", "1000", "none (clean)"]


def test_tables_put_each_value_in_its_row_and_column(results_dir, tmp_path):
    out = tmp_path / "tables"
    written = write_tables(sorted(results_dir.glob("*.json")), out, name="t1")
    assert set(p.name for p in out.iterdir()) == {"t1_accuracy.csv", "t1_agreement.csv", "t1.md"}
    header = ["Attack", "No Attack", "No Defense", "vanilla", "classification", "combined", "identity"]
    assert read_csv(out / "t1_accuracy.csv") == [
        header,
        ["FGSM", "0.9700", "0.1100", "", "0.9500", "", "0.5000"],
        ["PGD", "0.9700", "0.0100", "0.8100", "", "0.9100", ""],
        ["No attack (clean digits)", "0.9700", "0.9700", "0.9000", "0.9000", "0.9000", "0.9000"],
    ]
    assert read_csv(out / "t1_agreement.csv") == [
        header,
        ["FGSM", "1.0000", "0.1200", "", "0.9600", "", "0.6000"],
        ["PGD", "1.0000", "0.0200", "0.8200", "", "0.9200", ""],
        ["No attack (clean digits)", "1.0000", "1.0000", "0.9000", "0.9000", "0.9000", "0.9000"],
    ]
    markdown = (out / "t1.md").read_text()
    assert "## Accuracy" in markdown and "## Agreement" in markdown
    assert markdown.count("mnist-5k test, n = 1000 per cell") == 2
    assert markdown.count("defense-unaware") == 2
    accuracy_part, agreement_part = markdown.split("## Agreement")
    # a defended cell above the same purifier's clean-through-defense cell is marked (combined: 0.91 > 0.90); each
    # cell carries the half-width of its 95% Wilson interval over n = 1000 (0.97: 1.96 x 0.00548 / 1.00384)
    assert ("| PGD | 0.9700 ± 0.0107 | 0.0100 ± 0.0064 | 0.8100 ± 0.0243 |  | 0.9100 ± 0.0178 ↑ |  |"
            in accuracy_part)
    assert ("| FGSM | 1.0000 ± 0.0019 | 0.1200 ± 0.0202 |  | 0.9600 ± 0.0122 ↑ |  | 0.6000 ± 0.0303 |"
            in agreement_part)
    assert markdown.count("95% Wilson interval; a difference inside it is no win") == 2
    assert written["table"].columns == header[1:]


def test_folder_argument_via_cli(results_dir, tmp_path):
    out = tmp_path / "cli-out"
    outcome = runner.invoke(app, ["report", str(results_dir), "--out-dir", str(out)])
    assert outcome.exit_code == 0, outcome.output
    assert read_csv(out / "whitebox_accuracy.csv")[2][0] == "PGD"
    assert (out / "whitebox.md").is_file()


def test_mixed_datasets_fail_with_one_line_naming_files(results_dir, tmp_path):
    odd = write(results_dir, "fashion.json", result("cw", "vanilla", defended=(0.5, 0.5), dataset="fashion-mnist"))
    outcome = runner.invoke(app, ["report", str(results_dir), "--out-dir", str(tmp_path / "o")])
    assert outcome.exit_code == 65
    lines = outcome.output.strip().splitlines()
    assert len(lines) == 1 and "different datasets" in lines[0] and str(odd) in lines[0], outcome.output
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())
    odd.unlink()
    write(results_dir, "small.json", result("cw", "vanilla", defended=(0.5, 0.5), n=10))
    with pytest.raises(MadvaeError, match="sample counts n"):
        build_whitebox_table([results_dir])


@pytest.mark.parametrize("content, message", [
    ("{not json", "not a readable JSON file"),
    (json.dumps({"encoding-type": "madvae.set"}), "not a madvae result"),
    (json.dumps([1, 2]), "not a madvae result"),
    (json.dumps({**result("fgsm", "vanilla", defended=(1, 1)), "metrics": {"clean": {}}}), "metrics.no_defense"),
    (json.dumps({**result("fgsm", "vanilla", defended=(1, 1)),
                 "metrics": {**result("fgsm", "vanilla", defended=(1, 1))["metrics"], "clean": {}}}),
     "field metrics.clean.accuracy is missing"),
])
def test_invalid_or_foreign_json_names_the_file(tmp_path, content, message):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    with pytest.raises(MadvaeError, match=message) as info:
        build_whitebox_table([bad])
    assert str(bad) in str(info.value)


def test_duplicate_defense_results_are_refused(results_dir):
    write(results_dir, "pgd-vanilla-again.json", result("pgd", "vanilla", no_defense=(0.01, 0.02),
                                                        defended=(0.7, 0.7)))
    with pytest.raises(MadvaeError, match="two pgd results for defense 'vanilla'"):
        build_whitebox_table([results_dir])


def with_kind(payload, kind, **extra):
    return {**payload, "kind": kind, **extra}


def test_transfer_table_takes_no_defense_from_the_undefended_target_and_lists_agreement(tmp_path):
    folder = tmp_path / "bb"
    folder.mkdir()
    # each target gets its own substitute and adversarial set: No Defense must come from the 'none' result
    write(folder, "a-none.json", with_kind(result("fgsm", "none", no_defense=(0.21, 0.22)), "blackbox-transfer",
                                           substitute="A", queries=9600, substitute_agreement=0.8, set_sha256="x"))
    write(folder, "a-van.json", with_kind(result("fgsm", "vanilla", no_defense=(0.5, 0.5), defended=(0.9, 0.91)),
                                          "blackbox-transfer", substitute="A", queries=9600,
                                          substitute_agreement=0.7, set_sha256="y"))
    write(folder, "b-van.json", with_kind(result("fgsm", "vanilla", no_defense=(0.5, 0.5), defended=(0.8, 0.81)),
                                          "blackbox-transfer", substitute="B", queries=9600,
                                          substitute_agreement=0.6))
    outcome = runner.invoke(app, ["report", str(folder), "--out-dir", str(tmp_path / "t"),
                                  "--kind", "blackbox-transfer"])
    assert outcome.exit_code == 0, outcome.output
    header = ["Substitute", "No Attack", "No Defense", "vanilla"]
    assert read_csv(tmp_path / "t" / "blackbox_transfer_accuracy.csv") == [
        header, ["A", "0.9700", "0.2100", "0.9000"], ["B", "0.9700", "", "0.8000"]]
    markdown = (tmp_path / "t" / "blackbox_transfer.md").read_text()
    agreement_part = markdown.split("## Substitute agreement")[1]
    assert "| A |  | 0.8000 | 0.7000 |" in agreement_part and "| B |  |  | 0.6000 |" in agreement_part
    assert "Oracle queries per substitute: 9600." in markdown and "real black-box" in markdown


def test_paper_mode_is_named_white_box_on_the_substitute(tmp_path):
    folder = tmp_path / "bp"
    folder.mkdir()
    write(folder, "c.json", with_kind(result("fgsm", "combined", defended=(0.9, 0.9)), "blackbox-paper",
                                      substitute="C"))
    written = write_tables([folder], tmp_path / "t", kind="blackbox-paper")
    assert "white-box attack on X" in written["files"]["markdown"].read_text()
    assert read_csv(written["files"]["accuracy"])[1] == ["C", "0.9700", "0.0300", "0.9000"]


def overpowered(defense, accuracy, mean_l2=3.5):
    metrics = {key: accuracy for key in ("accuracy", "original_accuracy", "accuracy_within_budget",
                                         "original_accuracy_within_budget", "budget_fraction", "clean")}
    metrics.update(original_accuracy=accuracy / 2, mean_l2=mean_l2)
    payload = result("overpowered", defense, defended=(0, 0))
    return {**payload, "kind": "overpowered", "params": {"norms": [1.0, 2.5]}, "metrics": metrics}


def test_overpowered_table_has_one_row_per_metric_and_identity_last(tmp_path):
    folder = tmp_path / "op"
    folder.mkdir()
    write(folder, "i.json", overpowered("identity", 0.3))
    write(folder, "v.json", overpowered("vanilla", 0.4, mean_l2=4.25))
    written = write_tables([folder], tmp_path / "t", kind="overpowered")
    rows = read_csv(written["files"]["value"])
    assert written["files"]["value"].name == "overpowered.csv"
    assert rows[0] == ["Metric", "vanilla", "identity"]
    assert rows[1] == ["Accuracy", "0.4000", "0.3000"] and rows[2] == ["Original Accuracy", "0.2000", "0.1500"]
    assert ["Mean L2 distance", "4.2500", "3.5000"] in rows
    write(folder, "bad.json", overpowered("combined", 1.5))
    with pytest.raises(MadvaeError, match=r"field metrics\.\w+: a number 1.5 is out of range \(maximum 1\)"):
        write_tables([folder], tmp_path / "t2", kind="overpowered")


def test_a_result_of_another_kind_names_the_kind_to_ask_for(results_dir, tmp_path):
    write(results_dir, "adaptive.json", with_kind(result("pgd-e2e", "vanilla", defended=(0.1, 0.1)), "adaptive"))
    outcome = runner.invoke(app, ["report", str(results_dir), "--out-dir", str(tmp_path / "o")])
    assert outcome.exit_code == 2 and "--kind adaptive" in outcome.output, outcome.output


def test_overpowered_within_budget_may_be_null_but_not_missing(tmp_path):
    folder = tmp_path / "op"
    folder.mkdir()
    payload = overpowered("vanilla", 0.4)
    payload["metrics"]["accuracy_within_budget"] = None  # no attack met the L2 budget: nothing to count
    write(folder, "v.json", payload)
    rows = read_csv(write_tables([folder], tmp_path / "t", kind="overpowered")["files"]["value"])
    assert ["Accuracy (L2 budget met)", ""] in rows
    del payload["metrics"]["accuracy_within_budget"]
    write(folder, "v.json", payload)
    with pytest.raises(MadvaeError, match="accuracy_within_budget"):
        write_tables([folder], tmp_path / "t2", kind="overpowered")


def test_text_from_result_files_cannot_forge_markdown_rows(results_dir, tmp_path):
    """A defense name (another lab's field) with '|' and line breaks stays one header cell and one line."""
    forged = "evil|x\n| FGSM | 1.0 | 1.0 |\n"
    write(results_dir, "forged.json", result("pgd", forged, no_defense=(0.01, 0.02), defended=(0.5, 0.5)))
    markdown = write_tables([results_dir], tmp_path / "o", name="t")["files"]["markdown"].read_text()
    header = next(line for line in markdown.splitlines() if line.startswith("| Attack |"))
    assert r"evil\|x \| FGSM \| 1.0 \| 1.0 \|" in header
    cells = [c for c in header.replace(r"\|", "").split("|")[1:-1]]
    table_lines = [line for line in markdown.split("## Agreement")[0].splitlines() if line.startswith("|")]
    assert all(line.replace(r"\|", "").count("|") == len(cells) + 1 for line in table_lines), table_lines
    assert len(table_lines) == 2 + 3  # header, separator, FGSM, PGD, the clean row
