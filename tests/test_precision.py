"""Mixed precision (`madvae train --precision bf16`) and the device transfer helper.

The stated tolerance: from the same seed and data, a bf16 run's mean loss terms stay within 5% (relative) of the
fp32 run's in every epoch, and the two purifiers' reconstructions of the training inputs differ by at most 0.02
on average (pixels in [0, 1]). (Seen on 128 pairs, 3 epochs: 2.6% on the reconstruction term.) On a CPU without bfloat16 units bf16 is slower; it is meant for GPUs."""
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from madvae.checkpoint import load_checkpoint
from madvae.cli import app
from madvae.errors import MadvaeError
from madvae.store import open_set
from madvae.train import load_vae, train_vae
from madvae.util import to_device
from tests.test_train import make_set

RELATIVE_LOSS_TOLERANCE = 0.05
MEAN_PIXEL_TOLERANCE = 0.02


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    return make_set(tmp_path_factory.mktemp("precision") / "pairs.h5", n=64)


def _train(pairs, out, precision):
    return train_vae([pairs], out, loss="vanilla", epochs=2, batch_size=32, device="cpu", progress=False,
                     precision=precision)


def test_bf16_training_stays_within_the_stated_tolerance_of_fp32(pairs, tmp_path):
    fp32 = _train(pairs, tmp_path / "fp32.pt", "fp32")
    bf16 = _train(pairs, tmp_path / "bf16.pt", "bf16")
    assert load_checkpoint(tmp_path / "bf16.pt").config["precision"] == "bf16"
    for ours, reference in zip(bf16["history"], fp32["history"]):
        for term in ("reconstruction", "kl", "total"):
            assert ours[term] == pytest.approx(reference[term], rel=RELATIVE_LOSS_TOLERANCE), (ours["epoch"], term)
    # not the same computation: bf16 must have changed something, or the option does nothing
    assert bf16["history"][-1]["total"] != fp32["history"][-1]["total"]
    reader = open_set(pairs)
    x_adv = torch.from_numpy(reader.read(0, len(reader), ["x_adv"])["x_adv"])
    reader.close()
    with torch.no_grad():
        difference = (load_vae(tmp_path / "bf16.pt")(x_adv)[0] - load_vae(tmp_path / "fp32.pt")(x_adv)[0]).abs()
    assert difference.mean().item() <= MEAN_PIXEL_TOLERANCE


def test_unknown_precision_is_refused(pairs, tmp_path):
    with pytest.raises(MadvaeError, match="unknown precision 'fp8'"):
        train_vae([pairs], tmp_path / "x.pt", loss="vanilla", epochs=1, precision="fp8", progress=False)
    result = CliRunner().invoke(app, ["train", str(pairs), "--out", str(tmp_path / "y.pt"), "--precision", "fp8"])
    assert result.exit_code != 0 and not (tmp_path / "y.pt").exists()


def test_to_device_on_cpu_shares_the_array_memory():
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    tensor = to_device(array, "cpu")  # a device name works as well as a torch.device
    array[0, 0] = 99.0  # the tensor is a view: no copy is made on the CPU path
    assert tensor[0, 0].item() == 99.0 and tensor.dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_to_device_on_cuda_copies_through_pinned_memory():
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    tensor = to_device(array, torch.device("cuda"))
    torch.cuda.synchronize()
    assert tensor.is_cuda and torch.equal(tensor.cpu(), torch.from_numpy(array))
