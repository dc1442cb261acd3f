"""Write config/README.md, the workflow's config reference, from workflow/schemas/config.schema.yaml (the one
place each key is declared) and the opening comments of the shipped configs; and write the schema's name lists
from madvae's registries: a schema line ending in ``# registry: KIND`` gets the names of REGISTRY_NAMES[KIND]
as its ``enum: [...]``, so a new attack, variant or architecture reaches the config schema from its registry entry.

    python scripts/config_reference.py           # rewrite the schema's registry enums and config/README.md
    python scripts/config_reference.py --check   # exit 1 if either is not what the registries and schema give
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from madvae.attacks import ADAPTIVE_ATTACKS, OVERPOWERED_PRESETS, STORED_ATTACKS  # noqa: E402
from madvae.data import SOURCES  # noqa: E402
from madvae.registry import CLASSIFIERS, SUBSTITUTES, VARIANTS  # noqa: E402

SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
OUT = ROOT / "config" / "README.md"
REGISTRY_NAMES = {"stored-attacks": STORED_ATTACKS, "adaptive-attacks": ADAPTIVE_ATTACKS, "datasets": SOURCES,
                  "classifiers": CLASSIFIERS, "substitutes": SUBSTITUTES, "loss-variants": VARIANTS,
                  "overpowered-presets": OVERPOWERED_PRESETS}
_TAGGED = re.compile(r"^(?P<head>.*?enum: \[)[^\]]*(?P<tail>\].*#\s*registry:\s*(?P<kind>[a-z-]+)\s*)$")


def schema_with_registry_names(text: str) -> str:
    """The schema text with every tagged line's enum replaced by its registry's names, in registry order."""
    lines = []
    for line in text.split("\n"):
        match = _TAGGED.match(line)
        if match:
            names = ", ".join(REGISTRY_NAMES[match["kind"]])
            line = f"{match['head']}{names}{match['tail']}"
        lines.append(line)
    return "\n".join(lines)


def resolve(node: dict, defs: dict) -> dict:
    """A schema node with its $ref merged in (the node's own keywords win)."""
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        return {**resolve(target, defs), **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def type_of(node: dict, defs: dict) -> str:
    node = resolve(node, defs)
    if "enum" in node:
        return ", ".join(f"`{value}`" for value in node["enum"])
    if "anyOf" in node:
        return " or ".join(type_of(option, defs) for option in node["anyOf"])
    kind = node.get("type", "any")
    kinds = kind if isinstance(kind, list) else [kind]
    names = []
    for one in kinds:
        if one == "array":
            names.append(f"list of {type_of(node.get('items', {}), defs)}")
        elif one == "null":
            names.append("null")
        else:
            names.append(one)
    return " or ".join(names)


def cell(text) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def rows(node: dict, defs: dict, path: str):
    """(key path, type, default, description) for ``node`` and everything under it."""
    node = resolve(node, defs)
    properties = node.get("properties")
    items = resolve(node.get("items", {}), defs) if node.get("type") == "array" else {}
    default = f"`{yaml.safe_dump(node['default'], default_flow_style=True).strip().removesuffix('...').strip()}`" \
        if "default" in node else ""
    if properties is None and not items.get("properties"):
        yield path, type_of(node, defs), default, node.get("description", "")
        return
    if node.get("description"):
        yield path, "mapping" if properties else "list of mappings", default, node["description"]
    for key, child in (properties or items.get("properties", {})).items():
        yield from rows(child, defs, f"{path}{'[]' if not properties else ''}.{key}" if path else key)


def shipped_configs() -> list[str]:
    lines = []
    for path in sorted((ROOT / "config").glob("*.yaml")):
        comment = []
        for line in path.read_text().splitlines():
            if not line.startswith("#"):
                break
            comment.append(line.lstrip("# ").strip())
        lines.append(f"- `{path.name}`: {cell(' '.join(comment)) or '(no description)'}")
    return lines


def render() -> str:
    schema = yaml.safe_load(SCHEMA.read_text())
    defs = schema.get("$defs", {})
    out = ["# Workflow configuration", "",
           "<!-- written by scripts/config_reference.py from workflow/schemas/config.schema.yaml; "
           "do not edit by hand -->", "",
           cell(schema.get("description", "")), "",
           "Give a config with `snakemake --configfile FILE` (it is merged over `config/config.yaml`: mappings key "
           "by key, lists whole) or single keys with `--config key=value`. Every config is checked against the "
           "schema before a job runs; the defaults below fill what a config leaves out.", "",
           "## Shipped configs", "", *shipped_configs(), "",
           "## Keys", ""]
    for key, node in schema["properties"].items():
        out += [f"### `{key}`", "", "| key | type | default | meaning |", "|---|---|---|---|"]
        out += [f"| `{path}` | {cell(kind)} | {cell(default)} | {cell(text)} |"
                for path, kind, default, text in rows(node, defs, key)]
        out.append("")
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    schema_text = SCHEMA.read_text()
    schema = schema_with_registry_names(schema_text)
    if args.check:
        stale = [path for path, now, wanted in ((SCHEMA, schema_text, schema),
                                                (OUT, OUT.read_text() if OUT.exists() else None, None))
                 if now != (wanted if wanted is not None else render())]
        for path in stale:
            print(f"{path.relative_to(ROOT)} is out of date: run python scripts/config_reference.py", file=sys.stderr)
        return 1 if stale else 0
    if schema != schema_text:
        SCHEMA.write_text(schema)
        print(f"wrote {SCHEMA.relative_to(ROOT)}")
    OUT.write_text(render())
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
