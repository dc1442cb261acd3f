"""Tables over seeds (madvae.seeds): hand-made results of three seeds -> mean ± sample sd per cell, each seed's
value in the CSV; the seed recorded in every result of `madvae attack`."""
from __future__ import annotations

import json
import statistics

import pytest

from madvae.errors import MadvaeError
from madvae.report import build_whitebox_table, write_tables
from madvae.security import write_security
from madvae.seeds import seed_label
from tests.test_report_claims import result as outcome_result
from tests.test_report import overpowered, read_csv, result, with_kind, write

# the purifier's defended accuracy per seed; agreement is accuracy + 0.01 throughout
VANILLA = {0: 0.80, 1: 0.84, 2: 0.90}
COMBINED = {0: 0.70, 1: 0.76, 2: 0.73}


def seeded(payload, seed, trained=None):
    payload = {**payload, "seed": seed}
    if payload["defense"]["name"] != "none":
        payload["defense"] = {**payload["defense"], "training": {"seed": seed if trained is None else trained}}
    return payload


def metrics_of(accuracy):
    return (accuracy, accuracy + 0.01)


@pytest.fixture
def three_seeds(tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    for seed in VANILLA:
        write(folder, f"none-{seed}.json", seeded(result("pgd", "none", no_defense=(0.01, 0.02)), seed))
        write(folder, f"vanilla-{seed}.json", seeded(result("pgd", "vanilla", no_defense=(0.01, 0.02),
                                                            defended=metrics_of(VANILLA[seed])), seed))
        write(folder, f"combined-{seed}.json", seeded(result("pgd", "combined", no_defense=(0.01, 0.02),
                                                             defended=metrics_of(COMBINED[seed])), seed))
    return folder


def test_the_seed_label_is_the_evaluation_seed_and_the_training_seed_where_they_differ():
    base = result("pgd", "vanilla", defended=(0.5, 0.5))
    assert seed_label(base) == "0"  # results from before seeds were recorded: the default seed of both
    assert seed_label(seeded(base, 2)) == "2"
    assert seed_label(seeded(base, 0, trained=3)) == "3/0"
    assert seed_label(seeded(result("pgd", "none"), 4)) == "4"


def test_a_cell_over_seeds_is_the_mean_and_sample_sd_and_the_csv_keeps_each_seed(three_seeds, tmp_path):
    written = write_tables([three_seeds], tmp_path / "t", name="wb")
    table = written["table"]
    assert table.seeds == ["0", "1", "2"]
    column = table.columns.index("vanilla")
    pgd = next(row for row in table.rows if row["key"] == "pgd")
    assert pgd["accuracy"][column] == pytest.approx(statistics.fmean(VANILLA.values()))
    # sample sd (n - 1): 0.80, 0.84, 0.90 -> 0.0503; the population sd would be 0.0411
    assert pgd["sd"]["accuracy"][column] == pytest.approx(0.05033, abs=1e-5)
    assert pgd["sd"]["accuracy"][table.columns.index("No Defense")] == 0  # the same value at every seed

    rows = read_csv(tmp_path / "t" / "wb_accuracy.csv")
    assert rows[0] == ["Attack", "Seed", "No Attack", "No Defense", "vanilla", "combined"]
    pgd_lines = [line for line in rows if line[0] == "PGD"]
    assert [line[1] for line in pgd_lines] == ["0", "1", "2", "mean", "sd"]
    assert [line[4] for line in pgd_lines] == ["0.8000", "0.8400", "0.9000", "0.8467", "0.0503"]
    assert [line[5] for line in pgd_lines] == ["0.7000", "0.7600", "0.7300", "0.7300", "0.0300"]
    agreement = read_csv(tmp_path / "t" / "wb_agreement.csv")
    assert [line[4] for line in agreement if line[0] == "PGD"][3] == "0.8567"

    markdown = (tmp_path / "t" / "wb.md").read_text()
    assert "| PGD | 0.9700 ± 0.0000 | 0.0100 ± 0.0000 | 0.8467 ± 0.0503 | 0.7300 ± 0.0300 |" in markdown
    assert "n = 1000 per seed and cell" in markdown and "mean over 3 seeds (0, 1, 2" in markdown
    assert "Wilson" not in markdown.split("## Agreement")[0]  # the ± is the sd here, not the interval


def test_a_cell_missing_at_one_seed_says_how_many_seeds_it_averages(three_seeds, tmp_path):
    (three_seeds / "combined-2.json").unlink()
    table = write_tables([three_seeds], tmp_path / "t", name="wb")["table"]
    markdown = (tmp_path / "t" / "wb.md").read_text()
    assert "| 0.7300 ± 0.0424 (2 seeds) |" in markdown
    assert next(r for r in table.rows if r["key"] == "pgd")["seed_counts"][table.columns.index("vanilla")] == 3


def test_two_results_of_one_cell_at_one_seed_are_still_refused(three_seeds):
    write(three_seeds, "vanilla-1-again.json", seeded(result("pgd", "vanilla", defended=(0.5, 0.5)), 1))
    with pytest.raises(MadvaeError, match="two pgd results for defense 'vanilla'"):
        build_whitebox_table([three_seeds])


def test_seeds_of_different_experiments_do_not_merge(three_seeds):
    write(three_seeds, "vanilla-3.json", seeded(result("pgd", "vanilla", defended=(0.5, 0.5), n=500), 3))
    write(three_seeds, "none-3.json", seeded(result("pgd", "none", n=500), 3))
    with pytest.raises(MadvaeError, match="seed 3's results .* are not the same experiment as seed 0's"):
        build_whitebox_table([three_seeds])


def test_the_label_leaking_mark_is_taken_on_the_means(three_seeds, tmp_path):
    # combined's clean-through-defense value is 0.9 (tests.test_report.result); seeds at 0.88, 0.91, 0.95 average
    # 0.9133 > 0.9: marked, though seed 0 alone would not be
    for seed, accuracy in zip(range(3), (0.88, 0.91, 0.95)):
        write(three_seeds, f"combined-{seed}.json", seeded(result("pgd", "combined", defended=metrics_of(accuracy)),
                                                           seed))
    table = build_whitebox_table([three_seeds])
    marks = table.marks["accuracy"]["pgd"]
    assert marks[table.columns.index("combined")] and not marks[table.columns.index("vanilla")]


def test_the_adaptive_worst_case_is_taken_per_seed_before_averaging(tmp_path):
    folder = tmp_path / "adaptive"
    folder.mkdir()
    # per seed, the worst of the two attacks: seed 0 min(0.6, 0.4) = 0.4, seed 1 min(0.3, 0.5) = 0.3 -> mean 0.35
    # (the worst of the two means, min(0.45, 0.45), would be 0.45)
    for seed, (pgd, bpda) in enumerate(((6, 4), (3, 5))):
        for attack, correct in (("pgd-e2e", pgd), ("bpda", bpda)):  # the first `correct` of 10 images right
            payload = outcome_result("adaptive", attack, "vanilla", n=10, defended=[1] * correct + [0] * (10 - correct))
            write(folder, f"{attack}-{seed}.json", seeded(payload, seed))
    table = write_tables([folder], tmp_path / "t", kind="adaptive")["table"]
    worst = next(row for row in table.rows if row["key"] not in ("pgd-e2e", "bpda"))
    assert worst["accuracy"][table.columns.index("vanilla")] == pytest.approx(0.35)


def test_overpowered_and_security_tables_merge_over_seeds(tmp_path):
    folder = tmp_path / "op"
    folder.mkdir()
    for seed, accuracy in enumerate((0.2, 0.4)):
        write(folder, f"v{seed}.json", seeded(overpowered("vanilla", accuracy), seed))
    rows = read_csv(write_tables([folder], tmp_path / "t", kind="overpowered")["files"]["value"])
    assert rows[0] == ["Metric", "Seed", "vanilla"]
    assert [line for line in rows if line[0] == "Accuracy"] == [
        ["Accuracy", "0", "0.2000"], ["Accuracy", "1", "0.4000"], ["Accuracy", "mean", "0.3000"],
        ["Accuracy", "sd", "0.1414"]]

    curves = tmp_path / "curves"
    curves.mkdir()
    for seed, points in enumerate(((0.9, 0.5), (0.9, 0.3))):
        payload = with_kind(result("pgd-e2e", "vanilla", defended=(0.9, 0.9), n=50), "curve", quick=True)
        payload["metrics"] = {"defended": {"eps": [0.0, 0.3], "accuracy": list(points), "agreement": list(points)}}
        write(curves, f"c{seed}.json", seeded(payload, seed))
    written = write_security([curves], tmp_path / "s")
    rows = read_csv(written["files"]["accuracy"])
    assert rows[0] == ["Attack, defense", "Seed", "eps 0", "eps 0.3"]
    assert rows[-2][1:] == ["mean", "0.9000", "0.4000"] and rows[-1][1:] == ["sd", "0.0000", "0.1414"]
    assert written["files"]["figure"].stat().st_size > 0


def test_madvae_attack_records_its_seed_and_the_purifiers_training_seed(tmp_path, clean_test_set,
                                                                         random_classifier):
    import torch
    from typer.testing import CliRunner

    from madvae.checkpoint import save_checkpoint
    from madvae.cli import app
    from madvae.models import DefenseVAE

    torch.manual_seed(0)
    tiny_vae = save_checkpoint(tmp_path / "vae.pt", kind="vae", arch="defense-vae", model=DefenseVAE(),
                               config={"loss": "vanilla", "seed": 5})
    out = tmp_path / "r.json"
    outcome = CliRunner().invoke(app, ["attack", "--set", str(clean_test_set), "--classifier",
                                       str(random_classifier), "--vae", str(tiny_vae), "--seed", "3",
                                       "--device", "cpu", "--no-progress", "--out", str(out)])
    assert outcome.exit_code == 0, outcome.output
    recorded = json.loads(out.read_text())
    assert recorded["seed"] == 3 and recorded["defense"]["training"]["seed"] == 5
    assert seed_label(recorded) == "5/3"
