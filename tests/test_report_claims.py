"""What a table claims: reduced settings named from the result files, one defense per adaptive row, the per-image
worst case, Table 1's clean-through-defense row (hand-made result JSONs with known answers)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from madvae.attacks import STORED_ATTACKS
from madvae.cli import app
from madvae.errors import MadvaeError
from madvae.outcomes import decode_bits, encode_bits
from madvae.report import build_row_table, build_table, write_tables

runner = CliRunner()
N = 12


def bits(values):
    return encode_bits(np.asarray(values, dtype=bool))


def result(kind, attack, defense, *, samples=0, params=None, quick=False, defended=None, defended_clean=None,
           no_defense=None, clean=None, n=N, training=None, classifier_training=None, source="sha-clean"):
    """A result whose metrics are computed from the given per-image outcomes (lists of 0/1)."""
    clean = clean if clean is not None else [1] * n
    no_defense = no_defense if no_defense is not None else [0] * n
    groups = {"clean": clean, "no_defense": no_defense}
    if defense != "none":
        groups["defended"] = defended
        groups["defended_clean"] = defended_clean if defended_clean is not None else [1] * n
    metrics = {g: {"accuracy": float(np.mean(v)), "agreement": float(np.mean(v))} for g, v in groups.items()}
    payload = {"encoding-type": "madvae.result", "encoding-version": "1.0", "kind": kind, "dataset": "mnist-5k",
               "split": "test", "n": n, "attack": attack, "params": params or {}, "quick": quick,
               "set": f"{attack}.h5", "set_sha256": f"sha-{attack}", "classifier": "clf.pt",
               "classifier_sha256": "sha-clf", "classifier_arch": "magnet",
               "classifier_training": classifier_training or {"arch": "magnet", "epochs": 50, "n_train": 60000},
               "defense": {"name": defense} if defense == "none" else
               {"name": defense, "checkpoint": f"{defense}.pt", "sha256": f"sha-{defense}", "samples": samples,
                "training": training or {}},
               "metrics": metrics,
               "outcomes": {"encoding": "bits-hex", "images": {"clean_set_sha256": source, "start": 0, "count": n},
                            "correct": {g: bits(v) for g, v in groups.items()},
                            "agree": {g: bits(v) for g, v in groups.items()}}}
    return payload


def write(folder, name, payload):
    path = folder / name
    path.write_text(json.dumps(payload))
    return path


def test_bits_round_trip_and_refuse_wrong_lengths():
    values = np.random.default_rng(0).random(13) > 0.5
    assert (decode_bits(encode_bits(values), 13) == values).all()
    assert len(encode_bits(values)) == 4  # 13 bits -> 2 bytes -> 4 hex digits
    with pytest.raises(ValueError):
        decode_bits(encode_bits(values), 17)


def test_quick_cw_row_and_one_epoch_purifier_are_named_in_the_caption(tmp_path):
    quick_cw = {**STORED_ATTACKS["cw"].presets["test"], **STORED_ATTACKS["cw"].quick, "preset": "test", "quick": True}
    training = {"loss": "vanilla", "epochs": 1, "batch_size": 128, "n_train": 21500,
                "sets": [{"name": "fgsm_train-0", "attack": "fgsm", "preset": "train-0", "quick": False, "n": 3500},
                         {"name": "cw_train-1", "attack": "cw", "preset": "train-1", "quick": True, "n": 500}]}
    ones = [1] * N
    files = [write(tmp_path, "cw-none.json", result("whitebox", "cw", "none", params=quick_cw)),
             write(tmp_path, "cw-vanilla.json", result("whitebox", "cw", "vanilla", params=quick_cw, defended=ones,
                                                        training=training)),
             write(tmp_path, "fgsm-vanilla.json", result("whitebox", "fgsm", "vanilla", params={"eps": 0.3},
                                                          defended=ones, training=training))]
    written = write_tables(files, tmp_path / "out", name="t")
    markdown = written["files"]["markdown"].read_text()
    labels = [row["attack"] for row in written["table"].rows]
    assert labels[:2] == ["FGSM", "CW (quick)"]
    assert "CW: quick — max_iterations 100 (paper 1500), binary_search_steps 1 (paper 9)" in markdown
    assert "Purifier vanilla: 1 epoch (paper 5), batch 128 (paper 512)" in markdown
    assert "cw_train-1 quick preset on 500 of 3500 digits" in markdown
    assert "not trained on the paper's fgsm train-1" in markdown
    # the CSV row label carries the preset too, so a loaded table does not pass for a full-strength one
    assert "CW (quick)" in written["files"]["accuracy"].read_text()


def test_a_full_strength_table_has_no_reduced_settings_note(tmp_path):
    training = {"loss": "vanilla", "epochs": 5, "batch_size": 512, "n_train": 540000,
                "sets": [{"name": f"{a}_{p}", "attack": a, "preset": p, "quick": False, "n": 60000}
                         for a in ("fgsm", "rfgsm", "cw") for p in ("train-0", "train-1", "train-2")]}
    files = [write(tmp_path, "a.json", result("whitebox", "fgsm", "vanilla", params={"eps": 0.3}, defended=[1] * N,
                                              training=training))]
    table = build_row_table(files, "whitebox")
    assert not any("Reduced settings" in note for note in table.notes), table.notes


def test_quick_and_full_results_of_one_attack_in_one_row_are_refused(tmp_path):
    files = [write(tmp_path, "pgd-vanilla.json", result("adaptive", "pgd-e2e", "vanilla", quick=True,
                                                         params={"nb_iter": 5}, defended=[1] * N)),
             write(tmp_path, "pgd-combined.json", result("adaptive", "pgd-e2e", "combined", quick=False,
                                                          params={"nb_iter": 40}, defended=[1] * N))]
    outcome = runner.invoke(app, ["report", *map(str, files), "--kind", "adaptive", "--out-dir", str(tmp_path / "o")])
    lines = outcome.output.strip().splitlines()
    assert outcome.exit_code == 65 and len(lines) == 1, outcome.output
    assert "different attack settings" in lines[0] and "nb_iter 5 vs 40" in lines[0]
    assert not (tmp_path / "o").exists()


def test_overpowered_columns_of_different_presets_are_refused(tmp_path):
    def overpowered(defense, steps):
        payload = result("overpowered", "overpowered", defense, defended=[1] * N)
        payload["params"] = {"preset": "quick", "steps": steps, "restarts": 1, "noise_samples": 4,
                             "norms": [1.0, 2.5, 3.0, 3.5]}
        payload["metrics"] = {key: 0.5 for key in ("accuracy", "original_accuracy", "accuracy_within_budget",
                                                   "original_accuracy_within_budget", "budget_fraction", "clean")}
        payload["metrics"]["mean_l2"] = 3.0
        return payload

    files = [write(tmp_path, "v.json", overpowered("vanilla", 30)),
             write(tmp_path, "c.json", overpowered("combined", 30))]
    table = build_table(files, "overpowered")
    caption = "\n".join(table.notes)
    assert ("Overpowered Attack: quick preset — restarts 1 (paper 20), steps 30 (paper 1000), noise_samples 4 "
            "(paper 100)") in caption and "n 12 (paper the first 1000 test images)" in caption
    write(tmp_path, "c.json", overpowered("combined", 60))
    with pytest.raises(MadvaeError, match="different attack settings"):
        build_table(files, "overpowered")


def adaptive_grid(tmp_path):
    """Per-image outcomes with a known worst case. Images 0-11; 1 = the defended classifier was right."""
    folder = tmp_path / "r"
    folder.mkdir()
    v_clean = [1] * 11 + [0]                           # vanilla misreads clean image 11
    write(folder, "pgd-e2e-vanilla.json", result("adaptive", "pgd-e2e", "vanilla", defended_clean=v_clean,
                                                 defended=[1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1]))
    write(folder, "bpda-vanilla.json", result("adaptive", "bpda", "vanilla", defended_clean=v_clean,
                                              defended=[1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]))
    write(folder, "eot-vanilla.json", result("adaptive", "eot", "vanilla", samples=4,
                                             defended=[0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1]))
    # a stored attack on 20 images: only the first 12 count; it fools image 5 and an image beyond the 12th
    stored = [1] * 20
    stored[5] = stored[15] = 0
    write(folder, "pgd-stored-vanilla.json", result("whitebox", "pgd", "vanilla", n=20, defended=stored))
    write(folder, "pgd-stored-none.json", result("whitebox", "pgd", "none", n=20, no_defense=[1] * 19 + [0]))
    for name in ("pgd-e2e", "bpda", "eot"):
        write(folder, f"{name}-none.json", result("adaptive", name, "none", no_defense=[1, 1] + [0] * 10))
    return folder


def test_worst_case_row_per_defense_from_per_image_outcomes(tmp_path):
    table = build_row_table([adaptive_grid(tmp_path)], "adaptive")
    rows = {row["attack"]: row for row in table.rows}
    columns = table.columns
    assert list(rows) == ["PGD end-to-end vs posterior-mean defense", "BPDA vs posterior-mean defense",
                          "EOT vs 4-sample defense", "Worst case vs posterior-mean defense",
                          "Worst case vs 4-sample defense"]
    mean_row = rows["Worst case vs posterior-mean defense"]["accuracy"]
    # vanilla, mean defense: wrong on 3 (pgd-e2e), 1 (bpda), 5 (stored PGD), 11 (clean) -> 8 of 12
    assert mean_row[columns.index("vanilla")] == pytest.approx(8 / 12)
    assert rows["Worst case vs 4-sample defense"]["accuracy"][columns.index("vanilla")] == pytest.approx(8 / 12)
    # No Defense: the adaptive attacks on the classifier leave images 0 and 1
    assert mean_row[columns.index("No Defense")] == pytest.approx(2 / 12)
    # a worst case is never above one of its parts
    for row in table.rows[:3]:
        assert mean_row[columns.index("vanilla")] <= row["accuracy"][columns.index("vanilla")] or "EOT" in row["attack"]
    caption = "\n".join(table.notes)
    assert "over the first 12 test images" in caption and "PGD end-to-end" in caption and "PGD, " in caption


def test_worst_case_refuses_results_without_outcomes_or_of_other_images(tmp_path):
    folder = adaptive_grid(tmp_path)
    path = folder / "bpda-vanilla.json"
    payload = json.loads(path.read_text())
    payload["outcomes"]["images"]["clean_set_sha256"] = "another-set"
    path.write_text(json.dumps(payload))
    with pytest.raises(MadvaeError, match="same images"):
        build_row_table([folder], "adaptive")
    del payload["outcomes"]
    path.write_text(json.dumps(payload))
    with pytest.raises(MadvaeError, match="no per-image outcomes") as info:
        build_row_table([folder], "adaptive")
    assert str(path) in str(info.value)


def test_whitebox_caption_explains_cells_above_clean_through_defense(tmp_path):
    files = [write(tmp_path, "f.json", result("whitebox", "fgsm", "combined", params={"eps": 0.3},
                                              defended=[1] * N, defended_clean=[1] * 10 + [0, 0]))]
    written = write_tables(files, tmp_path / "o", name="w")
    markdown = written["files"]["markdown"].read_text()
    assert "| FGSM | 1.0000 ± 0.1212 | 0.0000 ± 0.1212 | 1.0000 ± 0.1212 ↑ |" in markdown  # 12 digits: ± 0.12
    assert "| No attack (clean digits) | 1.0000 ± 0.1212 | 1.0000 ± 0.1212 | 0.8333 ± 0.2005 |" in markdown
    assert "label leaking" in markdown and "is not robustness" in markdown.replace("which is not", "is not")
