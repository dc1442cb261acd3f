"""Timing, numerics comparison, FLOP counting and machine facts shared by the bench sections."""
from __future__ import annotations

import datetime as dt
import math
import os
import platform
import statistics
import time

import torch
from torch import nn

RTOL, ATOL = 1e-4, 1e-5  # "identical within float tolerance" for every numerics check


def sync(device: torch.device) -> None:
    """CUDA runs asynchronously: wait for queued kernels before reading the clock."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rate(work, count: int, device, repeats: int, warmup=None) -> float:
    """Median of ``count / seconds`` over ``repeats`` calls of ``work()``, after one call of ``warmup()``
    (first calls pay for allocator growth, kernel selection and lazy imports)."""
    if warmup is not None:
        warmup()
    rates = []
    for _ in range(max(1, repeats)):
        sync(device)
        started = time.perf_counter()
        work()
        sync(device)
        rates.append(count / (time.perf_counter() - started))
    return statistics.median(rates)


def compare(pairs) -> dict:
    """``pairs``: (ours, reference) tensors. 'ok' when every pair is allclose at RTOL/ATOL."""
    ok, worst = True, 0.0
    for ours, ref in pairs:
        ours, ref = torch.as_tensor(ours).detach().float().cpu(), torch.as_tensor(ref).detach().float().cpu()
        if ours.shape != ref.shape:
            return {"numerics": "DIFFER", "max_abs_diff": float("inf")}
        ok &= torch.allclose(ours, ref, rtol=RTOL, atol=ATOL)
        if ours.numel():
            worst = max(worst, (ours - ref).abs().max().item())
    return {"numerics": "ok" if ok else "DIFFER", "max_abs_diff": worst}


def check(pairs_for) -> dict:
    """Numerics verdict. ``pairs_for(channels_last)`` runs the reference with its models in the default layout
    (as timed) or in ours' channels-last layout and returns (ours, reference) pairs.

    'ok': equal within tolerance as timed. 'ok (layout)': equal once the reference uses ours' layout. The two
    layouts add up convolutions in different orders; that rounding can exceed the tolerance at a few elements,
    and iterations that step by the sign of a gradient (MI-FGSM, PGD) turn it into whole steps where a gradient
    is ~0. 'DIFFER': different even in the same layout."""
    as_timed = compare(pairs_for(False))
    if as_timed["numerics"] == "ok":
        return as_timed
    same_layout = compare(pairs_for(True))
    return {"numerics": "ok (layout)" if same_layout["numerics"] == "ok" else "DIFFER",
            "max_abs_diff": as_timed["max_abs_diff"], "max_abs_diff_same_layout": same_layout["max_abs_diff"]}


def figure(name: str, ours: float, reference: float | None, numerics: dict | None, *, n: int, batch_size: int,
           device, unit: str = "images/s", note: str = "", setting: dict | None = None) -> dict:
    """One section's figure. ``reference`` None: a rate bench/estimate.py needs that has no original loop to
    compare with (no ratio). ``setting``: the attack settings the rate was measured at, for the estimate's scaling."""
    return {"name": name, "ours_images_per_s": ours, "reference_images_per_s": reference,
            "ratio": None if reference is None else ours / reference, "numerics": "n/a", "max_abs_diff": None,
            **(numerics or {}), "n": n, "batch_size": batch_size, "device": str(device),
            "threads": torch.get_num_threads(), "unit": unit, "note": note, "setting": setting or {}}


def matmul_gflops(device, size: int = 2048, repeats: int = 10) -> float:
    """Best-case float32 FLOP/s of this machine: the fastest of ``repeats`` warmed size x size matmuls at torch's
    current thread count. The fastest, not the median: on a shared machine the median follows the neighbours'
    load, while the fastest run is the closest to what the cores can do, so the fraction of it is not flattered."""
    a = torch.rand(size, size, device=device)
    b = torch.rand(size, size, device=device)
    for _ in range(2):
        a @ b  # warm-up: thread pool start, page faults of the result
    best = 0.0
    for _ in range(max(1, repeats)):
        best = max(best, rate(lambda: a @ b, 1, device, 1))
    return 2 * size ** 3 * best / 1e9


def forward_flops_per_image(model: nn.Module, shape=(1, 1, 28, 28)) -> int:
    """2 x the multiply-adds of every conv, transposed conv and linear layer in one forward pass of one image
    (BatchNorm, activations and the sampling step are left out: they are a small fraction)."""
    macs = 0

    def count(module, inputs, output):
        nonlocal macs
        if isinstance(module, nn.ConvTranspose2d):  # every input element meets out/groups x kh x kw weights
            macs += inputs[0].numel() * module.out_channels // module.groups * math.prod(module.kernel_size)
        elif isinstance(module, nn.Conv2d):  # every output element sums in/groups x kh x kw products
            macs += output.numel() * module.in_channels // module.groups * math.prod(module.kernel_size)
        elif isinstance(module, nn.Linear):
            macs += output.numel() * module.in_features

    hooks = [m.register_forward_hook(count) for m in model.modules()
             if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(shape))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return 2 * macs


def machine_info(device, gflops: float) -> dict:
    info = {"cpu_count": os.cpu_count(), "threads": torch.get_num_threads(), "torch_version": torch.__version__,
            "load_average": os.getloadavg()[0],  # a shared machine's neighbours slow every figure
            "python": platform.python_version(), "platform": platform.platform(), "device": str(device),
            "matmul_gflops": gflops, "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
