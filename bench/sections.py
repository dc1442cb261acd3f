"""The timed sections. Each runs madvae's own code path ("ours") and the reference loop of bench/reference.py on
the same mnist-5k images, checks that both compute the same thing where the issue asks for it, and returns one
figure (bench/common.figure)."""
from __future__ import annotations

import statistics
import subprocess
import sys

import torch

from bench import reference
from bench.attack_sections import adaptive, attack, evaluation, overpowered, umap_embedding
from bench.common import check, figure, rate
from bench.context import Context
from madvae.attacks import ADAPTIVE_ATTACKS, STORED_ATTACKS
from madvae.defense import load_classifier, load_defense, predict_labels
from madvae.generate import make_clean_set
from madvae.losses import LossWeights, init_centres
from madvae.registry import SUBSTITUTES, USES_CENTRES, USES_CLASSIFIER, VARIANTS
from madvae.models import DefenseVAE, MagNetClassifier, build, place
from madvae.train import train_step, train_vae
from madvae.train_classifier import ARCH_DEFAULTS, SUBSTITUTE_DEFAULTS, train_classifier

# train_vae's defaults: Adam lr, the two centre sets' SGD learning rates
VAE_LR, CENTRE_LRS = 1e-3, {"proximity_centres": 0.5, "distance_centres": 1e-4}


def classifier_training(ctx: Context, arch: str = "magnet") -> dict:
    """madvae.train_classifier (HDF5 streaming, channels-last) against a plain Adam loop, at the batch size
    madvae trains the architecture with (the workflow's: 128 for MagNet, 256 for substitutes A-E); no numerics
    check: the two sides shuffle differently."""
    s, dev = ctx.sizes, ctx.device
    n = min(s.classifier, 4000)
    batch = ARCH_DEFAULTS.get(arch, SUBSTITUTE_DEFAULTS)["batch_size"]
    # epoch 1 is the warm-up; train_classifier times each epoch itself, excluding checkpoint writing
    info = train_classifier(ctx.train_set, ctx.folder / f"bench-{arch}.pt", arch=arch, epochs=s.repeats + 1,
                            batch_size=batch, limit=n, device=str(dev), progress=False)
    ours = statistics.median(epoch["images_per_s"] for epoch in info["history"][1:])
    x, y = ctx.arrays(ctx.train_set, n, ["x_clean", "y"])
    torch.manual_seed(0)
    model = build("classifier", arch).to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def epoch():
        reference.train_classifier(model, optimizer, reference.loader((x, y), batch, shuffle=True), dev)

    ref = rate(epoch, len(y), dev, s.repeats, warmup=epoch)
    name = "classifier-train" if arch == "magnet" else f"substitute-{arch}-train"
    return figure(name, ours, ref, {}, n=len(y), batch_size=min(batch, len(y)), device=dev)


def _vae_init():
    """Seeded initial VAE weights and centre sets, copied into both sides."""
    torch.manual_seed(0)
    return DefenseVAE().state_dict(), {name: init_centres(DefenseVAE().latent_dim) for name in CENTRE_LRS}


def _vae_state(variant, init, centre_init, dev, channels_last: bool, sgd: bool = False):
    """Model, optimiser (Adam as train_vae, or SGD lr 1 for the numerics check), centres and their SGDs."""
    model = DefenseVAE()
    model.load_state_dict(init)
    model = (place(model, dev) if channels_last else model.to(dev)).train()
    centres = {name: centre_init[name].clone().to(dev).requires_grad_(True)
               for name in CENTRE_LRS if variant in USES_CENTRES}
    centre_optims = {name: torch.optim.SGD([centre], lr=CENTRE_LRS[name]) for name, centre in centres.items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0) if sgd else torch.optim.Adam(model.parameters(), lr=VAE_LR)
    return model, optimizer, centres, centre_optims


def _vae_numerics(ctx: Context, variant: str) -> dict:
    """One step of each side from the same initial weights and centres on the same batch, with the same
    reparameterisation noise: the loss terms, every updated weight and buffer, and the centres must agree.

    The step uses plain SGD (lr 1) in place of Adam, so the updated weights are the initial ones minus the
    clipped gradient and comparing them compares the gradients. Adam's first update, lr g / (|g| + eps), is
    +-lr for any gradient far from 0 and turns the rounding differences of near-zero gradients (any change in
    the order of a float sum makes some) into differences of up to 2 lr that say nothing about the math."""
    dev = ctx.device
    x_clean, x_adv, y = ctx.tensors(ctx.pairs, ctx.sizes.numerics, ["x_clean", "x_adv", "y"])
    x_in = x_clean if variant == "identity" else x_adv
    init, centre_init = _vae_init()
    uses_classifier = variant in USES_CLASSIFIER

    def one_step(step, classifier, channels_last):
        model, optimizer, centres, centre_optims = _vae_state(variant, init, centre_init, dev, channels_last,
                                                              sgd=True)
        torch.manual_seed(1)
        terms = step(model, optimizer, x_in, x_clean, y, loss=variant, weights=LossWeights(),
                     classifier=classifier, centres=centres, centre_optims=centre_optims, clip=1.0)
        return terms, [*model.state_dict().values(), *centres.values()]

    ours_terms, ours_tensors = one_step(
        train_step, load_classifier(ctx.classifier, dev, frozen=True)[0] if uses_classifier else None, True)

    def pairs_for(channels_last):
        classifier = ctx.plain(ctx.classifier, MagNetClassifier(), channels_last) if uses_classifier else None
        ref_terms, ref_tensors = one_step(reference.vae_step, classifier, channels_last)
        if set(ref_terms) != set(ours_terms):
            return [(torch.zeros(1), torch.zeros(2))]  # not the same terms: a shape mismatch reads as DIFFER
        names = list(ours_terms)
        return [(torch.tensor([ours_terms[k] for k in names]), torch.tensor([ref_terms[k] for k in names])),
                *zip(ours_tensors, ref_tensors)]

    return check(pairs_for)


def vae_training(ctx: Context, variant: str) -> dict:
    """madvae.train.train_vae (what `madvae train` runs) against the reference loop, one loss variant. The two
    take turns (ours, reference, ours, ...: ``vae_repeats`` rounds, each a warm-up epoch and a timed one) so that
    a drift in the machine's speed falls on both; each side's figure is its median round."""
    s, dev = ctx.sizes, ctx.device
    numerics = _vae_numerics(ctx, variant)
    uses_classifier = variant in USES_CLASSIFIER
    x_clean, x_adv, y = ctx.arrays(ctx.pairs, s.vae, ["x_clean", "x_adv", "y"])
    init, centre_init = _vae_init()
    model, optimizer, centres, centre_optims = _vae_state(variant, init, centre_init, dev, channels_last=False)
    classifier = ctx.plain(ctx.classifier, MagNetClassifier()) if uses_classifier else None

    def epoch():
        reference.train_vae(model, optimizer, reference.loader((x_clean, x_adv, y), s.batch, shuffle=True), dev,
                            identity=variant == "identity", loss=variant, weights=LossWeights(),
                            classifier=classifier, centres=centres, centre_optims=centre_optims)

    ours, ref = [], []
    for round_index in range(max(1, s.vae_repeats)):
        info = train_vae([ctx.pairs], ctx.folder / f"vae-{variant}-{round_index}.pt", loss=variant,
                         classifier_path=ctx.classifier if uses_classifier else None, epochs=2,
                         batch_size=s.batch, limit=s.vae, device=str(dev), progress=False, seed=round_index)
        ours.append(info["history"][-1]["images_per_s"])  # epoch 1: warm-up
        ref.append(rate(epoch, len(y), dev, 1, warmup=epoch))
    return figure(f"vae-{variant}", statistics.median(ours), statistics.median(ref), numerics, n=len(y),
                  batch_size=s.batch, device=dev, note=f"median of {len(ours)} alternating rounds")


def startup(ctx: Context) -> dict:
    """A workflow job's fixed cost: a fresh `python -m madvae gen` of one FGSM image (the interpreter, torch,
    advertorch and h5py imports, the checkpoint load, a set written), per job."""
    s, dev = ctx.sizes, ctx.device
    outputs = iter(range(1000))

    def one_job():
        out = ctx.folder / f"startup-{next(outputs)}.h5"
        subprocess.run([sys.executable, "-m", "madvae", "gen", "--input", str(ctx.train_set), "--classifier",
                        str(ctx.classifier), "--attack", "fgsm", "--preset", "train-0", "--limit", "1",
                        "--device", dev.type, "--no-progress", "--out", str(out)], check=True, capture_output=True)

    return figure("startup (per job)", rate(one_job, 1, dev, s.repeats), None, None, n=1, batch_size=1,
                  device=dev, unit="jobs/s", note="python -m madvae gen --limit 1, in a fresh process")


def thread_scaling(ctx: Context) -> dict:
    """The evaluation's forward pass (VAE + MagNet, inference mode) with torch's threads and with one: how much a
    job gains from its threads, for bench/estimate.py's --cores schedule (1-thread jobs run side by side)."""
    s, dev = ctx.sizes, ctx.device
    classifier, _ = load_classifier(ctx.classifier, dev)
    _, purifier, _ = load_defense(ctx.vae, dev)
    (x,) = ctx.arrays(ctx.test_set, s.attack, ["x_clean"])
    batches = [{"x_clean": x[start:start + s.batch]} for start in range(0, len(x), s.batch)]

    def ours():
        predict_labels(classifier, batches, dev, "x_clean", purifier)

    threads = torch.get_num_threads()
    many = rate(ours, len(x), dev, s.repeats, warmup=ours)
    torch.set_num_threads(1)
    try:
        one = rate(ours, len(x), dev, s.repeats, warmup=ours)
    finally:
        torch.set_num_threads(threads)
    return figure(f"threads ({threads} vs 1)", many, None, None, n=len(x), batch_size=min(s.batch, len(x)),
                  device=dev, setting={"one_thread_per_s": one, "speedup": many / one},
                  note="eval (vae + classifier) forward; the speedup of all threads over one")


def clean_set(ctx: Context) -> dict:
    """`madvae gen --attack none` of mnist-5k's train split (load, split, write the HDF5 set), per image."""
    s = ctx.sizes
    outputs = iter(range(1000))
    count = {}

    def one_set():
        count["n"] = make_clean_set(ctx.folder / f"clean-{next(outputs)}.h5", dataset="mnist-5k", split="train")["n"]

    one_set()  # also the warm-up: the first load reads the dataset from disk
    return figure("clean-set", rate(one_set, count["n"], torch.device("cpu"), s.repeats), None, None, n=count["n"],
                  batch_size=4096, device="cpu", note="mnist-5k train")



SECTIONS = {"classifier": classifier_training,
            **{f"vae-{v}": (lambda ctx, v=v: vae_training(ctx, v)) for v in VARIANTS},
            **{name: (lambda ctx, name=name: attack(ctx, name)) for name in STORED_ATTACKS},
            "eval": evaluation, "overpowered": overpowered, "umap": umap_embedding,
            **{f"substitute-{a}": (lambda ctx, a=a: classifier_training(ctx, a)) for a in SUBSTITUTES},
            **{f"adaptive-{name}": (lambda ctx, name=name: adaptive(ctx, name)) for name in ADAPTIVE_ATTACKS},
            "startup": startup, "clean-set": clean_set, "threads": thread_scaling}
GROUPS = {"vae": [f"vae-{v}" for v in VARIANTS], "attacks": list(STORED_ATTACKS),
          "substitutes": [f"substitute-{a}" for a in SUBSTITUTES], "adaptive": [f"adaptive-{a}" for a in ADAPTIVE_ATTACKS],
          "all": list(SECTIONS)}
