import pickle

import pytest
import torch

from madvae.checkpoint import load_checkpoint, save_checkpoint
from madvae.errors import MadvaeError
from madvae.models import build


def test_round_trip_keeps_weights_config_and_meta(tmp_path):
    model = build("classifier", "A")
    path = save_checkpoint(tmp_path / "a.pt", kind="classifier", arch="A", model=model, config={"epochs": 3},
                           meta={"test_accuracy": 0.5})
    ckpt = load_checkpoint(path, expect_kind="classifier", expect_arch="A")
    assert ckpt.config == {"epochs": 3} and ckpt.meta == {"test_accuracy": 0.5}
    restored = ckpt.build_model()
    for key, value in model.state_dict().items():
        assert torch.equal(restored.state_dict()[key], value)


def test_wrong_kind_and_wrong_architecture(tmp_path):
    path = save_checkpoint(tmp_path / "a.pt", kind="classifier", arch="A", model=build("classifier", "A"),
                           config={})
    with pytest.raises(MadvaeError, match="a vae is expected"):
        load_checkpoint(path, expect_kind="vae")
    # weights of substitute A stored under the name magnet: refused when building
    payload = torch.load(path, weights_only=True)
    payload["arch"] = "magnet"
    torch.save(payload, tmp_path / "lying.pt")
    with pytest.raises(MadvaeError, match="do not fit architecture 'magnet'"):
        load_checkpoint(tmp_path / "lying.pt").build_model()


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickle_that_would_run_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format": "madvae.checkpoint", "payload": _RunsCode(marker)}, evil)
    # unpickling it the unsafe way would create the marker; prove that, then that madvae does not
    with open(evil, "rb") as handle:
        torch.load(handle, weights_only=False)
    assert marker.exists()
    marker.unlink()
    with pytest.raises(MadvaeError, match="unsafe pickle"):
        load_checkpoint(evil)
    assert not marker.exists()


def test_plain_pickle_and_garbage_are_refused(tmp_path):
    plain = tmp_path / "plain.pt"
    plain.write_bytes(pickle.dumps({"a": 1}))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00" * 100)
    for path in (plain, garbage, tmp_path / "missing.pt"):
        with pytest.raises(MadvaeError):
            load_checkpoint(path)
