"""The timed attack and evaluation sections (bench/sections.py lists every section): madvae's own code path
("ours") against bench/reference.py's loop on the same mnist-5k images, and the adaptive attacks' rates."""
from __future__ import annotations

import time
import warnings

import numpy as np
import torch

from bench import reference
from bench.common import check, compare, figure, rate
from bench.context import ADAPTIVE_EOT, ADAPTIVE_STEPS, OVERPOWERED, Context
from madvae.attacks import resolve_params, run_attack
from madvae.attacks.overpowered import THRESHOLD, noise_seeds
from madvae.defense import Target, load_classifier, load_defense, predict_labels
from madvae.models import DefenseVAE, MagNetClassifier
from madvae.store import open_set


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
    ours_model = Target(load_classifier(ctx.classifier, dev, frozen=True)[0])  # as madvae gen: input gradients only
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
    madvae.attacks.overpowered.overpowered_attack against a plain loop with one classifier call per draw."""
    s, dev = ctx.sizes, ctx.device
    classifier, _ = load_classifier(ctx.classifier, dev)
    vae, _, _ = load_defense(ctx.vae, dev)
    ref_classifier = ctx.plain(ctx.classifier, MagNetClassifier())
    ref_vae = ctx.plain(ctx.vae, DefenseVAE())
    settings = {**OVERPOWERED, "threshold": THRESHOLD}

    def ours_run(x, y, steps):
        # every image runs every step, so each pass does the same work
        record = {}
        run_attack("overpowered", Target(classifier, vae), x, y, {"restarts": 1, "steps": steps, **settings},
                   record=record, image_seeds=noise_seeds(0, range(len(x)), settings["norm"]))
        return record

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
    params = resolve_params(name, "test", {"nb_iter": ADAPTIVE_STEPS, "restarts": 1,
                                           **({"eot_samples": ADAPTIVE_EOT["eot_samples"]} if eot else {})})
    target = Target(classifier, vae, ADAPTIVE_EOT["samples"] if eot else 0)
    x, y = ctx.tensors(ctx.test_set, s.adaptive, ["x_clean", "y"])
    batch = min(250, len(y))

    def ours():
        for start in range(0, len(y), batch):
            run_attack(name, target, x[start:start + batch], y[start:start + batch], params)

    warmup = lambda: run_attack(name, target, x[:8], y[:8], params)  # noqa: E731
    setting = {key: params[key] for key in ("nb_iter", "restarts")} | (ADAPTIVE_EOT if eot else {})
    return figure(f"adaptive-{name} (per step)", rate(ours, len(y) * ADAPTIVE_STEPS, dev, 1, warmup=warmup), None,
                  None, n=len(y), batch_size=batch, device=dev, unit="image-steps/s", setting=setting,
                  note="an untrained VAE and the one-epoch MagNet; no reference (the original had none)")
