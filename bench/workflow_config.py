"""The workflow's config as its rules see it: config/config.yaml with a --configfile on top (mappings merged key
by key, lists replaced whole: Snakemake's update_config), the schema's defaults filled in (Snakemake's validate),
and the names and grids of workflow/rules/common.smk computed by that file itself, so that the estimate's jobs
are the workflow's jobs."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "config" / "config.yaml"
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
COMMON = ROOT / "workflow" / "rules" / "common.smk"
HELPERS = COMMON.parent / "helpers"  # each rule file's helpers (the sweep grids are in helpers/train.smk)
# keys the estimate reads before the schema may know them (vae.pairs_per_epoch and its per-variant override)
NEWER_KEYS = ("pairs_per_epoch",)


def effective_config(configfile=None, overrides: dict | None = None) -> dict:
    """config/config.yaml, then ``configfile``, then ``overrides`` (like --config), validated with defaults."""
    from snakemake.utils import update_config, validate

    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    for layer in (yaml.safe_load(Path(configfile).read_text()) if configfile else None, overrides):
        if layer:
            update_config(config, layer)
    aside = _set_aside_unknown(config)
    validate(config, str(SCHEMA))
    for where, key, value in aside:
        where[key] = value
    return config


def _set_aside_unknown(config: dict) -> list:
    """Take out NEWER_KEYS the schema does not declare yet (it rejects unknown keys) to put back after validation."""
    schema = yaml.safe_load(SCHEMA.read_text())
    aside = []
    if "pairs_per_epoch" not in schema["properties"]["vae"]["properties"]:
        for where in [config.get("vae", {}), *config.get("variants", [])]:
            for key in NEWER_KEYS:
                if key in where:
                    aside.append((where, key, where.pop(key)))
    return aside


def workflow_names(config: dict) -> SimpleNamespace:
    """The globals of common.smk and the rule files' helpers (TRAIN_ATTACKS, TEST_ATTACKS, VARIANTS, SWEEPS,
    VAL_ATTACKS, overpowered_variants, ...) for this config; check_config() raises the workflow's own errors.
    The files are plain Python apart from report(), which only the figure helpers call."""
    namespace = {"config": config, "report": lambda path, **_: path, "__name__": "common_smk"}
    for path_of_file in [COMMON, *sorted(HELPERS.glob("*.smk"))]:  # the helpers are plain Python too
        exec(compile(path_of_file.read_text(), str(path_of_file), "exec"), namespace)
    return SimpleNamespace(**namespace)
