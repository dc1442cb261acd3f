"""`madvae inspect` on result JSONs, and on several files at once: every valid file reported, then the error of
each bad one (exit 65, bad input); `--verify` counts files in the singular too."""
from __future__ import annotations

import json

from typer.testing import CliRunner

from madvae.cli import app
from tests.test_report import result, write

runner = CliRunner()


def test_a_result_json_is_summarized(tmp_path):
    path = write(tmp_path, "r.json", {**result("pgd", "vanilla", defended=(0.81, 0.82)), "seed": 4})
    outcome = runner.invoke(app, ["inspect", str(path)])
    assert outcome.exit_code == 0, outcome.output
    lines = outcome.output.splitlines()
    assert lines[0] == f"{path}: madvae whitebox result (madvae.result 1.0), attack pgd, defense vanilla"
    assert "  mnist-5k test, n 1000, seed 4" in lines
    assert "  defended accuracy 0.8100 agreement 0.8200" in lines
    summary = json.loads(runner.invoke(app, ["inspect", "--json", str(path)]).output)
    assert summary["type"] == "result" and summary["kind"] == "whitebox" and summary["n"] == 1000


def test_several_files_report_every_valid_one_before_the_errors(tmp_path, clean_test_set):
    good = write(tmp_path, "good.json", result("fgsm", "none"))
    bad = tmp_path / "bad.json"
    bad.write_text('{"encoding-type": "something else"}')
    missing = tmp_path / "missing.pt"
    outcome = runner.invoke(app, ["inspect", str(bad), str(good), str(missing), str(clean_test_set)])
    assert outcome.exit_code == 65, outcome.output
    assert f"{good}: madvae whitebox result" in outcome.stdout and f"{clean_test_set}: madvae set" in outcome.stdout
    errors = outcome.stderr.strip().splitlines()
    assert errors == [f"madvae: error: {bad}: not a madvae result (encoding-type 'something else')",
                      f"madvae: error: {missing}: no such file"]


def test_verify_says_one_file(tmp_path):
    path = write(tmp_path, "r.json", result("fgsm", "none"))
    outcome = runner.invoke(app, ["inspect", "--verify", str(path)])
    assert "1 file intact;" in outcome.output and "1 files" not in outcome.output
