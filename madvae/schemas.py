"""One declared schema per file format (docs/format.md is the specification; tests/test_schemas.py checks the two
agree): the set's HDF5 attributes, the checkpoint's fields and the result JSON. Readers validate every file
against its schema when they open it, so a wrong-typed field anywhere is one line naming the file and the field,
never a traceback or a plausible number.

JSON Schema (draft 2020-12), checked with the jsonschema package. Two madvae additions: the type ``tensor``
(a torch tensor, in checkpoints) and ``x-json: true`` on a field stored as a JSON string and decoded before
validation (sets' ``params``; checkpoints' ``config`` and ``meta``)."""
from __future__ import annotations

import json
import reprlib

import jsonschema
import torch

from madvae.errors import MadvaeError

MAX_DEPTH = 32  # madvae writes at most 6 levels; anything far deeper is hostile (Python's parsers recurse)
UINT63 = 2**63 - 1

STRING = {"type": "string"}
INTEGER = {"type": "integer"}
COUNT = {"type": "integer", "minimum": 0}
POSITIVE = {"type": "integer", "minimum": 1}
BOOLEAN = {"type": "boolean"}
NUMBER = {"type": "number"}
FRACTION = {"type": "number", "minimum": 0, "maximum": 1}
SHA256 = STRING  # checked against the files it names by `madvae inspect --verify`, not here
SHA256_OR_EMPTY = STRING
OBJECT = {"type": "object"}
LIST = {"type": "array"}
# an attack parameter: a scalar, or a list of scalars (Overpowered's norms)
SCALAR = {"type": ["string", "number", "boolean", "null"]}
PARAMETERS = {"type": "object", "additionalProperties": {"anyOf": [SCALAR, {"type": "array", "items": SCALAR}]}}


def record(required: dict, optional: dict | None = None, **extra) -> dict:
    """An object with these required and optional fields; other fields are allowed (newer minor versions)."""
    return {"type": "object", "properties": {**required, **(optional or {})}, "required": list(required), **extra}


def nullable(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


# -- sets (madvae.set 1.x): root attributes; each dataset's `min` and `max` ------------------------------------------
SET_ATTRIBUTES = record(
    {"encoding-type": {"const": "madvae.set"}, "encoding-version": {"type": "string", "pattern": r"^1\.\d+$"},
     "creator": STRING, "creator_version": STRING, "created": STRING, "dataset": STRING,
     "split": {"enum": ["train", "val", "test"]}, "attack": STRING,
     "params": {**PARAMETERS, "x-json": True}, "seed": {"type": "integer", "minimum": 0, "maximum": UINT63},
     "n": POSITIVE, "complete": {"enum": [True, 1]}},
    {"source_classifier_sha256": SHA256_OR_EMPTY,
     "class_names": {"type": "array", "items": STRING, "minItems": 10, "maxItems": 10},
     "provenance": {**record({}, {"input_set": STRING, "input_set_sha256": SHA256, "classifier": STRING,
                                  "classifier_arch": STRING, "seed_source": STRING}), "x-json": True}})
DATASET_ATTRIBUTES = record({"min": NUMBER, "max": NUMBER})

# -- checkpoints (madvae.checkpoint 1) -----------------------------------------------------------------------------
TRAINING_SET = record({"path": STRING, "sha256": SHA256},
                      {"attack": STRING, "split": STRING, "preset": nullable(STRING), "quick": BOOLEAN, "n": COUNT})
CHECKPOINT = record(
    {"format": {"const": "madvae.checkpoint"}, "format_version": {"enum": [1, 2]},
     "kind": {"enum": ["classifier", "vae"]}, "arch": STRING, "created": STRING, "creator_version": STRING,
     "config": {**record({}, {"loss": STRING, "epochs": COUNT, "batch_size": POSITIVE, "arch": STRING,
                              "seed": {"type": "integer", "minimum": 0, "maximum": UINT63}}), "x-json": True},
     "meta": {**record({}, {"n_train": COUNT, "pairs_per_epoch": COUNT, "pairs_seen": COUNT, "dataset": STRING,
                            "history": LIST,
                            "training_sets": {"type": "array", "items": TRAINING_SET},
                            "classifier_sha256": nullable(SHA256), "train_set_sha256": SHA256,
                            "test_set_sha256": SHA256}), "x-json": True},
     "state_dict": {"type": "object", "additionalProperties": {"type": "tensor"}},
     "extra": {"type": "object", "additionalProperties": {"type": "tensor"}}})

# -- results (madvae.result 1.x) -----------------------------------------------------------------------------------
METRIC_GROUP = record({"accuracy": FRACTION, "agreement": FRACTION})
OUTCOME_BITS = {"type": "string", "pattern": "^([0-9a-f]{2})*$"}
OUTCOMES = record({"encoding": {"const": "bits-hex"},
                   "images": record({"clean_set_sha256": SHA256_OR_EMPTY, "start": COUNT, "count": COUNT}),
                   "correct": {"type": "object", "additionalProperties": OUTCOME_BITS},
                   "agree": {"type": "object", "additionalProperties": OUTCOME_BITS}})
DEFENSE = record({"name": STRING},
                 {"checkpoint": STRING, "sha256": SHA256, "samples": COUNT,
                  "training": record({}, {"loss": nullable(STRING), "epochs": nullable(COUNT),
                                          "batch_size": nullable(POSITIVE), "n_train": nullable(COUNT),
                                          "pairs_per_epoch": nullable(COUNT), "pairs_seen": nullable(COUNT),
                                          "seed": nullable({"type": "integer", "minimum": 0, "maximum": UINT63}),
                                          "sets": {"type": "array",
                                                   "items": record({"name": STRING},
                                                                   {"attack": nullable(STRING),
                                                                    "preset": nullable(STRING),
                                                                    "quick": nullable(BOOLEAN),
                                                                    "n": nullable(COUNT)})}})})
ROW_METRICS = record({"clean": METRIC_GROUP},
                     {"no_defense": METRIC_GROUP, "defended": METRIC_GROUP, "defended_clean": METRIC_GROUP})
OVERPOWERED_METRICS = record({"accuracy": FRACTION, "original_accuracy": FRACTION,
                              "accuracy_within_budget": nullable(FRACTION),
                              "original_accuracy_within_budget": nullable(FRACTION),
                              "budget_fraction": FRACTION, "mean_l2": {"type": "number", "minimum": 0},
                              "clean": FRACTION})
STEPS_RUN = record({"steps_per_image": {"type": "array", "items": COUNT}, "goal_met": COUNT},
                   {"first_goal_step_mean": nullable(NUMBER), "first_goal_step": {"type": "array", "items": COUNT}})
RESULT_KINDS = ("whitebox", "blackbox-paper", "blackbox-transfer", "adaptive", "overpowered", "curve")
_CURVE = record({"eps": {"type": "array", "items": FRACTION, "minItems": 1},
                 "accuracy": {"type": "array", "items": FRACTION, "minItems": 1},
                 "agreement": {"type": "array", "items": FRACTION, "minItems": 1}})
# a security-evaluation curve: the pipeline's accuracy per eps (defended, or no_defense without a VAE)
CURVE_METRICS = {**record({}, {"defended": _CURVE, "no_defense": _CURVE}), "minProperties": 1, "maxProperties": 1}


def _when_kind(kinds, then: dict) -> dict:
    return {"if": {"properties": {"kind": {"enum": list(kinds)}}}, "then": then}


RESULT = {
    **record(
        {"encoding-type": {"const": "madvae.result"}, "encoding-version": {"type": "string", "pattern": r"^1\.\d+$"},
         "kind": {"enum": list(RESULT_KINDS)}, "dataset": STRING, "split": {"enum": ["train", "val", "test"]},
         "n": POSITIVE, "attack": STRING, "defense": DEFENSE, "metrics": OBJECT},
        {"creator_version": STRING, "params": PARAMETERS, "set": STRING, "set_sha256": SHA256, "classifier": STRING,
         "classifier_sha256": SHA256, "classifier_arch": STRING, "classifier_training": record({}, {"arch": STRING, "epochs": nullable(COUNT), "n_train": nullable(COUNT)}),
         "outcomes": OUTCOMES, "transfer": BOOLEAN, "source_classifier_sha256": nullable(SHA256), "quick": BOOLEAN,
         "substitute": STRING, "note": STRING, "queries": COUNT, "substitute_agreement": FRACTION,
         "substitute_training": OBJECT, "holdout_indices": {"type": "array", "items": COUNT},
         "per_norm": {"type": "object", "additionalProperties": OBJECT},
         "steps_run": {"type": "object", "additionalProperties": STEPS_RUN},
         "fooled_by": {"type": "object", "additionalProperties": COUNT},
         "seed": {"type": "integer", "minimum": 0, "maximum": UINT63}}),
    "allOf": [
        _when_kind(RESULT_KINDS[:4], {"properties": {"metrics": ROW_METRICS}}),
        _when_kind(["overpowered"], {"properties": {"metrics": OVERPOWERED_METRICS}}),
        # an attack's result scores the adversarial images; a defense's, the purified ones too
        {"if": {"properties": {"attack": {"not": {"const": "none"}}, "kind": {"enum": list(RESULT_KINDS[:4])}}},
         "then": {"properties": {"metrics": {"required": ["no_defense"]}}}},
        {"if": {"properties": {"attack": {"not": {"const": "none"}}, "kind": {"enum": list(RESULT_KINDS[:4])},
                               "defense": {"properties": {"name": {"not": {"const": "none"}}}}}},
         "then": {"properties": {"metrics": {"required": ["defended"]}}}},
        _when_kind(["blackbox-paper", "blackbox-transfer"], {"required": ["substitute"]}),
        _when_kind(["curve"], {"properties": {"metrics": CURVE_METRICS}}),
    ],
}

_TYPES = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine_many({
    "tensor": lambda _checker, value: isinstance(value, torch.Tensor),
    # JSON Schema counts 3.0 as an integer; a count or a seed read as a float would break slicing and seeding
    "integer": lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)})
_Validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=_TYPES)
_VALIDATORS: dict[int, jsonschema.protocols.Validator] = {}


def decode_json_fields(document: dict, schema: dict, path, noun: str = "field") -> dict:
    """A copy of ``document`` with the fields marked ``x-json`` decoded from their JSON strings."""
    decoded = dict(document)
    for name, field_schema in schema.get("properties", {}).items():
        if field_schema.get("x-json") and name in decoded:
            text = decoded[name]
            if not isinstance(text, str):
                raise MadvaeError(f"{noun} {name}: expected a JSON string, got {describe(text)}", path)
            decoded[name] = parse_json(text, path, f"{noun} {name}")
    return decoded


def parse_json(text: str, path, what: str = ""):
    """JSON text -> value, refusing NaN/Infinity (not JSON; NaN passes every `minimum`) and deep nesting."""
    def refuse_constant(name):
        raise ValueError(f"{name} is not a JSON number")

    try:
        value = json.loads(text, parse_constant=refuse_constant)
    except RecursionError:
        raise MadvaeError(f"{what or 'file'} is nested too deeply to be a madvae file", path) from None
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise MadvaeError(f"{what} is not valid JSON ({exc})" if what else f"not a readable JSON file ({exc})",
                          path) from None
    check_depth(value, path, what)
    return value


def check_depth(value, path, what: str = "") -> None:
    """Refuse nesting beyond MAX_DEPTH without recursing (a 100,000-level list would overflow the stack)."""
    level = [value]
    for _ in range(MAX_DEPTH + 1):
        level = [child for item in level if isinstance(item, (dict, list))
                 for child in (item.values() if isinstance(item, dict) else item)]
        if not level:
            return
    raise MadvaeError(f"{what or 'file'} is nested more than {MAX_DEPTH} levels deep; madvae files are not", path)


def validate(document, schema: dict, path, where: str = "", noun: str = "field") -> None:
    """Raise one MadvaeError naming ``path`` and the first field (by relevance) that breaks ``schema``.
    ``where``: a prefix for the field's name; ``noun``: what a field is called in this format."""
    validator = _VALIDATORS.get(id(schema))
    if validator is None:
        validator = _VALIDATORS[id(schema)] = _Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(document))
    if error is not None:
        raise MadvaeError(_explain(error, where).replace("field ", f"{noun} ", 1), path)


def field_name(parts) -> str:
    name = ""
    for part in parts:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name


def describe(value) -> str:
    kind = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "an integer", float: "a number"}.get(type(value), type(value).__name__)
    return f"{kind} {_short.repr(value)}" if not isinstance(value, (dict, list)) or len(value) < 4 else kind


_short = reprlib.Repr()
_short.maxstring, _short.maxother, _short.maxlist, _short.maxdict, _short.maxlevel = 40, 40, 3, 3, 2


def _explain(error, where: str) -> str:
    name = where + field_name(error.absolute_path)
    if error.validator == "required":
        missing = [key for key in error.validator_value if key not in error.instance]
        return f"field {where + field_name([*error.absolute_path, missing[0]])} is missing"
    if error.validator == "type":
        wanted = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        return f"field {name}: expected {' or '.join(wanted)}, got {describe(error.instance)}"
    if error.validator in ("const", "enum"):
        allowed = [error.validator_value] if error.validator == "const" else error.validator_value
        return (f"field {name}: got {describe(error.instance)}, expected "
                f"{' or '.join(json.dumps(value) for value in allowed)}")
    if error.validator in ("minimum", "maximum"):
        return f"field {name}: {describe(error.instance)} is out of range ({error.validator} {error.validator_value})"
    if error.validator == "pattern":
        return f"field {name}: {describe(error.instance)} does not have the expected form"
    return f"field {name or '(top level)'}: {describe(error.instance)} is not valid ({error.validator})"
