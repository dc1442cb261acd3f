"""madvae's benchmark suite, one command: `.venv/bin/python bench/run.py [--quick] [--only NAMES] [--memory]`.

For every section it prints the throughput of madvae's own code path and of a reference loop written the way
the original code ran the same work (bench/reference.py), their ratio (ours / reference) and whether both
computed the same result; then the VAE's FLOP estimate against this machine's matmul FLOP/s. It writes
bench/results.json and bench/results.md (--out). Figures only: nothing here asserts a timing.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `python bench/run.py` puts bench/, not the repository, on the path

from bench import estimate, memory, report  # noqa: E402
from bench.common import forward_flops_per_image, machine_info, matmul_gflops  # noqa: E402
from bench.context import DEFAULT, QUICK, Context  # noqa: E402
from bench.sections import GROUPS, SECTIONS  # noqa: E402
from madvae.models import DefenseVAE  # noqa: E402
from madvae.util import resolve_device  # noqa: E402


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run (figures too noisy to compare)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--only", metavar="NAME[,NAME]",
                        help=f"sections ({', '.join(SECTIONS)}, memory) or groups ({', '.join(GROUPS)})")
    parser.add_argument("--batch-size", type=int, metavar="N",
                        help="images per batch of the attack, VAE, evaluation and Overpowered sections (default 512, "
                             "--quick 64): a config's batch sizes, for bench/estimate.py")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json",
                        help="results JSON; the Markdown summary goes beside it (.md)")
    group = parser.add_argument_group("memory (opt-in: building 540,000 pairs takes long)")
    group.add_argument("--memory", action="store_true", help="also measure peak RSS of training, 54k vs 540k pairs")
    group.add_argument("--memory-full", action="store_true",
                       help="measure `madvae train` over one full epoch (slow) instead of streaming")
    group.add_argument("--memory-train-seconds", type=float, default=0.0,
                       help="run `madvae train` itself, stopped by SIGTERM after this many seconds")
    group.add_argument("--memory-scale", type=float, default=1.0, help="scale both set sizes (e.g. 0.01)")
    group.add_argument("--memory-batches", type=int, default=8, help="training steps in the streaming child")
    group.add_argument("--memory-dir", type=Path, help="keep the built sets here and reuse them")
    args = parser.parse_args(argv)
    names = []
    for item in (args.only or "all").split(","):
        item = item.strip()
        if item not in SECTIONS and item not in GROUPS and item != "memory":
            parser.error(f"unknown section {item!r}")
        names += GROUPS.get(item, [item])
    if args.batch_size is not None and args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    if not 0 < args.memory_scale <= 1 or args.memory_batches < 0:
        parser.error("need 0 < --memory-scale <= 1 and --memory-batches >= 0")
    args.memory = args.memory or args.memory_full or bool(args.memory_train_seconds) or "memory" in names
    args.sections = [name for name in dict.fromkeys(names) if name != "memory"]
    return args


def flop_summary(figures: list[dict], gflops: float) -> dict:
    """FLOPs of one DefenseVAE training step per image, and the fraction of matmul FLOP/s each variant reaches
    (added to its figure too)."""
    forward = forward_flops_per_image(DefenseVAE())
    fractions = {}
    for fig in figures:
        if fig["name"].startswith("vae-"):
            fig["gflops_achieved"] = fig["ours_images_per_s"] * 3 * forward / 1e9
            fig["fraction_of_matmul"] = fractions[fig["name"][4:]] = fig["gflops_achieved"] / gflops
    return {"forward_mflops_per_image": forward / 1e6, "train_mflops_per_image": 3 * forward / 1e6,
            "matmul_gflops": gflops, "fractions": fractions}


def main(argv=None) -> int:
    args = parse(argv)
    started = time.perf_counter()
    device = resolve_device(args.device)
    sizes = QUICK if args.quick else DEFAULT
    if args.batch_size:
        sizes = replace(sizes, batch=args.batch_size)
    gflops = matmul_gflops(device, repeats=3 if args.quick else 10)
    machine = machine_info(device, gflops)
    print(f"madvae bench: {machine['cpu_count']} CPUs, {machine['threads']} threads, torch "
          f"{machine['torch_version']}, {device}, matmul {gflops:.1f} GFLOP/s", flush=True)
    figures, errors = [], []
    with tempfile.TemporaryDirectory(prefix="madvae-bench-") as folder:
        context = Context(Path(folder), device, sizes)
        for name in args.sections:
            section_started = time.perf_counter()
            try:
                fig = SECTIONS[name](context)
            except Exception as exc:  # one broken section should not cost the figures of the others
                traceback.print_exc()
                errors.append({"section": name, "error": f"{type(exc).__name__}: {exc}"})
                continue
            fig["seconds"] = round(time.perf_counter() - section_started, 1)
            figures.append(fig)
            print(report.line(fig), flush=True)
    results = {"machine": machine, "quick": args.quick, "sizes": asdict(sizes), "figures": figures,
               "flops": flop_summary(figures, gflops), "paper_grid": estimate.paper_grid_hours(figures),
               "memory": None, "errors": errors}
    if args.memory:
        print("memory: peak RSS of training, small against large training set", flush=True)
        try:
            results["memory"] = memory.run(scale=args.memory_scale, full=args.memory_full,
                                           batches=args.memory_batches, batch_size=sizes.batch,
                                           device=str(device), folder=args.memory_dir,
                                           train_seconds=args.memory_train_seconds)
        except Exception as exc:
            traceback.print_exc()
            errors.append({"section": "memory", "error": f"{type(exc).__name__}: {exc}"})
    results["seconds"] = round(time.perf_counter() - started, 1)
    machine["load_average_end"] = os.getloadavg()[0]
    md_path = report.write(results, args.out)
    print()
    print(report.markdown(results), end="")
    print(f"\nwrote {args.out} and {md_path} ({results['seconds']:.0f} s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
