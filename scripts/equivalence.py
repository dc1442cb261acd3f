"""Does a code change leave the workflow's outputs alone? Runs the tiny end-to-end workflow (.test/config/config.yaml)
at two git revisions and compares what each wrote.

    python scripts/equivalence.py BEFORE [AFTER]        # revisions; AFTER defaults to the working tree
    python scripts/equivalence.py --before-results DIR [AFTER]  # reuse an earlier run (its results folder)

Compared, file by file (the same relative paths must exist on both sides):
  .h5 sets      every dataset byte for byte, every attribute equal (only `created` and paths may differ)
  .pt           checkpoints: every tensor exactly equal, config and meta equal apart from times and paths
  .json         result JSONs: equal apart from times and paths
  .csv          tables and training logs: equal cells, apart from time columns
  .md           tables: equal text once the two results folders' names are made the same
Logs, benchmarks, figures (PNG metadata carries times) and Snakemake's own files are not compared.
Each side runs from its own checkout (a git worktree, or a copy of the working tree) with PYTHONPATH pointing at
it, so the same virtual environment serves both. Exit 0 when every file matches, 1 otherwise (each difference listed).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TREE = re.compile(r"""/[^\s'"]*/equivalence-[^/\s'"]+/tree-[A-Za-z0-9_]+""")
COMPARED = (".h5", ".pt", ".json", ".csv", ".md")
SKIPPED_PARTS = ("logs", "benchmarks", ".snakemake")
# keys whose values are clocks or speeds, or SHA-256s of files that hold a creation time: they differ between any two
# runs (the files themselves are compared here instead)
TIME_KEY = re.compile(r"(^|_)(created|time|times|seconds|elapsed|wall|per_s|images_per_s|s|sha256)$|_s$")


def run_workflow(revision: str | None, results: Path, work: Path) -> Path:
    """The tiny workflow at ``revision`` (None: a copy of the working tree as it is now, so that editing it
    meanwhile changes nothing) into ``results``; returns the checkout it ran in."""
    tree = work / f"tree-{re.sub(r'[^A-Za-z0-9]', '_', revision or 'working')}"
    if revision is None:
        listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                check=True, capture_output=True).stdout.decode().split("\0")
        for name in filter(None, listed):
            if (ROOT / name).is_file():
                (tree / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, tree / name)
    else:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--force", str(tree), revision],
                       check=True, capture_output=True)
    environment = {**os.environ, "PYTHONPATH": str(tree)}
    tiny = next(name for name in (".test/config/config.yaml", "tests/data/tiny.yaml") if (tree / name).exists())
    command = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", tiny,
               "--config", f"results_dir={results}", "--quiet"]
    print(f"running the tiny workflow at {revision or 'the working tree'} into {results}", flush=True)
    done = subprocess.run(command, cwd=tree, env=environment, capture_output=True, text=True)
    if revision is None:
        shutil.rmtree(tree, ignore_errors=True)
    else:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)
    if done.returncode != 0:
        sys.exit(f"the workflow failed at {revision or 'the working tree'}:\n{done.stderr[-4000:]}")
    return tree


def compared_files(results: Path) -> set[str]:
    return {str(path.relative_to(results)) for path in results.rglob("*")
            if path.is_file() and path.suffix in COMPARED
            and not any(part in SKIPPED_PARTS for part in path.relative_to(results).parts)}


def normalise(value, folders: list[str]):
    """Times dropped, the results folders' and checkouts' names replaced, recursively."""
    if isinstance(value, dict):
        return {key: normalise(item, folders) for key, item in value.items() if not TIME_KEY.search(key)}
    if isinstance(value, list):
        return [normalise(item, folders) for item in value]
    if isinstance(value, str):
        for folder in sorted(folders, key=len, reverse=True):
            value = value.replace(folder, "<folder>")
        return TREE.sub("<folder>", value)  # the checkout of a reused earlier run
    return value


def differences(a, b, where: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        found = [f"{where}.{key}: only on one side" for key in sorted(set(a) ^ set(b))]
        return found + [d for key in sorted(set(a) & set(b)) for d in differences(a[key], b[key], f"{where}.{key}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for index, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{where}[{index}]")]
    return [] if a == b else [f"{where or '.'}: {str(a)[:80]!r} != {str(b)[:80]!r}"]


def csv_rows(path: Path, folders) -> list:
    """A CSV's rows as dicts without its time columns (a training log's images_per_s and seconds)."""
    with open(path, newline="") as handle:
        return [normalise(row, folders) for row in csv.DictReader(handle)]


def maybe_json(value):
    """A JSON object or list stored as a string (sets' params/provenance, checkpoints' config/meta), decoded."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def compare_sets(a: Path, b: Path, folders) -> list[str]:
    import h5py
    import numpy as np

    found = []
    with h5py.File(a, "r") as left, h5py.File(b, "r") as right:
        attributes = [dict(left.attrs), dict(right.attrs)]
        for side in attributes:
            for key, value in side.items():
                side[key] = value.tolist() if isinstance(value, np.ndarray) else value
                side[key] = maybe_json(side[key])
        found += differences(*(normalise(side, folders) for side in attributes))
        names = [sorted(left), sorted(right)]
        if names[0] != names[1]:
            return found + [f"datasets {names[0]} != {names[1]}"]
        for name in names[0]:
            x, y = left[name], right[name]
            if x.dtype != y.dtype or x.shape != y.shape or x[()].tobytes() != y[()].tobytes():
                found.append(f"dataset {name} differs")
            plain = [{key: value.tolist() if isinstance(value, np.ndarray) else value for key, value in d.attrs.items()}
                     for d in (x, y)]
            found += [f"{name}.{d}" for d in differences(*plain)]
    return found


def compare_checkpoints(a: Path, b: Path, folders) -> list[str]:
    import torch

    from madvae.checkpoint import read_payload

    # either format (safetensors, or torch's zip before it); the format version itself is not compared
    left, right = ({**read_payload(path), "format_version": None} for path in (a, b))
    found = []

    def walk(x, y, where):
        if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor):
            if x.dtype != y.dtype or x.shape != y.shape or not torch.equal(x, y):
                found.append(f"tensor {where} differs")
        elif isinstance(x, dict) and isinstance(y, dict):
            if set(x) != set(y):
                found.append(f"{where}: keys {sorted(set(x) ^ set(y))} on one side only")
            for key in set(x) & set(y):
                if not TIME_KEY.search(str(key)):
                    walk(x[key], y[key], f"{where}.{key}")
        elif isinstance(x, str) and isinstance(y, str):
            found.extend(differences(normalise(maybe_json(x), folders), normalise(maybe_json(y), folders), where))
        else:
            found.extend(differences(normalise(x, folders), normalise(y, folders), where))

    walk(left, right, "")
    return found


def compare(before: Path, after: Path, folders) -> list[str]:
    left, right = compared_files(before), compared_files(after)
    problems = [f"{name}: only in {side}" for names, side in ((left - right, before), (right - left, after))
                for name in sorted(names)]
    for name in sorted(left & right):
        a, b = before / name, after / name
        if a.suffix == ".h5":
            found = compare_sets(a, b, folders)
        elif a.suffix == ".pt":
            found = compare_checkpoints(a, b, folders)
        elif a.suffix == ".csv":
            found = differences(*(csv_rows(p, folders) for p in (a, b)))
        elif a.suffix == ".json":
            found = differences(*(normalise(json.loads(p.read_text()), folders) for p in (a, b)))
        else:
            found = differences(*(normalise(p.read_text(), folders) for p in (a, b)))
        problems += [f"{name}: {d}" for d in found]
    print(f"compared {len(left & right)} files ({', '.join(COMPARED)})")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", nargs="?", help="git revision of the reference run")
    parser.add_argument("after", nargs="?", help="git revision to compare (default: the working tree)")
    parser.add_argument("--before-results", type=Path, help="results folder of an earlier run of BEFORE")
    parser.add_argument("--after-results", type=Path, help="compare with this results folder instead of running AFTER")
    parser.add_argument("--keep", type=Path, help="keep the results folders under this folder")
    args = parser.parse_args(argv)
    if args.before_results is not None:  # then the one revision given, if any, is AFTER
        if args.after is not None:
            parser.error("with --before-results give at most one revision (AFTER)")
        args.after, args.before = args.before, None
    elif args.before is None:
        parser.error("give a BEFORE revision or --before-results")
    work = Path(tempfile.mkdtemp(prefix="equivalence-", dir=args.keep))
    before = args.before_results.resolve() if args.before_results else work / "before"
    after = args.after_results.resolve() if args.after_results else work / "after"
    folders = [str(before), str(after), str(ROOT)]
    if args.before_results is None:
        folders.append(str(run_workflow(args.before, before, work)))
    if args.after_results is None:
        folders.append(str(run_workflow(args.after, after, work)))
    problems = compare(before, after, folders)
    for problem in problems:
        print(problem)
    print("identical" if not problems else f"{len(problems)} differences")
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"results kept in {work}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
