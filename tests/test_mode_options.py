"""`madvae attack`: an option the chosen mode does not read is refused in one line naming the mode and the option
(exit 2), never silently dropped; every mode is run against every mode-specific option."""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

from madvae.cli import app
from madvae.errors import UsageError
from madvae.evaluate import MODES, Request, evaluate

runner = CliRunner()

# each mode-specific option with a value it accepts (None: a flag)
OPTIONS = {"--classifier": "c.pt", "--vae": "v.pt", "--defense-name": "d", "--batch-size": "8", "--samples": "2",
           "--param": "eps=0.1", "--quick": None, "--eps-grid": "0,0.1", "--substitute": "s.pt",
           "--substitute-arch": "B", "--preset": "paper", "--figure": "f.png"}
DEFENDED = {"--vae", "--defense-name", "--batch-size"}
ADAPTIVE = DEFENDED | {"--classifier", "--param", "--quick", "--samples", "--eps-grid"}
# written out here, not read from madvae: what each mode is documented to read
READS = {"stored": DEFENDED | {"--classifier", "--samples"},
         **{mode: ADAPTIVE for mode in ("pgd-e2e", "bpda", "eot", "autoattack", "square")},
         "blackbox-paper": DEFENDED | {"--substitute", "--param"},
         "blackbox-transfer": DEFENDED | {"--classifier", "--param", "--quick", "--substitute-arch"},
         "overpowered": DEFENDED | {"--classifier", "--param", "--preset", "--figure"}}


def test_the_table_covers_every_mode():
    assert set(READS) == set(MODES)


def invoke(tmp_path, mode, option):
    args = ["attack", "--mode", mode, "--set", str(tmp_path / "missing.h5"), "--out", str(tmp_path / "r.json"),
            option] + ([] if OPTIONS[option] is None else [OPTIONS[option]])
    return runner.invoke(app, args)


@pytest.mark.parametrize("mode", sorted(READS))
@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_every_mode_refuses_exactly_the_options_it_does_not_read(tmp_path, mode, option):
    outcome = invoke(tmp_path, mode, option)
    refusal = f"{option} does not apply to --mode {mode}"
    if option in READS[mode]:
        assert "does not apply" not in outcome.output, outcome.output
        assert not (tmp_path / "r.json").exists()  # it fails later, on the missing files
    else:
        assert outcome.exit_code == 2, outcome.output
        lines = outcome.output.strip().splitlines()
        assert len(lines) == 1 and refusal in lines[0], outcome.output
        assert not (tmp_path / "r.json").exists()


def test_the_issue_s_command_is_refused_naming_every_stray_option(tmp_path):
    outcome = runner.invoke(app, ["attack", "--preset", "paper", "--figure", str(tmp_path / "f.png"),
                                  "--substitute-arch", "B", "--quick", "--set", str(tmp_path / "s.h5"),
                                  "--classifier", str(tmp_path / "c.pt"), "--out", str(tmp_path / "r.json")])
    assert outcome.exit_code == 2
    assert "--quick, --preset, --substitute-arch, --figure does not apply to --mode stored" in outcome.output


def test_an_option_given_at_its_default_value_is_still_refused(tmp_path):
    # --substitute-arch A and --preset quick are the defaults; said explicitly to the stored mode they still mean
    # a user who believes they chose something
    outcome = runner.invoke(app, ["attack", "--substitute-arch", "A", "--set", str(tmp_path / "s.h5"),
                                  "--out", str(tmp_path / "r.json")])
    assert outcome.exit_code == 2 and "--substitute-arch does not apply to --mode stored" in outcome.output


def test_the_library_refuses_a_request_away_from_a_default_its_mode_does_not_read(tmp_path):
    request = Request(tmp_path / "s.h5", tmp_path / "r.json", classifier=tmp_path / "c.pt", preset="paper")
    with pytest.raises(UsageError, match="--preset does not apply to --mode stored"):
        evaluate("stored", request)


@pytest.mark.parametrize("kind, option, value", [
    ("whitebox", "--classifier", "c.pt"), ("whitebox", "--vae", "v.pt"), ("adaptive", "--device", "cpu"),
    ("whitebox", "--criterion", "min-accuracy"), ("samples", "--criterion", "min-accuracy")])
def test_report_refuses_an_option_its_kind_does_not_read(tmp_path, kind, option, value):
    outcome = runner.invoke(app, ["report", str(tmp_path), "--out-dir", str(tmp_path / "t"), "--kind", kind, option]
                            + ([] if value is None else [value]))
    assert outcome.exit_code == 2, outcome.output
    assert f"{option} does not apply to --kind {kind}" in outcome.output
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("args, message", [
    (["--norm", "2.0"], "apply to the overpowered spaces only"), (["--preset", "quick"], "apply to the overpowered"),
    (["--param", "steps=3"], "apply to the overpowered"),
    (["--classifier", "c.pt"], "--classifier does not apply to --space input with --colour true")])
def test_embed_refuses_attack_options_without_an_overpowered_space(tmp_path, args, message):
    outcome = runner.invoke(app, ["embed", str(tmp_path / "s.h5"), "--out", str(tmp_path / "e"), *args])
    assert outcome.exit_code == 2, outcome.output
    assert message in outcome.output and len(outcome.output.strip().splitlines()) == 1


@pytest.mark.parametrize("kind", ["adaptive", "security", "samples"])
def test_report_refuses_paper_for_a_kind_the_paper_has_no_table_of(tmp_path, kind):
    outcome = runner.invoke(app, ["report", str(tmp_path), "--out-dir", str(tmp_path / "t"), "--kind", kind,
                                  "--paper"])
    assert outcome.exit_code == 2 and f"the paper has no table of kind '{kind}'" in outcome.output


def test_embed_takes_the_classifier_for_predicted_colours(tmp_path):
    outcome = runner.invoke(app, ["embed", str(tmp_path / "s.h5"), "--out", str(tmp_path / "e"), "--colour",
                                  "predicted", "--classifier", str(tmp_path / "c.pt")])
    assert "does not apply" not in outcome.output and outcome.exit_code != 0  # the missing set, not the option
