"""The front door: `madvae` alone, --version, -h, shell completion of verbs, attack names and files, and help
text whose metavars say what to type (KEY=VALUE, N, SET.h5), never the parser's type names."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from madvae import __version__
from madvae.cli import app

runner = CliRunner()
VERBS = ("classifier", "gen", "inspect", "train", "attack", "embed", "report", "version")


MADVAE = Path(sys.executable).parent / "madvae"  # the installed entry point: completion keys on its name


def madvae(*args, env=None):
    return subprocess.run([str(MADVAE), *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_madvae_alone_prints_the_front_page_and_exits_0():
    done = madvae()
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: madvae [OPTIONS] COMMAND") and all(verb in done.stdout for verb in VERBS)
    assert "--install-completion" in done.stdout and "--version" in done.stdout


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_flag(flag):
    outcome = runner.invoke(app, [flag])
    assert outcome.exit_code == 0 and outcome.output.strip() == f"madvae {__version__}"


@pytest.mark.parametrize("args", [["-h"], ["attack", "-h"], ["report", "-h"]])
def test_short_help(args):
    outcome = runner.invoke(app, args, prog_name="madvae")
    assert outcome.exit_code == 0 and outcome.output.startswith("Usage: madvae"), outcome.output


def complete(words, shell="zsh"):
    env = {"_MADVAE_COMPLETE": f"complete_{shell}", "_TYPER_COMPLETE_ARGS": words}
    if shell == "bash":
        env.update(COMP_WORDS=words, COMP_CWORD=str(len(words.split()) - (0 if words.endswith(" ") else 1)))
    return madvae(env=env).stdout


def test_completion_offers_verbs_attack_names_and_files():
    assert complete("madvae att", "bash").split() == ["attack"]
    assert "autoattack" in complete("madvae attack --mode au")
    assert "pgd-e2e" in complete("madvae attack --mode ")
    assert complete("madvae attack --set ").strip() == "_files"  # zsh completes file names there
    assert "square" in complete("madvae gen --attack s") or "single-pixel" in complete("madvae gen --attack s")


PARSER_TYPES = re.compile(r"<(path|int|float|text|str|list\[[^\]]*\])>|\{[A-Za-z_.]+\}", re.I)


@pytest.mark.parametrize("verb", VERBS)
def test_help_metavars_say_what_to_type(verb):
    outcome = runner.invoke(app, [verb, "--help"], terminal_width=200)
    assert outcome.exit_code == 0
    assert not PARSER_TYPES.search(outcome.output), PARSER_TYPES.search(outcome.output).group(0)


def test_the_common_metavars():
    text = runner.invoke(app, ["attack", "--help"], terminal_width=200).output
    for needle in ("--set SET.h5", "--param KEY=VALUE", "--limit N", "--vae CKPT.pt", "--out RESULT.json"):
        assert needle in text, needle
    assert "Usage: madvae train [OPTIONS] [SET.h5]..." in runner.invoke(app, ["train", "--help"], prog_name="madvae").output
    assert "Usage: madvae embed [OPTIONS] SET.h5" in runner.invoke(app, ["embed", "--help"], prog_name="madvae").output


def readme_section(heading: str) -> str:
    """The README's text from the heading that starts with ``heading`` to the next level-2 heading."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    return text.split(f"\n{heading}", 1)[1].split("\n## ", 1)[0]


def test_the_readmes_command_line_section_matches_the_cli():
    """Every verb of the front page, and only those, in the README's verb list; its exit-code table is
    madvae.errors' codes plus 0 (done) and 1 (unforeseen)."""
    from madvae.errors import Interrupted, MadvaeError, UsageError, WriteError

    section = readme_section("## The command line")
    listed = re.findall(r"^madvae (\w+) ", section.split("```text", 1)[1].split("```", 1)[0], re.M)
    front = runner.invoke(app, ["--help"], terminal_width=120).output
    verbs = re.findall(r"^  (\w+)  ", front.split("Commands:", 1)[1], re.M)
    assert sorted(listed) == sorted(verbs) == sorted(VERBS)
    codes = {int(code) for code in re.findall(r"^\| *(\d+) \|", section, re.M)}
    assert codes == {0, 1} | {kind.EXIT_CODE for kind in (MadvaeError, UsageError, WriteError, Interrupted)}
