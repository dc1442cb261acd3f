"""docs/format.md is the specification; madvae/schemas.py declares it once per format. The two must agree: every
field the schema declares is documented with the same type, and every documented field exists in the schema."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from madvae.schemas import CHECKPOINT, DATASET_ATTRIBUTES, RESULT, SET_ATTRIBUTES

FORMAT = Path(__file__).resolve().parents[1] / "docs" / "format.md"
# the heading each schema's table sits under
TABLES = {"## Root attributes": SET_ATTRIBUTES, "## Datasets": DATASET_ATTRIBUTES,
          "## Checkpoints": CHECKPOINT, "## Results": RESULT}
DOC_TYPES = {"string": "str", "integer": "int", "number": "number", "boolean": "bool", "object": "object",
             "array": "list"}


def documented(heading: str) -> dict[str, tuple[str, str]]:
    """{field: (type, meaning)} from the (field or attribute | type | meaning) table under ``heading``."""
    text = FORMAT.read_text()
    section = text.split(f"\n{heading}", 1)[1].split("\n## ", 1)[0]
    tables = [table for table in re.findall(r"((?:^\|.*\|\n)+)", section, flags=re.M)
              if re.match(r"\| (field|attribute) \| type \| meaning \|", table)]
    assert len(tables) == 1, heading
    rows = {}
    for line in tables[0].splitlines()[2:]:
        names, kind, meaning = [cell.strip() for cell in line.strip("|").split("|")][:3]
        for name in re.findall(r"`([^`]+)`", names):
            rows[name] = (kind, meaning)
    return rows


def doc_type(schema: dict) -> str:
    """The type a field's schema declares, in the docs' words."""
    if schema.get("x-json"):
        return "str (JSON object)"
    if "anyOf" in schema:
        kinds = [doc_type(option) for option in schema["anyOf"]]
        return " or ".join(kinds)
    if "const" in schema:
        return {bool: "bool", int: "int", str: "str"}[type(schema["const"])]
    if "enum" in schema:  # names; or versions and flags (format_version 1|2, complete 1 or the legacy true)
        kinds = {type(value) for value in schema["enum"]}
        return "str" if kinds == {str} else "int" if kinds <= {int, bool} else "str"
    kind = schema["type"]
    if kind == "object" and schema.get("additionalProperties", {}).get("type") == "tensor":
        return "object of tensors"
    if kind == "null":
        return "null"
    return DOC_TYPES[kind]


def declared(schema: dict, prefix: str = "") -> dict[str, dict]:
    """{dotted field name: its schema} for the schema's fields and its records' fields."""
    fields = {}
    for name, sub in schema.get("properties", {}).items():
        fields[prefix + name] = sub
        if sub.get("properties"):
            fields.update(declared(sub, f"{prefix}{name}."))
    return fields


@pytest.mark.parametrize("heading", list(TABLES))
def test_every_documented_field_is_declared_with_its_type(heading):
    fields = declared(TABLES[heading])
    rows = documented(heading)
    assert rows
    for name, (kind, _) in rows.items():
        assert name in fields, f"{heading}: `{name}` is documented but not in the schema"
        assert kind == doc_type(fields[name]), f"{heading}: `{name}` documented as {kind!r}"


@pytest.mark.parametrize("heading", list(TABLES))
def test_every_declared_field_is_documented(heading):
    rows = documented(heading)
    top = TABLES[heading]["properties"]
    missing = [name for name in top if name not in rows]
    assert not missing, f"{heading}: {missing} are in the schema but not in docs/format.md"


@pytest.mark.parametrize("heading", list(TABLES))
def test_required_fields_are_the_documented_ones(heading):
    """Sets and checkpoints: every documented root field is required except the ones named optional; results:
    the ones whose meaning starts with "required"."""
    schema = TABLES[heading]
    rows = documented(heading)
    if heading == "## Results":
        said = {name for name, (_, meaning) in rows.items() if meaning.startswith("required") and "." not in name}
        assert said == set(schema["required"])
    else:
        assert set(schema["required"]) <= set(rows)


def test_the_tables_parse_as_the_docs_show():
    """The parser sees the comma-separated names of one row (a typo in the docs would hide a field)."""
    rows = documented("## Root attributes")
    assert rows["creator"] == rows["creator_version"] and rows["n"][0] == "int"
    assert doc_type(SET_ATTRIBUTES["properties"]["params"]) == "str (JSON object)"
    assert doc_type(RESULT["properties"]["source_classifier_sha256"]) == "str or null"
