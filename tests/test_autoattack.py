"""AutoAttack and Square through the defense (madvae/attacks/autoattack.py): our settings reach torchattacks'
attacks, the version follows the defense, a worst case is never above one of its parts, and the modes run from
the command line."""
import json

import pytest
import torch
import torchattacks
from typer.testing import CliRunner

from madvae.attacks import ATTACKS, resolve_params, run_attack
from madvae.attacks.autoattack import components, square
from madvae.cli import app
from madvae.defense import Target
from madvae.models import DefenseVAE

SETTINGS = {"eps": 0.1, "apgd_steps": 7, "target_classes": 2, "fab_steps": 5, "square_queries": 30, "eot_iter": 3}


@pytest.fixture()
def linear():
    """A tiny classifier whose decisions move with its input (an untrained MagNet predicts one class)."""
    torch.manual_seed(3)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10)).eval()


@pytest.fixture()
def batch(linear):
    torch.manual_seed(4)
    x = torch.rand(24, 1, 28, 28)
    with torch.no_grad():
        return x, linear(x).argmax(1)  # every image starts correctly classified


def test_the_standard_version_carries_our_settings_into_torchattacks():
    torch.manual_seed(11)
    target = Target(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10)), DefenseVAE())
    found = dict(components(target, **SETTINGS))
    assert list(found) == ["apgd-ce", "apgd-t", "fab-t", "square"]  # Croce and Hein's order
    apgd, apgd_t, fab_t, sq = found.values()
    assert isinstance(apgd, torchattacks.APGD) and apgd.loss == "ce" and apgd.steps == 7 and apgd.eot_iter == 1
    assert isinstance(apgd_t, torchattacks.APGDT) and apgd_t.steps == 7 and apgd_t.n_target_classes == 2
    assert isinstance(fab_t, torchattacks.FAB) and fab_t.multi_targeted and fab_t.steps == 5
    assert fab_t.n_target_classes == 2
    assert isinstance(sq, torchattacks.Square) and sq.n_queries == 30 and sq.p_init == 0.8 and sq.loss == "margin"
    for attack in found.values():
        assert attack.eps == 0.1 and attack.norm == "Linf" and attack.n_restarts == 1 and attack.seed == 11


def test_a_stochastic_defense_gets_the_rand_version_with_eot():
    target = Target(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10)), DefenseVAE(), samples=2)
    found = dict(components(target, **SETTINGS))
    assert list(found) == ["apgd-ce", "apgd-dlr"]
    assert [a.loss for a in found.values()] == ["ce", "dlr"] and all(a.eot_iter == 3 for a in found.values())


def test_the_registry_holds_the_standard_settings_and_a_quick_cut():
    full, quick = resolve_params("autoattack"), resolve_params("autoattack", quick=True)
    assert (full["apgd_steps"], full["target_classes"], full["fab_steps"], full["square_queries"],
            full["eot_iter"]) == (100, 9, 100, 5000, 20)
    assert all(quick[key] < full[key] for key in ("apgd_steps", "target_classes", "fab_steps", "square_queries"))
    assert resolve_params("square")["n_queries"] == 5000 and ATTACKS["square"].decoding == "mean"
    assert ATTACKS["autoattack"].decoding == "either"


def test_our_square_is_torchattacks_square(linear, batch):
    x, y = batch
    torch.manual_seed(5)
    ours = square(Target(linear), x, y, eps=0.05, n_queries=40, p_init=0.8)
    reference = torchattacks.Square(linear, norm="Linf", eps=0.05, n_queries=40, n_restarts=1, p_init=0.8,
                                    loss="margin", resc_schedule=True, seed=5)(x, y)
    assert torch.equal(ours, reference)
    assert (ours - x).abs().max() <= 0.05 + 1e-6


def test_autoattack_is_never_above_pgd_e2e_on_the_same_images(linear, batch):
    """The standard version on the images PGD-e2e attacks, at an eps where neither fools everything: its robust
    accuracy is at most PGD's, and every image it fools is fooled within the eps ball."""
    x, y = batch
    target = Target(linear)
    eps = 0.02
    torch.manual_seed(0)
    pgd = run_attack("pgd-e2e", target, x, y, resolve_params("pgd-e2e", "test", {"eps": eps}))
    torch.manual_seed(0)
    record = {}
    auto = run_attack("autoattack", target, x, y, resolve_params("autoattack", "test", {"eps": eps, **{
        k: v for k, v in SETTINGS.items() if k != "eps"}}), record=record)
    with torch.no_grad():
        pgd_acc, auto_acc = ((target(a).argmax(1) == y).float().mean().item() for a in (pgd, auto))
    assert 0 < pgd_acc < 1, pgd_acc  # a setting where the comparison means something
    assert auto_acc <= pgd_acc
    assert sum(record.values()) == round((1 - auto_acc) * len(y))  # each fooled image counted once
    assert (auto - x).abs().max() <= eps + 1e-6 and auto.min() >= 0 and auto.max() <= 1


def test_the_modes_run_from_the_command_line_and_refuse_the_wrong_defense(tmp_path, clean_test_set,
                                                                          random_classifier):
    vae = tmp_path / "vae.pt"
    from madvae.checkpoint import save_checkpoint

    torch.manual_seed(0)
    save_checkpoint(vae, kind="vae", arch="defense-vae", model=DefenseVAE(), config={"loss": "vanilla"})
    base = ["attack", "--set", str(clean_test_set), "--classifier", str(random_classifier), "--vae", str(vae),
            "--limit", "6", "--device", "cpu", "--no-progress", "--quick"]
    smallest = {"autoattack": ["apgd_steps=1", "target_classes=1", "fab_steps=1", "square_queries=5", "eot_iter=1"],
                "square": ["n_queries=5"]}
    for mode, extra in (("autoattack", []), ("autoattack", ["--samples", "2"]), ("square", [])):
        out = tmp_path / f"{mode}{len(extra)}.json"
        params = [item for value in smallest[mode] for item in ("--param", value)]
        result = CliRunner().invoke(app, [*base, "--mode", mode, *extra, *params, "--out", str(out)])
        assert result.exit_code == 0, result.output
        saved = json.loads(out.read_text())
        assert saved["kind"] == "adaptive" and saved["attack"] == mode and saved["n"] == 6 and saved["quick"]
        assert saved["params"]["eps"] == 0.3 and all(saved["params"][v.split("=")[0]] == int(v.split("=")[1])
                                                     for v in smallest[mode])
        if mode == "autoattack":
            assert list(saved["fooled_by"]) == (["apgd-ce", "apgd-dlr"] if extra else
                                                ["apgd-ce", "apgd-t", "fab-t", "square"])
    refused = CliRunner().invoke(app, [*base, "--mode", "square", "--samples", "2", "--out", str(tmp_path / "r.json")])
    assert refused.exit_code == 2 and "square attacks the posterior-mean defense" in refused.output
    assert not (tmp_path / "r.json").exists()
