"""The result JSON format (`madvae.result`): `madvae attack` writes one object per evaluation, `madvae report` and
`madvae inspect --verify` read them. The fields are declared once, in madvae.schemas.RESULT (docs/format.md)."""
from __future__ import annotations

import json
from pathlib import Path

from madvae.errors import MadvaeError
from madvae.schemas import RESULT, validate
from madvae.util import atomic_output, read_json_file

RESULT_TYPE = "madvae.result"
RESULT_VERSION = "1.0"


def write_result(path, payload: dict) -> Path:
    """Validate (a field of the wrong type is a bug here, not in a reader's file) and write atomically."""
    validate(payload, RESULT, path)
    with atomic_output(path) as tmp:
        Path(tmp).write_text(json.dumps(payload, indent=2, sort_keys=True, allow_nan=False) + "\n")
    return Path(path)


def load_result(path, kind: str | None = "whitebox", also=()) -> dict:
    """One validated result of ``kind`` (or of a kind in ``also``; None: any kind); anything else is one error
    naming the file and the field."""
    path = Path(path)
    result = read_json_file(path, "result")
    if not isinstance(result, dict) or result.get("encoding-type") != RESULT_TYPE:
        found = result.get("encoding-type") if isinstance(result, dict) else type(result).__name__
        raise MadvaeError(f"not a madvae result (encoding-type {found!r})", path)
    version = str(result.get("encoding-version", ""))
    if version.split(".")[0] != RESULT_VERSION.split(".")[0]:
        raise MadvaeError(f"unsupported result encoding-version {version!r}", path)
    validate(result, RESULT, path)
    found = result["kind"]
    if kind is not None and found != kind and found not in also:
        raise MadvaeError(f"a {found!r} result does not belong in the {kind} table", path,
                          hint=f"pass --kind {found}")
    return result
