"""bench/results.json and bench/results.md, both written atomically, and the lines printed while running."""
from __future__ import annotations

import json
import os
from pathlib import Path

COLUMNS = (("name", "name"), ("ours_images_per_s", "ours /s"), ("reference_images_per_s", "reference /s"),
           ("ratio", "ratio"), ("numerics", "numerics"), ("n", "n"), ("batch_size", "batch"),
           ("device", "device"), ("threads", "threads"))


def write_atomically(path: Path, text: str) -> None:
    """A reader (or a killed run) never leaves a half-written file under the final name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write(results: dict, json_path: Path) -> Path:
    """results.json at ``json_path`` and the Markdown summary beside it (same stem, .md)."""
    json_path = Path(json_path)
    write_atomically(json_path, json.dumps(results, indent=2) + "\n")
    md_path = json_path.with_suffix(".md")
    write_atomically(md_path, markdown(results))
    return md_path


def _cell(key: str, value) -> str:
    if value is None:  # a rate with no reference loop (bench/estimate.py's own)
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}" if key == "ratio" else f"{value:,.1f}"
    return str(value)


def line(fig: dict) -> str:
    """One figure as it is measured: the figures, the ratio and the numerics verdict side by side."""
    if fig["reference_images_per_s"] is None:
        return f"{fig['name']:<28} ours {fig['ours_images_per_s']:>10,.2f}  {fig['unit']} (no reference)"
    return (f"{fig['name']:<28} ours {fig['ours_images_per_s']:>10,.1f}  reference "
            f"{fig['reference_images_per_s']:>10,.1f} {fig['unit']:<19} ratio {fig['ratio']:6.2f}  "
            f"numerics {fig['numerics']}")


def flop_line(flops: dict) -> str:
    text = (f"DefenseVAE FLOP estimate (conv/linear multiply-adds x2): {flops['forward_mflops_per_image']:.1f} "
            f"MFLOP/image forward, {flops['train_mflops_per_image']:.1f} MFLOP/image per training step (x3 for "
            f"forward + backward); measured matmul (2048x2048 float32): {flops['matmul_gflops']:.1f} GFLOP/s")
    if flops["fractions"]:
        reached = ", ".join(f"{name} {fraction:.1%}" for name, fraction in flops["fractions"].items())
        text += f"; the VAE training step reaches {reached} of it (VAE FLOPs only)"
    return text + "."


def memory_line(memory: dict) -> str:
    if memory.get("skipped"):
        return f"Peak RSS: skipped ({memory['skipped']})."
    return (f"Peak RSS ({memory['mode']}): {memory['pairs_small']:,} pairs {memory['peak_rss_mb_small']:,.0f} MB, "
            f"{memory['pairs_large']:,} pairs {memory['peak_rss_mb_large']:,.0f} MB: x{memory['growth']:.2f} for "
            f"x{memory['pairs_large'] / memory['pairs_small']:.0f} pairs, "
            f"{'flat (within 1.5x)' if memory['flat'] else 'NOT flat (over 1.5x)'}.")


def markdown(results: dict) -> str:
    machine = results["machine"]
    out = ["# madvae benchmarks", "",
           f"{machine['timestamp']}, {machine['cpu_count']} CPUs, {machine['threads']} torch threads, torch "
           f"{machine['torch_version']}, device {machine['device']}"
           f"{', load average %.1f' % machine['load_average'] if 'load_average' in machine else ''}"
           f"{' (' + machine['gpu'] + ')' if machine.get('gpu') else ''}"
           f"{', --quick (smoke run: small sizes, noisy figures)' if results['quick'] else ''}.", "",
           "ours = madvae's code path, reference = the original code's way (per-sample DataLoader, default layout, "
           "no inference mode); ratio = ours / reference; numerics: ok = both give the same result (rtol 1e-4, "
           "atol 1e-5), ok (layout) = the same once the reference uses ours' channels-last layout (the layouts "
           "round differently), DIFFER = not the same. Rates are images/s except where the name says per "
           "iteration / per step; a figure without a reference (-) is a rate only bench/estimate.py needs.", "",
           "| " + " | ".join(title for _, title in COLUMNS) + " |",
           "|" + "|".join("---" if key in ("name", "numerics", "device") else "---:" for key, _ in COLUMNS) + "|"]
    out += ["| " + " | ".join(_cell(key, fig[key]) for key, _ in COLUMNS) + " |" for fig in results["figures"]]
    out += ["", flop_line(results["flops"])]
    if "paper_grid" in results:
        from bench.estimate import estimate_line

        out += ["", estimate_line(results["paper_grid"], machine["device"])]
    if results.get("memory"):
        out += ["", memory_line(results["memory"])]
    for error in results.get("errors", []):
        out += ["", f"Section {error['section']} failed: {error['error']}"]
    return "\n".join(out) + "\n"
