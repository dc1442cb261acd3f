"""The Overpowered Attack's LAM scaling (issue 13, point 4): "per-row" (ours) against "original", measured.

    python bench/overpowered_scaling.py --models DIR --set CLEAN.h5 [--vae identity vanilla] [--limit 50]

runs madvae.evaluate.overpowered with each lam_scaling on the same first --limit clean digits (quick preset by
default, batch 5: the original's images per batch; --restarts 20 gives its 100 rows per batch) and prints, per
purifier and setting, the accuracy, original accuracy, budget fraction, mean L2 and the fraction of (image,
norm) pairs that met the attack's goal.
--out DIR keeps the result JSONs. CPU only; --threads 1 is much faster on a loaded machine.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's madvae, not bench/

from madvae.attacks.overpowered import LAM_SCALINGS  # noqa: E402
from madvae.evaluate.overpowered import evaluate_overpowered  # noqa: E402

COLUMNS = ("accuracy", "original_accuracy", "budget_fraction", "mean_l2")


def measure(args, out_dir: Path) -> list[dict]:
    rows = []
    for name in args.vae:
        for scaling in LAM_SCALINGS:
            started = time.process_time()
            result = evaluate_overpowered(args.set, args.models / "classifier.pt", out_dir / f"{name}_{scaling}.json",
                                          vae_path=args.models / f"vae_{name}.pt", preset=args.preset,
                                          norms=args.norms, restarts=args.restarts, limit=args.limit,
                                          batch_size=args.batch_size, device="cpu",
                                          seed=args.seed, progress=False, lam_scaling=scaling)
            met = [summary["goal_met"] / result["n"] for summary in result["steps_run"].values()]
            rows.append({"vae": name, "lam_scaling": scaling, **{key: result["metrics"][key] for key in COLUMNS},
                         "goal_met": sum(met) / len(met), "cpu_s": time.process_time() - started})
            print(format_row(rows[-1]), flush=True)
    return rows


def format_row(row: dict) -> str:
    figures = " | ".join(f"{row[key]:.4f}" for key in COLUMNS)
    return f"| {row['vae']} | {row['lam_scaling']} | {figures} | {row['goal_met']:.2f} | {row['cpu_s']:.0f} |"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, required=True, help="folder with classifier.pt and vae_NAME.pt")
    parser.add_argument("--set", type=Path, required=True, help="clean test set (.h5)")
    parser.add_argument("--vae", nargs="+", default=["identity", "vanilla"], help="purifiers: vae_NAME.pt")
    parser.add_argument("--limit", type=int, default=50, help="the first N digits")
    parser.add_argument("--batch-size", type=int, default=5)
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--restarts", type=int, default=None, help="default: the preset's")
    parser.add_argument("--norms", type=float, nargs="+", default=None, help="default: the preset's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=None, help="keep the result JSONs here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"Overpowered, preset {args.preset} (restarts {args.restarts or 'preset'}, norms {args.norms or 'preset'}), "
          f"first {args.limit} digits of {args.set.name}, batch {args.batch_size}, seed {args.seed}")
    print("| purifier | lam_scaling | accuracy | original accuracy | budget fraction | mean L2 | goal met | CPU s |")
    print("|---|---|---|---|---|---|---|---|")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        measure(args, args.out)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            measure(args, Path(tmp))


if __name__ == "__main__":
    main()
