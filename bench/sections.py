"""The timed sections. Each runs madvae's own code path ("ours") and the reference loop of bench/reference.py on
the same mnist-5k images, checks that both compute the same thing where the issue asks for it, and returns one
figure (bench/common.figure)."""
from __future__ import annotations

import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from bench import reference
from bench.common import check, compare, figure, rate
from madvae.attacks import (ADAPTIVE_ATTACKS, ATTACKS, resolve_adaptive_params, resolve_params, run_adaptive,
                            run_attack)
from madvae.attacks.overpowered import THRESHOLD, noise_seeds, overpowered_attack
from madvae.checkpoint import load_checkpoint, save_checkpoint
from madvae.defense import load_classifier, load_defense, predict_labels
from madvae.generate import make_adversarial_set, make_clean_set
from madvae.losses import LossWeights, init_centres
from madvae.registry import SUBSTITUTES, USES_CENTRES, USES_CLASSIFIER, VARIANTS
from madvae.models import DefenseVAE, MagNetClassifier, build, place
from madvae.store import open_set
from madvae.train import train_step, train_vae
from madvae.train_classifier import ARCH_DEFAULTS, SUBSTITUTE_DEFAULTS, train_classifier

# train_vae's defaults: Adam lr, the two centre sets' SGD learning rates
VAE_LR, CENTRE_LRS = 1e-3, {"proximity_centres": 0.5, "distance_centres": 1e-4}
OVERPOWERED = {"norm": 2.5, "noise_samples": 4}  # one norm of the paper's four, the quick preset's draws
# eot as the embedded default runs it against a defense: the quick cut's 2 draws of the 4-sample defense
ADAPTIVE_EOT = {"eot_samples": 2, "samples": 4}
ADAPTIVE_STEPS = 2


@dataclass(frozen=True)
class Sizes:
    """Images per timed pass of each section. DEFAULT took 9 minutes on 2 idle CPU cores (23 beside other work at
    load average 3-4, every figure 2-6x slower); QUICK is a smoke run (a few minutes at most), too small for
    figures worth comparing."""
    batch: int  # images per batch, both sides
    repeats: int  # timed repeats of the cheap sections (median); the slow attacks are timed once
    vae_repeats: int  # rounds of VAE training, ours and the reference in turn (a warm-up + a timed epoch)
    classifier: int  # images per timed classifier-training epoch
    vae: int  # images per timed VAE-training epoch
    attack: int  # images per pass of FGSM, R-FGSM and evaluation (mnist-5k test has 1,000)
    iterative: int  # images per pass of CW, MI-FGSM and PGD (a full batch: on a CPU 500 run 1.5x slower than 128)
    cw_iterations: int
    pixel: int  # single pixel: advertorch runs one forward pass per image and candidate pixel
    overpowered: int
    overpowered_steps: int
    umap: int
    adaptive: int  # images per pass of each adaptive attack (madvae attack's batch there is 250)
    numerics: int  # images in each numerics check (it doubles as the warm-up); single pixel uses pixel // 4
    classifier_fit: int  # images the attacked MagNet is trained on (one epoch)


DEFAULT = Sizes(batch=512, repeats=3, vae_repeats=3, classifier=1024, vae=1024, attack=512, iterative=512,
                cw_iterations=10, pixel=16, overpowered=64, overpowered_steps=3, umap=3000, adaptive=250, numerics=32,
                classifier_fit=4000)
QUICK = Sizes(batch=64, repeats=1, vae_repeats=1, classifier=128, vae=64, attack=64, iterative=8,
              cw_iterations=3, pixel=4, overpowered=8, overpowered_steps=2, umap=200, adaptive=8, numerics=8,
              classifier_fit=512)


class Context:
    """Inputs shared by the sections, each made on first use in ``folder``: the mnist-5k train and test sets,
    a MagNet trained for one epoch, an FGSM training set and an untrained (seeded) VAE checkpoint."""

    def __init__(self, folder: Path, device: torch.device, sizes: Sizes):
        self.folder, self.device, self.sizes = Path(folder), device, sizes

    @cached_property
    def train_set(self) -> Path:
        make_clean_set(self.folder / "train.h5", dataset="mnist-5k", split="train")
        return self.folder / "train.h5"

    @cached_property
    def test_set(self) -> Path:
        make_clean_set(self.folder / "test.h5", dataset="mnist-5k", split="test")
        return self.folder / "test.h5"

    @cached_property
    def classifier(self) -> Path:
        path = self.folder / "magnet.pt"
        train_classifier(self.train_set, path, epochs=1, limit=self.sizes.classifier_fit, device=str(self.device),
                         progress=False)
        return path

    @cached_property
    def pairs(self) -> Path:
        path = self.folder / "fgsm.h5"
        make_adversarial_set(path, input_path=self.train_set, classifier_path=self.classifier, attack="fgsm",
                             preset="train-0", device=str(self.device), batch_size=self.sizes.batch,
                             limit=max(self.sizes.vae, self.sizes.numerics), progress=False)
        return path

    @cached_property
    def vae(self) -> Path:
        torch.manual_seed(0)
        path = self.folder / "vae.pt"
        save_checkpoint(path, kind="vae", arch="defense-vae", model=DefenseVAE(), config={"note": "untrained"})
        return path

    def plain(self, path, model: torch.nn.Module, channels_last: bool = False) -> torch.nn.Module:
        """The reference's copy of a checkpoint: same weights, nothing frozen, eval mode, default layout (or ours'
        for the second numerics check, bench.common.check)."""
        model.load_state_dict(load_checkpoint(path).state_dict)
        return (place(model, self.device) if channels_last else model.to(self.device)).eval()

    def arrays(self, path, n: int, names) -> list[np.ndarray]:
        with open_set(path) as reader:
            batch = reader.read(0, min(n, len(reader)), names)
        return [batch[name] for name in names]

    def tensors(self, path, n: int, names) -> list[torch.Tensor]:
        return [torch.from_numpy(a).to(self.device) for a in self.arrays(path, n, names)]


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


def _attack_setup(ctx: Context, name: str):
    """(params, images per pass, units of work per image): CW is timed per iteration of one binary step."""
    s = ctx.sizes
    if name == "cw":
        overrides = [f"max_iterations={s.cw_iterations}", "binary_search_steps=1", "abort_early=false"]
        return resolve_params("cw", "test", overrides), s.iterative, s.cw_iterations
    n = {"fgsm": s.attack, "rfgsm": s.attack, "single-pixel": s.pixel}.get(name, s.iterative)
    return resolve_params(name, "test"), n, 1


def attack(ctx: Context, name: str) -> dict:
    """run_attack over the set's batches (madvae gen's loop, without writing) against advertorch's classes
    called on per-sample DataLoader batches."""
    s, dev = ctx.sizes, ctx.device
    params, n, per_image = _attack_setup(ctx, name)
    ours_model = load_classifier(ctx.classifier, dev, frozen=True)[0]  # as madvae gen: gradients for the input only
    ref_model = ctx.plain(ctx.classifier, MagNetClassifier())
    # numerics: the same images and the same seed (R-FGSM's noise, PGD's random start, the pixel order)
    x, y = ctx.tensors(ctx.test_set, max(2, s.pixel // 4) if name == "single-pixel" else s.numerics,
                       ["x_clean", "y"])
    torch.manual_seed(0)
    ours_adv = run_attack(name, ours_model, x, y, params).clamp_(0.0, 1.0)

    def pairs_for(channels_last):
        model = ctx.plain(ctx.classifier, MagNetClassifier(), channels_last) if channels_last else ref_model
        torch.manual_seed(0)
        return [(ours_adv, reference.attack(name, model, x, y, params))]

    numerics = check(pairs_for)

    x_all, y_all = ctx.arrays(ctx.test_set, n, ["x_clean", "y"])

    def ours():
        with open_set(ctx.test_set) as reader:
            for batch in reader.batches(s.batch, limit=n, names=["x_clean", "y"]):
                xb, yb = torch.from_numpy(batch["x_clean"]).to(dev), torch.from_numpy(batch["y"]).to(dev)
                run_attack(name, ours_model, xb, yb, params).clamp_(0.0, 1.0).cpu().numpy()

    def ref():
        reference.attack_all(name, ref_model, reference.loader((x_all, y_all), s.batch), params, dev)

    repeats = s.repeats if name in ("fgsm", "rfgsm") else 1  # the others take many seconds per pass
    work = len(y_all) * per_image
    label = f"{name} (per iteration)" if name == "cw" else name
    return figure(label, rate(ours, work, dev, repeats), rate(ref, work, dev, repeats), numerics,
                  n=len(y_all), batch_size=min(s.batch, len(y_all)), device=dev,
                  unit="image-iterations/s" if name == "cw" else "images/s", setting=params)


def evaluation(ctx: Context) -> dict:
    """madvae.evaluate.predict_labels through the VAE purifier (inference mode) against a plain forward."""
    s, dev = ctx.sizes, ctx.device
    classifier, _ = load_classifier(ctx.classifier, dev)
    _, purifier, _ = load_defense(ctx.vae, dev)
    ref_classifier = ctx.plain(ctx.classifier, MagNetClassifier())
    ref_vae = ctx.plain(ctx.vae, DefenseVAE())
    (x,) = ctx.arrays(ctx.test_set, s.attack, ["x_clean"])
    out = {}

    def ours():
        with open_set(ctx.test_set) as reader:
            out["ours"] = predict_labels(classifier, reader.batches(s.batch, limit=len(x), names=["x_clean"]), dev,
                                         "x_clean", purifier)

    def ref():
        out["ref"] = reference.predict_purified(ref_vae, ref_classifier, reference.loader((x,), s.batch), dev)

    ours_rate, ref_rate = rate(ours, len(x), dev, s.repeats, warmup=ours), rate(ref, len(x), dev, s.repeats,
                                                                                 warmup=ref)
    batch = torch.from_numpy(x[:s.numerics]).to(dev)
    with torch.inference_mode():
        ours_images = purifier(batch).clone()

    def pairs_for(channels_last):
        vae = ctx.plain(ctx.vae, DefenseVAE(), channels_last)
        labels = out["ref"]
        if channels_last:  # the second check repeats the whole labelling in ours' layout
            classifier_cl = ctx.plain(ctx.classifier, MagNetClassifier(), True)
            labels = reference.predict_purified(vae, classifier_cl, reference.loader((x,), s.batch), dev)
        return [(ours_images, vae(batch)[0]), (torch.from_numpy(out["ours"]), torch.from_numpy(labels))]

    numerics = check(pairs_for)
    return figure("eval (vae + classifier)", ours_rate, ref_rate, numerics, n=len(x),
                  batch_size=min(s.batch, len(x)), device=dev)


def overpowered(ctx: Context) -> dict:
    """One Overpowered step (decoder and classifier forward and backward over the noise draws), per image:
    madvae.attacks.overpowered_attack against a plain loop with one classifier call per draw."""
    s, dev = ctx.sizes, ctx.device
    classifier, _ = load_classifier(ctx.classifier, dev)
    vae, _, _ = load_defense(ctx.vae, dev)
    ref_classifier = ctx.plain(ctx.classifier, MagNetClassifier())
    ref_vae = ctx.plain(ctx.vae, DefenseVAE())
    settings = {**OVERPOWERED, "threshold": THRESHOLD}

    def ours_run(x, y, steps):
        # every image runs every step, so each pass does the same work
        return overpowered_attack(vae, classifier, x, y, restarts=1, steps=steps,
                                  image_seeds=noise_seeds(0, range(len(x)), settings["norm"]), **settings)

    def ref_run(x, y, steps, models=(ref_vae, ref_classifier)):
        generators = [torch.Generator(device=dev).manual_seed(seed)
                      for seed in noise_seeds(0, range(len(x)), settings["norm"])]
        return reference.overpowered(*models, x, y, steps=steps, generators=generators, **settings)

    x, y = ctx.tensors(ctx.test_set, s.numerics, ["x_clean", "y"])
    steps = max(2, s.overpowered_steps)
    ours_result = ours_run(x, y, steps)

    def pairs_for(channels_last):
        models = ((ctx.plain(ctx.vae, DefenseVAE(), True), ctx.plain(ctx.classifier, MagNetClassifier(), True))
                  if channels_last else (ref_vae, ref_classifier))
        ref_star, ref_margin = ref_run(x, y, steps, models)
        return [(ours_result["x_star"], ref_star), (ours_result["margin"], ref_margin)]

    numerics = check(pairs_for)

    x_all, y_all = ctx.arrays(ctx.test_set, s.overpowered, ["x_clean", "y"])

    def ours():
        with open_set(ctx.test_set) as reader:
            for batch in reader.batches(s.batch, limit=len(y_all), names=["x_clean", "y"]):
                ours_run(torch.from_numpy(batch["x_clean"]).to(dev), torch.from_numpy(batch["y"]).to(dev),
                         s.overpowered_steps)

    def ref():
        for xb, yb in reference.loader((x_all, y_all), s.batch):
            ref_run(xb.to(dev), yb.to(dev), s.overpowered_steps)

    work = len(y_all) * s.overpowered_steps
    return figure("overpowered (per step)", rate(ours, work, dev, 1), rate(ref, work, dev, 1),
                  numerics, n=len(y_all), batch_size=min(s.batch, len(y_all)), device=dev, unit="image-steps/s",
                  note=f"norm {OVERPOWERED['norm']}, {OVERPOWERED['noise_samples']} noise draws, 1 restart",
                  setting={**OVERPOWERED, "restarts": 1})


def umap_embedding(ctx: Context) -> dict:
    """madvae.embed's UMAP call against umap.UMAP as the original configured it, on the same flattened images.
    Always on the CPU (umap-learn has no GPU path)."""
    import umap

    from madvae.embed import umap_coordinates

    (x,) = ctx.arrays(ctx.train_set, ctx.sizes.umap, ["x_clean"])
    x = x.reshape(len(x), -1)
    started = time.perf_counter()
    umap_coordinates(x[:100], 42)  # numba compiles UMAP's kernels once per process (about 20 s): keep it out of the timing
    first_call = time.perf_counter() - started  # what each embed job pays once (bench/estimate.py)
    out = {}

    def ours():
        out["ours"] = umap_coordinates(x, 42)

    def ref():
        with warnings.catch_warnings():  # umap warns that random_state forces one thread
            warnings.simplefilter("ignore")
            out["ref"] = umap.UMAP(n_components=2, random_state=42).fit_transform(x)

    cpu = torch.device("cpu")
    ours_rate, ref_rate = rate(ours, len(x), cpu, 1), rate(ref, len(x), cpu, 1)
    numerics = compare([(torch.from_numpy(np.asarray(out["ours"], dtype=np.float64)),
                         torch.from_numpy(np.asarray(out["ref"], dtype=np.float64)))])  # no layout involved
    return figure(f"umap ({len(x)} points)", ours_rate, ref_rate, numerics, n=len(x), batch_size=len(x), device=cpu,
                  unit="points/s", setting={"first_call_seconds": round(first_call, 1)})


# --- rates only bench/estimate.py needs: madvae's own code path, no reference loop to compare with ---


def adaptive(ctx: Context, name: str) -> dict:
    """One gradient step of an adaptive attack through classifier(VAE(x)), per image, at madvae attack's batch
    (250); eot at ADAPTIVE_EOT's draws and defense samples. The original code had no adaptive attacks."""
    s, dev = ctx.sizes, ctx.device
    classifier, _ = load_classifier(ctx.classifier, dev)
    vae, _, _ = load_defense(ctx.vae, dev)
    eot = name == "eot"
    params = resolve_adaptive_params(name, {"nb_iter": ADAPTIVE_STEPS, "restarts": 1,
                                            **({"eot_samples": ADAPTIVE_EOT["eot_samples"]} if eot else {})})
    extra = {"samples": ADAPTIVE_EOT["samples"]} if eot else {}
    x, y = ctx.tensors(ctx.test_set, s.adaptive, ["x_clean", "y"])
    batch = min(250, len(y))

    def ours():
        for start in range(0, len(y), batch):
            run_adaptive(name, classifier, vae, x[start:start + batch], y[start:start + batch], params, **extra)

    warmup = lambda: run_adaptive(name, classifier, vae, x[:8], y[:8], params, **extra)  # noqa: E731
    setting = {key: params[key] for key in ("nb_iter", "restarts")} | (ADAPTIVE_EOT if eot else {})
    return figure(f"adaptive-{name} (per step)", rate(ours, len(y) * ADAPTIVE_STEPS, dev, 1, warmup=warmup), None,
                  None, n=len(y), batch_size=batch, device=dev, unit="image-steps/s", setting=setting,
                  note="an untrained VAE and the one-epoch MagNet; no reference (the original had none)")


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
            **{name: (lambda ctx, name=name: attack(ctx, name)) for name in ATTACKS},
            "eval": evaluation, "overpowered": overpowered, "umap": umap_embedding,
            **{f"substitute-{a}": (lambda ctx, a=a: classifier_training(ctx, a)) for a in SUBSTITUTES},
            **{f"adaptive-{name}": (lambda ctx, name=name: adaptive(ctx, name)) for name in ADAPTIVE_ATTACKS},
            "startup": startup, "clean-set": clean_set, "threads": thread_scaling}
GROUPS = {"vae": [f"vae-{v}" for v in VARIANTS], "attacks": list(ATTACKS),
          "substitutes": [f"substitute-{a}" for a in SUBSTITUTES], "adaptive": [f"adaptive-{a}" for a in ADAPTIVE_ATTACKS],
          "all": list(SECTIONS)}
