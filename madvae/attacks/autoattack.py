"""AutoAttack and the Square attack through the defense, from torchattacks -- the only module of madvae that imports
torchattacks.

Why torchattacks 3.5.1: it ports the four attacks of Croce and Hein's (2020) standard AutoAttack (APGD-CE, APGD-T,
FAB-T, Square) and the EOT option of APGD that their `rand` version uses, in PyTorch, from one package on PyPI (the
authors' own `autoattack` is not on PyPI; the adversarial-robustness-toolbox has no FAB). torchattacks' own
AutoAttack class is not used: it runs APGD with its default 10 steps where the standard version runs 100, and it
fixes Square at 5,000 queries. Here the components are built with the standard version's settings by default
(ATTACKS["autoattack"] in madvae.attacks), with CPU-sized quick cuts, and run as the standard version runs them:
each on the images the previous ones left correctly classified.

Each takes madvae.attacks' one signature, ``fn(target, x, y, **params) -> x_adv``. Against ``target.samples == 0``
(the posterior-mean defense) autoattack runs the standard version; against a stochastic defense (samples K >= 1)
the `rand` version: APGD-CE and APGD-DLR, each step's gradient averaged over ``eot_iter`` draws.
torchattacks seeds torch's generator from its ``seed`` argument; it gets the seed the evaluation set
(torch.initial_seed()), so a result is a function of ``madvae attack --seed``.
"""
from __future__ import annotations

import torch
import torchattacks

from madvae.defense import frozen

TORCHATTACKS_VERSION = torchattacks.__version__


def _seed() -> int:
    return torch.initial_seed() % 2**31


def _in_ball(candidate, x, eps) -> torch.Tensor:
    """``candidate`` within the L-inf eps ball around x and the image range, whatever the attack returned."""
    return torch.min(torch.max(candidate, (x - eps).clamp(min=0.0)), (x + eps).clamp(max=1.0))


@torch.no_grad()
def _correct(target, x, y) -> torch.Tensor:
    return target(x).argmax(1) == y


def components(target, *, eps, apgd_steps, target_classes, fab_steps, square_queries, eot_iter):
    """The attacks of the version that fits ``target``, in the order they run: (name, torchattacks attack)."""
    seed = _seed()
    common = {"norm": "Linf", "eps": eps, "seed": seed, "n_restarts": 1}
    if target.vae is not None and target.samples > 0:  # rand version: a stochastic defense
        return [("apgd-ce", torchattacks.APGD(target, steps=apgd_steps, loss="ce", eot_iter=eot_iter, **common)),
                ("apgd-dlr", torchattacks.APGD(target, steps=apgd_steps, loss="dlr", eot_iter=eot_iter, **common))]
    apgd_t = torchattacks.APGDT(target, steps=apgd_steps, n_classes=10, **common)
    fab_t = torchattacks.FAB(target, steps=fab_steps, multi_targeted=True, n_classes=10, **common)
    for attack in (apgd_t, fab_t):  # the standard version's 9 target classes, fewer in the quick cut
        attack.n_target_classes = target_classes
    return [("apgd-ce", torchattacks.APGD(target, steps=apgd_steps, loss="ce", **common)), ("apgd-t", apgd_t),
            ("fab-t", fab_t),
            ("square", torchattacks.Square(target, n_queries=square_queries, p_init=0.8, loss="margin", **common))]


def autoattack(target, x, y, *, eps, apgd_steps, target_classes, fab_steps, square_queries, eot_iter,
               on_step=None, record=None):
    """Each component attacks the images still classified correctly; an image keeps the first adversarial example
    found (else itself). ``record``, when given, receives per component the number of images it fooled."""
    x_adv, robust = x.detach().clone(), _correct(target, x, y)
    fooled_by = {}
    with frozen(target):
        for name, attack in components(target, eps=eps, apgd_steps=apgd_steps, target_classes=target_classes,
                                       fab_steps=fab_steps, square_queries=square_queries, eot_iter=eot_iter):
            index = robust.nonzero(as_tuple=True)[0]
            fooled_by[name] = 0
            if len(index):
                candidate = _in_ball(attack(x[index], y[index]).detach(), x[index], eps)
                fooled = ~_correct(target, candidate, y[index])
                x_adv[index[fooled]] = candidate[fooled]
                robust[index[fooled]] = False
                fooled_by[name] = int(fooled.sum())
            if on_step is not None:
                on_step()
    if record is not None:
        record.update(fooled_by)
    return x_adv


def square(target, x, y, *, eps, n_queries, p_init, on_step=None):
    """Andriushchenko et al.'s (2020) Square attack, L-inf, score-based: it reads only the defended model's
    outputs, so a defense that masks gradients does not stop it."""
    with frozen(target):
        attack = torchattacks.Square(target, norm="Linf", eps=eps, n_queries=n_queries, n_restarts=1, p_init=p_init,
                                     loss="margin", resc_schedule=True, seed=_seed())
        x_adv = attack(x, y).detach()
    if on_step is not None:
        on_step()
    return _in_ball(x_adv, x, eps)
