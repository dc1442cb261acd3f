"""Names spelled in several places today (attacks, adaptive attacks, loss variants, architectures, datasets,
Overpowered presets) must agree with the registry that defines them: the CLI's choices, the config schema's enums,
the report's rows, the Snakefile's wildcard constraints and bench/. A name added in one place only fails here."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from bench import sections
from madvae import cli, report
from madvae.attacks import ATTACKS
from madvae.attacks.adaptive import ADAPTIVE_ATTACKS
from madvae.attacks.overpowered import OVERPOWERED_PRESETS
from madvae.data import SOURCES
from madvae.evaluate_blackbox import SUBSTITUTES
from madvae.losses import VARIANTS
from madvae.models import CLASSIFIERS

ROOT = Path(__file__).resolve().parents[1]
_SCHEMA = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
SCHEMA, DEFS = _SCHEMA["properties"], _SCHEMA["$defs"]
SNAKEFILE = (ROOT / "workflow" / "Snakefile").read_text()


def enum_values(enum) -> set[str]:
    return {member.value for member in enum}


def constraint(name: str) -> str:
    return re.search(rf'^\s*{name}="([^"]+)",', SNAKEFILE, re.M).group(1)


CASES = {
    "attacks": (set(ATTACKS), [enum_values(cli.AttackName) - {"none"}, set(report.ATTACK_ROWS), set(sections.ATTACKS),
                               set(DEFS["attack_setting"]["properties"]["attack"]["enum"])]),
    "adaptive attacks": (set(ADAPTIVE_ATTACKS), [set(report.ADAPTIVE_ROWS), set(sections.ADAPTIVE),
                                                 set(SCHEMA["adaptive"]["properties"]["attacks"]["items"]["enum"]),
                                                 set(constraint("adaptive").split("|"))]),
    "loss variants": (set(VARIANTS), [enum_values(cli.LossVariant),
                                      set(SCHEMA["variants"]["items"]["properties"]["loss"]["enum"])]),
    "classifier architectures": (set(CLASSIFIERS), [enum_values(cli.Arch),
                                                    set(SCHEMA["classifier"]["properties"]["arch"]["enum"])]),
    "substitutes": (set(SUBSTITUTES), [set(CLASSIFIERS) - {"magnet"}, set(sections.SUBSTITUTES),
                                       set(SCHEMA["blackbox"]["properties"]["paper"]["items"]["enum"]),
                                       set(SCHEMA["blackbox"]["properties"]["transfer"]["items"]["enum"]),
                                       {arch for arch in "ABCDEFGHIJ" if re.fullmatch(constraint("arch"), arch)}]),
    "datasets": (set(SOURCES), [enum_values(cli.Dataset), set(SCHEMA["dataset"]["properties"]["name"]["enum"])]),
    "Overpowered presets": (set(OVERPOWERED_PRESETS), [enum_values(cli.OverpoweredPreset),
                                                       set(SCHEMA["overpowered"]["properties"]["preset"]["enum"])]),
}


@pytest.mark.parametrize("kind", list(CASES))
def test_every_copy_of_a_registry_names_the_same(kind):
    registry, copies = CASES[kind]
    for copy in copies:
        assert copy == registry, f"{kind}: {sorted(copy)} where the registry has {sorted(registry)}"
