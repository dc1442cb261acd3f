import pytest
import torch

from madvae.errors import MadvaeError
from madvae.models import DefenseVAE, build
from madvae.registry import CLASSIFIERS


@pytest.mark.parametrize("arch", sorted(CLASSIFIERS))
def test_classifiers_map_images_to_ten_logits(arch):
    model = build("classifier", arch).eval()
    assert model(torch.rand(5, 1, 28, 28)).shape == (5, 10)


def test_defense_vae_shapes_and_modes():
    torch.manual_seed(0)
    vae = DefenseVAE()
    x = torch.rand(4, 1, 28, 28)
    recon, z, mean, logvar = vae(x)
    assert recon.shape == x.shape and z.shape == mean.shape == logvar.shape == (4, 128)
    assert 0.0 <= recon.min() and recon.max() <= 1.0
    assert not torch.equal(z, mean)  # training mode samples
    vae.eval()
    _, z, mean, _ = vae(x)
    assert torch.equal(z, mean)  # eval mode decodes the posterior mean


def test_negative_logvar_head_output_still_gives_positive_sigma():
    """The original code fed a raw head as the standard deviation; a log-variance head cannot go negative."""
    vae = DefenseVAE()
    with torch.no_grad():
        vae.logvar_head.bias.fill_(-3.0)
        vae.logvar_head.weight.zero_()
    mean, logvar = vae.encode(torch.rand(2, 1, 28, 28))
    assert (logvar < 0).all()
    draws = torch.stack([vae(torch.rand(2, 1, 28, 28), sample=True)[1] for _ in range(3)])
    assert torch.isfinite(draws).all()


def test_init_follows_the_original_code():
    torch.manual_seed(0)
    vae = DefenseVAE()
    conv = vae.encoder[3].weight
    assert abs(conv.std().item() - 0.02) < 0.003
    bn = vae.encoder[1]
    assert abs(bn.weight.mean().item() - 1.0) < 0.01 and bn.bias.abs().max() == 0


def test_unknown_architecture():
    with pytest.raises(MadvaeError, match="unknown classifier architecture 'F'"):
        build("classifier", "F")
