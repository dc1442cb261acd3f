"""Every name (attacks, adaptive attacks, loss variants, architectures, data sets, Overpowered presets, evaluation
modes) is spelled once, in its registry. The CLI's choices, the report's rows, the Snakefile's wildcard constraints
and bench/ read it from there; the config schema, which cannot import Python, holds the one checked copy. A list of
registry names typed out anywhere else fails here."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from madvae import cli, report
from madvae.attacks import ADAPTIVE_ATTACKS, ATTACKS, OVERPOWERED_PRESETS, STORED_ATTACKS
from madvae.data import SOURCES
from madvae.evaluate import MODES
from madvae.registry import CLASSIFIERS, SUBSTITUTES, VARIANTS

ROOT = Path(__file__).resolve().parents[1]
_SCHEMA = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
SCHEMA, DEFS = _SCHEMA["properties"], _SCHEMA["$defs"]

REGISTRIES = {  # kind: (names, the file that defines them)
    "attacks": (set(STORED_ATTACKS), "madvae/attacks/__init__.py"),
    "adaptive attacks": (set(ADAPTIVE_ATTACKS), "madvae/attacks/__init__.py"),
    "Overpowered presets": (set(OVERPOWERED_PRESETS), "madvae/attacks/__init__.py"),
    "loss variants": (set(VARIANTS), "madvae/registry.py"),
    "classifier architectures": (set(CLASSIFIERS), "madvae/registry.py"),
    "substitutes": (set(SUBSTITUTES), "madvae/registry.py"),
    "datasets": (set(SOURCES), "madvae/data.py"),
    "evaluation modes": (set(MODES), "madvae/evaluate/__init__.py"),
}

SCHEMA_COPIES = {
    "attacks": DEFS["attack_setting"]["properties"]["attack"]["enum"],
    "adaptive attacks": SCHEMA["adaptive"]["properties"]["attacks"]["items"]["enum"],
    "Overpowered presets": SCHEMA["overpowered"]["properties"]["preset"]["enum"],
    "loss variants": SCHEMA["variants"]["items"]["properties"]["loss"]["enum"],
    "classifier architectures": SCHEMA["classifier"]["properties"]["arch"]["enum"],
    "substitutes": SCHEMA["blackbox"]["properties"]["paper"]["items"]["enum"],
    "datasets": SCHEMA["dataset"]["properties"]["name"]["enum"],
}


def enum_values(enum) -> set[str]:
    return {member.value for member in enum}


@pytest.mark.parametrize("kind", list(SCHEMA_COPIES))
def test_the_config_schema_offers_the_registrys_names(kind):
    assert set(SCHEMA_COPIES[kind]) == REGISTRIES[kind][0]
    if kind == "substitutes":
        assert set(SCHEMA["blackbox"]["properties"]["transfer"]["items"]["enum"]) == REGISTRIES[kind][0]


def test_the_cli_and_the_report_offer_the_registrys_names():
    assert enum_values(cli.AttackName) == {"none", *STORED_ATTACKS}
    assert enum_values(cli.AttackMode) == set(MODES) >= set(ADAPTIVE_ATTACKS)
    assert enum_values(cli.LossVariant) == set(VARIANTS)
    assert enum_values(cli.Arch) == set(CLASSIFIERS) and enum_values(cli.SubstituteArch) == set(SUBSTITUTES)
    assert enum_values(cli.Dataset) == set(SOURCES)
    assert enum_values(cli.OverpoweredPreset) == set(OVERPOWERED_PRESETS)
    assert set(report.ATTACK_ROWS) == set(STORED_ATTACKS) and set(report.ADAPTIVE_ROWS) == set(ADAPTIVE_ATTACKS)


# lists that name some of a registry's entries for a reason of their own
ALLOWED = {
    "madvae/schemas.py": "RESULT_KINDS = ",  # the result format's kinds (docs/format.md), not evaluation modes
    "workflow/rules/common.smk": "RESERVED_NAMES = ",  # the workflow's folders beside eval/<variant>/
    "bench/attack_sections.py": 'n = {"fgsm": s.attack',  # images per timed pass, by attack cost
}


def quoted_names(line: str) -> set[str]:
    """The quoted strings of a line of code, alternations ("a|b|c") split."""
    return {part for text in re.findall(r"""["']([^"'\s]+)["']""", line) for part in text.split("|")}


def typed_copies(names: set[str], home: str) -> list[str]:
    """Lines outside ``home`` (madvae/, workflow/, bench/) that quote three or more of ``names``: a copy of the list.
    Single-letter names count only as an alternation or a run of letters (arch="[A-E]", "ABCDE")."""
    found = []
    files = [*ROOT.glob("madvae/**/*.py"), *ROOT.glob("workflow/**/*.smk"), *ROOT.glob("workflow/Snakefile"),
             *ROOT.glob("bench/*.py")]
    letters = "".join(sorted(name for name in names if len(name) == 1))
    for path in files:
        if path == ROOT / home:
            continue
        allowed = ALLOWED.get(str(path.relative_to(ROOT)))
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if allowed and allowed in line:
                continue
            quoted = quoted_names(line)
            hits = {name for name in names if len(name) > 1 and name in quoted}
            single = len(letters) >= 3 and any(letters in q or q == f"[{letters[0]}-{letters[-1]}]" for q in quoted)
            if len(hits) >= 3 or single:
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    return found


@pytest.mark.parametrize("kind", list(REGISTRIES))
def test_no_list_of_a_registrys_names_is_typed_out_elsewhere(kind):
    names, home = REGISTRIES[kind]
    assert typed_copies(names, home) == []


def test_a_typed_out_copy_is_found(tmp_path, monkeypatch):
    """The scan itself: a hard-coded tuple of attack names and an arch range are both caught."""
    fake = tmp_path / "madvae"
    fake.mkdir()
    (fake / "copy.py").write_text('NAMES = ("fgsm", "rfgsm", "cw")\nARCH = "[A-E]"\nONE = ("fgsm",)\n')
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    assert len(typed_copies(set(ATTACKS), "madvae/attacks/__init__.py")) == 1
    assert len(typed_copies(set(SUBSTITUTES), "madvae/registry.py")) == 1


def test_every_package_of_madvae_is_shipped():
    """A wheel carries only the packages pyproject.toml lists; a subpackage left out imports in a checkout (an
    editable install finds it on disk) and fails everywhere else."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(path.parent.relative_to(ROOT).parts) for path in (ROOT / "madvae").rglob("__init__.py")}
    on_disk |= {".".join(path.relative_to(ROOT).parts) for path in (ROOT / "madvae").rglob("*")
                if path.is_dir() and path.name != "__pycache__" and any(path.glob("*.json"))}
    assert on_disk == listed
