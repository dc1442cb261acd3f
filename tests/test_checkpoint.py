import pickle

import pytest
import torch

from tests.legacy_checkpoints import as_legacy

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
    as_legacy(path, tmp_path / "lying.pt", arch="magnet")
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


def test_a_checkpoint_reads_with_the_safetensors_library_alone(tmp_path):
    """Another lab's reader: no madvae, no pickle; the weights are named tensors, the rest header metadata."""
    import json

    from safetensors import safe_open

    torch.manual_seed(0)
    model = build("classifier", "magnet")
    path = save_checkpoint(tmp_path / "m.pt", kind="classifier", arch="magnet", model=model, config={"epochs": 3},
                           meta={"n_train": 10}, extra_tensors={"centres": torch.ones(2, 3)})
    with safe_open(str(path), framework="pt") as reader:
        metadata = reader.metadata()
        names = set(reader.keys())
        weights = {name[len("state_dict/"):]: reader.get_tensor(name) for name in names if name.startswith("state_dict/")}
    assert metadata["format"] == "madvae.checkpoint" and metadata["format_version"] == "2"
    assert metadata["kind"] == "classifier" and metadata["arch"] == "magnet"
    assert json.loads(metadata["config"]) == {"epochs": 3} and json.loads(metadata["meta"]) == {"n_train": 10}
    assert weights.keys() == model.state_dict().keys()
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    assert "extra/centres" in names and torch.equal(load_checkpoint(path).extra["centres"], torch.ones(2, 3))


def test_a_checkpoint_of_the_old_format_still_loads_the_same(tmp_path):
    torch.manual_seed(0)
    path = save_checkpoint(tmp_path / "new.pt", kind="vae", arch="defense-vae", model=build("generator", "defense-vae"),
                           config={"loss": "vanilla"}, extra_tensors={"centres": torch.arange(3.0)})
    old = as_legacy(path, tmp_path / "old.pt")
    assert old.read_bytes()[:2] == b"PK"  # torch's zip
    new, legacy = load_checkpoint(path), load_checkpoint(old)
    assert (new.kind, new.arch, new.config) == (legacy.kind, legacy.arch, legacy.config)
    assert all(torch.equal(new.state_dict[k], legacy.state_dict[k]) for k in new.state_dict)
    assert torch.equal(legacy.extra["centres"], torch.arange(3.0))


def test_a_safetensors_file_without_madvae_metadata_is_refused(tmp_path):
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.pt"
    save_file({"w": torch.zeros(2)}, str(foreign), metadata={"format": "madvae.checkpoint"})
    with pytest.raises(MadvaeError, match="safetensors without .*kind"):
        load_checkpoint(foreign)
