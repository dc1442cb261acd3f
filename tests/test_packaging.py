"""What pip reads: the licence as an SPDX expression with its file (no setuptools deprecation page at set-up),
and every dependency the code imports declared."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib")  # Python 3.11+
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_licence_is_an_spdx_string_with_its_file():
    project = PROJECT["project"]
    assert project["license"] == "MIT"  # the table form {text = ...} makes setuptools print a deprecation page
    assert project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    floor = re.search(r"setuptools>=(\d+)", " ".join(PROJECT["build-system"]["requires"]))
    assert floor and int(floor.group(1)) >= 77  # the first setuptools that reads the SPDX form


def test_the_attack_libraries_are_declared_and_imported_by_one_module_each():
    declared = " ".join(PROJECT["project"]["dependencies"])
    for library, module in (("advertorch", "whitebox.py"), ("torchattacks", "autoattack.py")):
        assert library in declared
        importers = [path.relative_to(ROOT) for path in (ROOT / "madvae").rglob("*.py")
                     if re.search(rf"^\s*(import|from) {library}\b", path.read_text(), re.M)]
        assert importers == [Path("madvae/attacks") / module], importers
