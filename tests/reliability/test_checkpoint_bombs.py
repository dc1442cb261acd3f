"""A checkpoint is bounded before anything is read: a small file whose compressed zip entry would inflate to
hundreds of megabytes, or whose entries declare more bytes than any madvae checkpoint holds, is refused in one
line without inflating it."""
from __future__ import annotations

import time
import zipfile

import pytest
import torch
from typer.testing import CliRunner

import madvae.checkpoint as checkpoint_module
from tests.legacy_checkpoints import as_legacy
from madvae.checkpoint import load_checkpoint, save_checkpoint
from madvae.cli import app
from madvae.errors import MadvaeError
from madvae.models import MagNetClassifier


@pytest.fixture
def valid(tmp_path):
    torch.manual_seed(0)
    # torch's zip (format_version 1), whose entries a bomb could inflate; safetensors has no compressed entries
    return as_legacy(save_checkpoint(tmp_path / "new.pt", kind="classifier", arch="magnet", model=MagNetClassifier(),
                                     config={}), tmp_path / "ok.pt")


def test_a_compressed_entry_that_would_inflate_is_refused_unread(valid, tmp_path):
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(valid) as source, zipfile.ZipFile(bomb, "w") as out:
        for entry in source.infolist():
            out.writestr(entry, source.read(entry), compress_type=zipfile.ZIP_STORED)
        prefix = source.infolist()[0].filename.split("/")[0]
        out.writestr(zipfile.ZipInfo(f"{prefix}/data/1000"), bytes(300 * 2**20), compress_type=zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < 4 * 2**20  # a small file ...
    started = time.monotonic()
    with pytest.raises(MadvaeError, match="compressed") as info:
        load_checkpoint(bomb)
    assert str(bomb) in str(info.value) and time.monotonic() - started < 5  # ... refused without inflating it
    outcome = CliRunner().invoke(app, ["inspect", str(bomb)])
    assert outcome.exit_code == 65 and len(outcome.output.strip().splitlines()) == 1, outcome.output


def test_declared_sizes_beyond_any_checkpoint_are_refused(valid, monkeypatch):
    assert load_checkpoint(valid).kind == "classifier"
    monkeypatch.setattr(checkpoint_module, "MAX_CHECKPOINT_BYTES", 1000)
    with pytest.raises(MadvaeError, match="more than any madvae checkpoint holds"):
        load_checkpoint(valid)
