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


def test_the_citation_file_cites_this_release_and_the_paper():
    import json

    import yaml

    from madvae import __version__

    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0" and citation["type"] == "software"
    assert citation["version"] == __version__ and citation["license"] == PROJECT["project"]["license"]
    paper = json.loads((ROOT / "madvae" / "reference" / "paper.json").read_text())["citation"]
    (article,) = [ref for ref in citation["references"] if ref["type"] == "article"]
    assert article["title"] == paper["title"] and article["year"] == paper["year"]
    assert [f"{a['given-names']} {a['family-names']}" for a in article["authors"]] == paper["authors"]
    assert f"arXiv:{paper['arxiv']}" in [identifier["value"] for identifier in article["identifiers"]]


def test_the_readme_states_the_tag_scheme_of_this_version():
    from madvae import __version__

    readme = (ROOT / "README.md").read_text()
    assert "tagged `vMAJOR.MINOR.PATCH`" in readme
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)  # a version the scheme can tag (v0.1.0)
