"""Checkpoints of format_version 1 (torch.save's zip, before safetensors) for the tests that change a field or an
archive entry: they must still load, and their broken variants must still be refused."""
from __future__ import annotations

import torch

from madvae.checkpoint import read_payload


def as_legacy(path, out, **changes):
    """Write the checkpoint at ``path`` to ``out`` in format_version 1, with ``changes`` to its fields."""
    torch.save({**read_payload(path), "format_version": 1, **changes}, out)
    return out
