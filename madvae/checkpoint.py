"""Checkpoints that load without running code. Written as safetensors (format_version 2): the weights as named
tensors, every other field as a string in the header's metadata (config and meta as JSON), so any language reads
them without madvae or pickle. Files of format_version 1 (torch's zip of tensors and JSON strings) still load,
through torch.load(weights_only=True)."""
from __future__ import annotations

import io
import json
import pickle
import pickletools
import warnings
import zipfile
from pathlib import Path

import torch

from madvae import __version__
from madvae.errors import MadvaeError
from madvae.models import build, place
from madvae.schemas import CHECKPOINT, decode_json_fields, validate
from madvae.util import atomic_output, refuse_special_file, utc_now

FORMAT = "madvae.checkpoint"
FORMAT_VERSION = 2  # safetensors; 1: torch.save's zip (read only)
KINDS = ("classifier", "vae")
# the header fields a safetensors checkpoint holds as metadata strings (the rest of the payload are its tensors)
METADATA_FIELDS = ("format", "format_version", "kind", "arch", "creator_version", "created", "config", "meta")


def save_checkpoint(path, *, kind: str, arch: str, model: torch.nn.Module, config: dict, meta: dict | None = None,
                    extra_tensors: dict | None = None) -> Path:
    """``config``: the resolved options that made it; ``meta``: results and provenance (JSON-able);
    ``extra_tensors``: named tensors beside the weights (loss centres)."""
    if kind not in KINDS:
        raise ValueError(kind)
    payload = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind, "arch": arch,
        "creator_version": __version__, "created": utc_now(),
        "config": json.dumps(config, sort_keys=True), "meta": json.dumps(meta or {}, sort_keys=True),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": extra_tensors or {},
    }
    validate(decode_json_fields(payload, CHECKPOINT, path), CHECKPOINT, path)  # a wrong field here is our bug
    write_bytes_atomically(_to_safetensors(payload), path)
    return Path(path)


def _to_safetensors(payload: dict) -> bytes:
    from safetensors.torch import save

    tensors = {f"state_dict/{key}": tensor for key, tensor in payload["state_dict"].items()}
    tensors |= {f"extra/{name}": tensor for name, tensor in payload["extra"].items()}  # loss centres
    metadata = {field: str(payload[field]) for field in METADATA_FIELDS}
    # safetensors stores each tensor once, contiguous and unshared
    return save({name: tensor.detach().cpu().contiguous().clone() for name, tensor in tensors.items()}, metadata)


def _is_safetensors(path) -> bool:
    """An 8-byte little-endian header length, then the JSON header."""
    with open(path, "rb") as handle:
        head = handle.read(9)
    return len(head) == 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") < Path(path).stat().st_size


def _read_safetensors(path) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load

    size = Path(path).stat().st_size
    if size > MAX_CHECKPOINT_BYTES:
        raise MadvaeError(f"checkpoint is {size} bytes, more than any madvae checkpoint holds "
                          f"({MAX_CHECKPOINT_BYTES})", path)
    data = Path(path).read_bytes()
    try:
        tensors = load(data)
        header = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])
    except (SafetensorError, ValueError) as exc:
        raise MadvaeError(f"not a readable checkpoint (damaged safetensors: {exc})", path) from exc
    metadata = header.get("__metadata__") or {}
    missing = [field for field in METADATA_FIELDS if field not in metadata]
    if missing:
        raise MadvaeError(f"not a madvae checkpoint (safetensors without {', '.join(missing)} in its metadata)", path)
    try:
        version = int(metadata["format_version"])
    except ValueError as exc:
        raise MadvaeError(f"not a madvae checkpoint (metadata format_version: {exc})", path) from exc
    payload = {field: metadata[field] for field in METADATA_FIELDS} | {"format_version": version}
    parts = {"state_dict": {}, "extra": {}}
    for name, tensor in tensors.items():
        group, _, key = name.partition("/")
        if group not in parts or not key:
            raise MadvaeError(f"not a madvae checkpoint (tensor {name!r} outside state_dict/ and extra/)", path)
        parts[group][key] = tensor
    payload |= parts
    return payload


def write_bytes_atomically(data, path) -> None:
    """Serialised bytes through a temporary file: a failed write (disk full) is the OSError it is."""
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)


def save_atomically(payload, path) -> None:
    """torch.save (the resume state) through a temporary file. Serialised in memory first: torch.save reports a
    failed write as an opaque RuntimeError."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_bytes_atomically(buffer.getbuffer(), path)


class Checkpoint:
    def __init__(self, path, payload: dict):
        """``payload``: the validated fields, ``config`` and ``meta`` decoded."""
        self.path = Path(path)
        self.kind = payload["kind"]
        self.arch = payload["arch"]
        self.config = payload["config"]
        self.meta = payload["meta"]
        self.state_dict = payload["state_dict"]
        self.extra = payload["extra"]
        self.created = payload["created"]
        self.creator_version = payload["creator_version"]

    def build_model(self, device="cpu") -> torch.nn.Module:
        model = build("classifier" if self.kind == "classifier" else "generator", self.arch)
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise MadvaeError(f"weights do not fit architecture {self.arch!r} ({first})", self.path) from exc
        broken = [name for name, tensor in model.state_dict().items()
                  if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
        if broken:  # a NaN model predicts one class everywhere and scores a perfect agreement under attack
            raise MadvaeError(f"weights hold NaN or Inf ({', '.join(broken[:3])})", self.path,
                              "retrain the model; a diverged training leaves such weights")
        return place(model, device).eval()


# What a checkpoint may hold: the largest architecture's float32 weights (DefenseVAE, 3.0 M values, 12 MB) four
# times over, plus room for config, meta and extra tensors. Checked on the zip directory before anything is read.
MAX_CHECKPOINT_BYTES = 64 * 2**20


def _check_archive(path) -> None:
    """torch.save writes a zip of stored (uncompressed) entries. A compressed entry is refused (a few KB can
    inflate to gigabytes), and so are entries whose declared sizes disagree or add up to more than any madvae
    checkpoint holds."""
    if not zipfile.is_zipfile(path):
        return  # not torch's zip format: torch.load refuses it with its own error below
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise MadvaeError(f"not a readable checkpoint (damaged zip directory: {exc})", path) from exc
    for entry in entries:
        if entry.compress_type != zipfile.ZIP_STORED or entry.compress_size != entry.file_size:
            raise MadvaeError(f"checkpoint entry {entry.filename!r} is compressed or declares inconsistent sizes; "
                              "torch.save stores its entries as they are", path,
                              "only load checkpoints written by madvae")
    total = sum(entry.file_size for entry in entries)
    if total > MAX_CHECKPOINT_BYTES:
        raise MadvaeError(f"checkpoint declares {total} bytes, more than any madvae checkpoint holds "
                          f"({MAX_CHECKPOINT_BYTES})", path)


_CODE_OPCODES = {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ", "NEWOBJ_EX", "BUILD"}


def _may_run_code(path) -> bool:
    """Why weights_only refused a file: torch's zip format is refused only for a global it does not allow; any
    other file is scanned (never run) for the opcodes that import or call. Random bytes have none."""
    if zipfile.is_zipfile(path):
        return True
    try:
        with open(path, "rb") as handle:
            return any(op.name in _CODE_OPCODES for op, _, _ in pickletools.genops(handle))
    except Exception:  # not a well-formed pickle: garbage, unless a code opcode came before the break
        return False


def read_payload(path) -> dict:
    """A checkpoint's fields and tensors as one dict (config and meta still JSON strings), from either format,
    unvalidated; nothing in the file runs."""
    path = Path(path)
    refuse_special_file(path)
    if not path.is_file():
        raise MadvaeError("no such checkpoint file", path)
    if _is_safetensors(path):
        return _read_safetensors(path)
    return _read_torch_zip(path)


def _read_torch_zip(path) -> dict:
    _check_archive(path)
    try:
        # weights_only=True: a pickle that would import or call anything is refused, never run
        with warnings.catch_warnings():  # torch warns about foreign pickle protocols; the error below says it all
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not _may_run_code(path):
            raise MadvaeError("not a readable checkpoint (truncated or another format)", path) from exc
        raise MadvaeError("refused: the file holds objects beyond tensors and plain data (unsafe pickle), "
                          "nothing from it was run", path, "only load checkpoints written by madvae") from exc
    except (RuntimeError, EOFError, ValueError, OSError, AttributeError, KeyError) as exc:
        raise MadvaeError("not a readable checkpoint (truncated or another format)", path) from exc
    return payload


def load_checkpoint(path, expect_kind: str | None = None, expect_arch: str | None = None) -> Checkpoint:
    path = Path(path)
    payload = read_payload(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise MadvaeError(f"not a madvae checkpoint (format {payload.get('format') if isinstance(payload, dict) else type(payload).__name__!r})", path)
    if payload.get("format_version") not in (1, FORMAT_VERSION):
        raise MadvaeError(f"unsupported checkpoint format_version {payload.get('format_version')!r}", path)
    payload = decode_json_fields(payload, CHECKPOINT, path)
    validate(payload, CHECKPOINT, path)
    ckpt = Checkpoint(path, payload)
    if expect_kind and ckpt.kind != expect_kind:
        raise MadvaeError(f"this is a {ckpt.kind} checkpoint ({ckpt.arch}), a {expect_kind} is expected here", path)
    if expect_arch and ckpt.arch != expect_arch:
        raise MadvaeError(f"checkpoint architecture is {ckpt.arch!r}, expected {expect_arch!r}", path)
    return ckpt
