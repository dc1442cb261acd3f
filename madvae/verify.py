"""`madvae inspect --verify`: recompute every given file's checksums and check the provenance chain.

Each artifact records the SHA-256 of what it was made from:
  adversarial set  -> the clean set it was crafted from, the classifier it was crafted on
  classifier       -> its training and test sets
  VAE              -> its training sets, the frozen classifier of its loss
  result JSON      -> the evaluated set, the classifier, the defense checkpoint
A reference is checked against the files given on the command line (by hash), else against the file at the
recorded path if it still exists; a file whose hash differs from the recorded one is a mismatch.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from madvae.inspect import file_kind, inspect_path
from madvae.results import load_result
from madvae.util import sha256_file


@dataclass(frozen=True)
class Reference:
    role: str  # what the artifact used the referenced file for
    path: str | None  # where it was when recorded (may be gone or moved)
    sha256: str


@dataclass(frozen=True)
class Check:
    artifact: str
    reference: Reference
    status: str  # "ok", "missing" (neither given nor at its recorded path) or "mismatch"
    found: str | None = None  # the file that was checked


def summarize_any(path) -> dict:
    """Integrity first: a set is read to its last sample (fletcher32 and value checks), a checkpoint is loaded
    safely and rebuilt, a result JSON is parsed; any failure is a MadvaeError naming the file."""
    path = Path(path)
    if file_kind(path) == "result":
        payload = load_result(path, kind=None)
        return {"type": "result", "path": str(path), "sha256": sha256_file(path), "payload": payload}
    return inspect_path(path)  # a set or a checkpoint, told apart as `madvae inspect` does


def references(summary: dict) -> list[Reference]:
    refs = []

    def add(role, path, sha256):
        if sha256:
            refs.append(Reference(role, str(path) if path else None, sha256))

    if summary["type"] == "set":
        provenance = summary.get("provenance", {})
        add("crafted from set", provenance.get("input_set"), provenance.get("input_set_sha256"))
        add("crafted on classifier", None, summary.get("source_classifier_sha256"))
    elif summary["type"] == "checkpoint":
        config, meta = summary.get("config", {}), summary.get("meta", {})
        if summary["kind"] == "classifier":
            add("trained on set", config.get("train_set"), meta.get("train_set_sha256"))
            add("tested on set", config.get("test_set"), meta.get("test_set_sha256"))
        else:
            for entry in meta.get("training_sets", []):
                add("trained on set", entry.get("path"), entry.get("sha256"))
            add("frozen classifier", config.get("classifier"), meta.get("classifier_sha256"))
    else:
        payload = summary["payload"]
        add("evaluated set", payload.get("set"), payload.get("set_sha256"))
        add("classifier", payload.get("classifier"), payload.get("classifier_sha256"))
        defense = payload.get("defense") or {}
        add("defense", defense.get("checkpoint"), defense.get("sha256"))
    return refs


def verify_paths(paths) -> tuple[list[dict], list[Check]]:
    summaries = [summarize_any(path) for path in paths]
    by_hash = {summary["sha256"]: summary["path"] for summary in summaries}
    hashed: dict[str, str] = {}  # recorded path -> its current hash, computed once
    checks = []
    for summary in summaries:
        for ref in references(summary):
            if ref.sha256 in by_hash:
                checks.append(Check(summary["path"], ref, "ok", by_hash[ref.sha256]))
            elif ref.path and Path(ref.path).is_file():
                current = hashed.setdefault(ref.path, sha256_file(ref.path))
                checks.append(Check(summary["path"], ref, "ok" if current == ref.sha256 else "mismatch", ref.path))
            else:
                checks.append(Check(summary["path"], ref, "missing"))
    return summaries, checks


def format_checks(summaries: list[dict], checks: list[Check]) -> str:
    lines = [f"{s['path']}: {s['type']} intact, sha256 {s['sha256'][:16]}..." for s in summaries]
    for check in checks:
        ref = check.reference
        if check.status == "ok":
            lines.append(f"ok        {check.artifact}: {ref.role} {check.found}")
        elif check.status == "mismatch":
            lines.append(f"MISMATCH  {check.artifact}: {ref.role} {check.found} has changed since "
                         f"(recorded sha256 {ref.sha256[:16]}..., now {sha256_file(check.found)[:16]}...)")
        else:
            where = f" (recorded at {ref.path})" if ref.path else ""
            lines.append(f"unchecked {check.artifact}: {ref.role} sha256 {ref.sha256[:16]}... not given{where}")
    mismatches = sum(check.status == "mismatch" for check in checks)
    missing = sum(check.status == "missing" for check in checks)
    lines.append(f"{len(summaries)} file{'' if len(summaries) == 1 else 's'} intact; {len(checks) - mismatches - missing} links verified, "
                 f"{mismatches} mismatched, {missing} unchecked (give those files to check them)")
    return "\n".join(lines)
