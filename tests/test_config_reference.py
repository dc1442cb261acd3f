"""config/README.md is the config reference written from the schema (scripts/config_reference.py), and the schema
declares each key with JSON Schema keywords only: in a YAML flow mapping, an unquoted description holding a comma
ends early and its tail becomes a stray key that every validator ignores."""
from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import config_reference  # noqa: E402

KEYWORDS = {"$schema", "$defs", "$ref", "description", "type", "additionalProperties", "properties", "items",
            "required", "enum", "const", "default", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
            "pattern", "anyOf", "oneOf", "allOf", "not", "if", "then", "else", "minItems", "maxItems", "uniqueItems",
            "minLength", "maxLength"}


def stray_keys(node, path=""):
    """Keys of schema nodes that are not JSON Schema keywords (names under properties/$defs are not nodes)."""
    if isinstance(node, list):
        return [k for index, item in enumerate(node) for k in stray_keys(item, f"{path}[{index}]")]
    if not isinstance(node, dict):
        return []
    found = []
    for key, value in node.items():
        if key in ("properties", "$defs") and isinstance(value, dict):
            found += [k for name, child in value.items() for k in stray_keys(child, f"{path}/{name}")]
        elif key == "default":
            continue  # a value, not a schema
        elif key not in KEYWORDS:
            found.append(f"{path}: {key!r}")
        else:
            found += stray_keys(value, f"{path}/{key}")
    return found


def test_the_schema_uses_only_json_schema_keywords():
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert stray_keys(schema) == []


def test_a_description_cut_at_a_comma_is_found():
    schema = yaml.safe_load("properties: {root: {description: Folder (mnist, fashion-mnist)., type: string}}")
    assert stray_keys(schema) == ["/root: 'fashion-mnist).'"]


def test_the_schemas_name_lists_are_the_registries():
    """Every line tagged `# registry: KIND` lists that registry's names in its order; a renamed or new attack,
    variant or architecture fails here until scripts/config_reference.py has written it."""
    text = (ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text()
    assert text.count("# registry: ") >= 8
    assert config_reference.schema_with_registry_names(text) == text, "run python scripts/config_reference.py"
    stale = text.replace("enum: [pgd-e2e, bpda, eot]", "enum: [pgd-e2e, bpda]")
    assert config_reference.schema_with_registry_names(stale) == text


def test_the_config_reference_is_written_from_the_schema():
    text = config_reference.render()
    assert (ROOT / "config" / "README.md").read_text() == text, "run python scripts/config_reference.py"
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    for key in schema["properties"]:
        assert f"### `{key}`" in text
    assert "| `vae.gamma` |" in text and "Classification loss weight (classification, combined)." in text
