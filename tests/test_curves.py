"""Security-evaluation curves (madvae/evaluate/curve.py, madvae/security.py): accuracy falls with eps, eps 0 is the
clean accuracy, the table and figure carry every curve with its intervals, and wrong requests are refused."""
import json

import pytest
from typer.testing import CliRunner

from madvae.cli import app
from madvae.errors import MadvaeError
from madvae.evaluate.curve import evaluate_curve
from madvae.intervals import half_width
from madvae.security import build_security_table, write_security

GRID = [0.0, 0.05, 0.1, 0.2, 0.3]


def test_the_curve_falls_with_eps_from_the_clean_accuracy(trained_classifier, tmp_path):
    checkpoint, test_set = trained_classifier
    result = evaluate_curve(test_set, checkpoint, tmp_path / "c.json", attack="pgd-e2e", eps_grid=GRID, quick=True,
                            limit=40, device="cpu", progress=False)
    points = result["metrics"]["no_defense"]
    assert points["eps"] == GRID and result["kind"] == "curve" and result["n"] == 40 and result["quick"]
    accuracy = points["accuracy"]
    assert all(later <= earlier for earlier, later in zip(accuracy, accuracy[1:])), accuracy
    assert accuracy[0] > 0.8 and accuracy[-1] < 0.2  # the trained MagNet: right on clean digits, broken at 0.3
    assert points["agreement"][0] == 1.0  # eps 0 leaves every image as it was
    assert "eps" not in result["params"] and json.loads((tmp_path / "c.json").read_text())["metrics"] == \
        result["metrics"]


def curve(attack, defense, accuracy, *, n=50, eps=(0.0, 0.2, 0.4), quick=True):
    group = "no_defense" if defense == "none" else "defended"
    return {"encoding-type": "madvae.result", "encoding-version": "1.0", "kind": "curve", "dataset": "mnist-5k",
            "split": "test", "n": n, "attack": attack, "params": {}, "quick": quick,
            "classifier_sha256": "sha-clf", "defense": {"name": defense, "samples": 0},
            "metrics": {group: {"eps": list(eps), "accuracy": accuracy, "agreement": accuracy}}}


def write(folder, name, result):
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(json.dumps(result))
    return folder / name


def test_the_table_orders_attacks_and_defenses_and_gives_each_cell_its_interval(tmp_path):
    folder = tmp_path / "r"
    write(folder, "a.json", curve("autoattack", "vanilla", [0.9, 0.4, 0.0]))
    write(folder, "b.json", curve("pgd-e2e", "vanilla", [0.9, 0.5, 0.1]))
    write(folder, "c.json", curve("pgd-e2e", "none", [0.96, 0.1, 0.0]))
    written = write_security([folder], tmp_path / "out")
    table = written["table"]
    assert table.columns == ["eps 0", "eps 0.2", "eps 0.4"]
    assert [row["attack"] for row in table.rows] == ["PGD end-to-end (quick), No Defense",
                                                     "PGD end-to-end (quick), vanilla", "AutoAttack (quick), vanilla"]
    markdown = written["files"]["markdown"].read_text()
    assert f"| AutoAttack (quick), vanilla | 0.9000 ± {half_width(0.9, 50):.4f} | 0.4000 ± " in markdown
    assert "n = 50 per cell" in markdown and "95% Wilson interval" in markdown
    assert written["files"]["figure"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "out" / "security_accuracy.csv").read_text().splitlines()[1].startswith(
        "\"PGD end-to-end (quick), No Defense\",0.9600,0.1000,0.0000,mnist-5k,test,50,")


def test_curves_over_different_grids_or_twice_the_same_pair_are_refused(tmp_path):
    folder = tmp_path / "r"
    write(folder, "a.json", curve("pgd-e2e", "vanilla", [0.9, 0.5, 0.1]))
    write(folder, "b.json", curve("pgd-e2e", "none", [0.9, 0.5], eps=(0.0, 0.3)))
    with pytest.raises(MadvaeError, match="different eps grids"):
        build_security_table([folder])
    write(folder, "b.json", curve("pgd-e2e", "vanilla", [0.8, 0.5, 0.1]))
    with pytest.raises(MadvaeError, match="two curves of pgd-e2e against vanilla"):
        build_security_table([folder])


@pytest.mark.parametrize("args, words", [
    (["--eps-grid", "0,0.3"], "--eps-grid does not apply to --mode stored"),
    (["--mode", "pgd-e2e", "--eps-grid", "0.3,0.1"], "ascending distinct numbers in [0, 1]"),
    (["--mode", "pgd-e2e", "--eps-grid", "0,1.5"], "ascending distinct numbers in [0, 1]"),
    (["--mode", "pgd-e2e", "--eps-grid", "0,a"], "not a comma-separated list of numbers"),
    (["--mode", "pgd-e2e", "--eps-grid", "0,0.3", "--param", "eps=0.1"], "--param eps does not apply"),
])
def test_a_wrong_curve_request_is_one_line_and_no_file(args, words, clean_test_set, random_classifier, tmp_path):
    out = tmp_path / "c.json"
    result = CliRunner().invoke(app, ["attack", "--set", str(clean_test_set), "--classifier", str(random_classifier),
                                      "--device", "cpu", "--no-progress", *args, "--out", str(out)])
    assert result.exit_code == 2 and words in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists()
