"""Write config/README.md, the workflow's config reference, from workflow/schemas/config.schema.yaml (the one
place each key is declared) and the opening comments of the shipped configs.

    python scripts/config_reference.py           # rewrite config/README.md
    python scripts/config_reference.py --check   # exit 1 if config/README.md is not what the schema gives
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
OUT = ROOT / "config" / "README.md"


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
    text = render()
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT.relative_to(ROOT)} is out of date: run python scripts/config_reference.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
