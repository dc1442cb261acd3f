"""Every set draws its own random stream (issue 13.1): `madvae gen` without --seed derives the seed from the set's
dataset, split and file name, so R-FGSM's noise (and PGD's start) never repeats across the sets of one grid."""
from __future__ import annotations

import inspect
import itertools
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from madvae import cli
from madvae.data import load_source
from madvae.store import open_set, write_set
from madvae.util import seed_everything

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
SAME = ["--param", "eps=0.3", "--param", "alpha=0.05", "--param", "noise=gaussian"]  # every preset alike
# the workflow's R-FGSM sets: (folder = split of the input, file name, preset)
GRID = [("train", "rfgsm_train-0", "train-0"), ("train", "rfgsm_train-1", "train-1"),
        ("train", "rfgsm_train-2", "train-2"), ("val", "rfgsm", "val"), ("test", "rfgsm", "test")]


@pytest.fixture(scope="module")
def clean_sets(tmp_path_factory):
    """The same 16 digits as a train, a val and a test set: only the noise can tell their attacks apart."""
    folder = tmp_path_factory.mktemp("clean")
    x, y = load_source("mnist-5k", "test")
    return {split: write_set(folder / f"mnist-5k_{split}.h5", x[:16], y[:16], dataset="mnist-5k", split=split)
            for split in ("train", "val", "test")}


def gen(out, clean, classifier, preset, *extra):
    out.parent.mkdir(parents=True, exist_ok=True)
    result = runner.invoke(cli.app, ["gen", "--attack", "rfgsm", "--input", str(clean), "--classifier",
                                     str(classifier), "--preset", preset, "--batch-size", "8", "--device", "cpu",
                                     "--no-progress", "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    with open_set(out) as reader:
        return reader.read(0, len(reader))["x_adv"], reader.attrs["seed"], reader.provenance.get("seed_source")


@pytest.mark.parametrize("extra", [SAME, []], ids=["equal-params", "presets"])
def test_every_rfgsm_set_of_the_grid_draws_its_own_noise(tmp_path, clean_sets, random_classifier, extra):
    made = {f"{split}/{name}": gen(tmp_path / split / f"{name}.h5", clean_sets[split], random_classifier, preset,
                                   *extra)
            for split, name, preset in GRID}
    seeds = {key: seed for key, (_, seed, _) in made.items()}
    assert len(set(seeds.values())) == len(seeds), seeds
    assert all(0 <= seed < 2**63 for seed in seeds.values())
    assert made["train/rfgsm_train-0"][2] == "derived from mnist-5k/train/rfgsm_train-0"
    if extra:  # identical images and parameters: a difference can only come from the noise
        for (a, (x_a, _, _)), (b, (x_b, _, _)) in itertools.combinations(made.items(), 2):
            assert not np.array_equal(x_a, x_b), f"{a} and {b} drew the same noise"


def test_same_name_and_seed_reproduce_the_set(tmp_path, clean_sets, random_classifier):
    clean = clean_sets["train"]
    given = [gen(tmp_path / run / "rfgsm_train-0.h5", clean, random_classifier, "train-0", "--seed", "7")
             for run in ("a", "b")]
    assert np.array_equal(given[0][0], given[1][0]) and given[0][1] == 7 and given[0][2] == "given"
    derived = [gen(tmp_path / run / "rfgsm_train-0.h5", clean, random_classifier, "train-0") for run in ("c", "d")]
    assert np.array_equal(derived[0][0], derived[1][0]) and derived[0][1] == derived[1][1]
    # --seed 7 under another name: the same arrays (the name only matters when the seed is derived)
    other = gen(tmp_path / "e" / "other.h5", clean, random_classifier, "train-0", "--seed", "7")
    assert np.array_equal(other[0], given[0][0])


def test_a_63_bit_seed_is_stored_and_seeds_everything(tmp_path):
    seed = 2**63 - 1
    path = write_set(tmp_path / "s.h5", np.zeros((2, 1, 28, 28), np.float32), np.zeros(2, np.int64),
                     dataset="mnist-5k", split="train", seed=seed)
    with open_set(path) as reader:
        assert reader.attrs["seed"] == seed
    seed_everything(seed)
    first = torch.rand(3)
    seed_everything(seed)
    assert torch.equal(first, torch.rand(3))


def _effective_seed(argv: list[str]) -> int:
    """The seed a `madvae gen` command line runs with: --seed, else the CLI's default, else the derived one."""
    options = {}
    words = iter(argv[2:])
    for word in words:
        if word.startswith("--") and word not in ("--no-progress", "--quick", "--download"):
            options[word] = next(words)
    if "--seed" in options:
        return int(options["--seed"])
    default = inspect.signature(cli.gen).parameters["seed"].default
    if default is not None:
        return default
    from madvae.generate import derive_seed

    if "--input" in options:  # the workflow's clean sets: sets/<dataset>_<split>.h5
        dataset, split = Path(options["--input"]).stem.rsplit("_", 1)
    else:
        dataset, split = options.get("--dataset", "mnist-5k"), options.get("--split", "test")
    return derive_seed(dataset, split, Path(options["--out"]).stem)


def test_no_two_gen_jobs_of_the_workflow_share_a_seed(tmp_path):
    # config/sweep.yaml: the default grid plus validation sets, so train, val and test sets are all made
    done = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-p", "--configfile", "config/sweep.yaml",
                           "--config", f"results_dir={tmp_path / 'results'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    commands = [shlex.split(found.group(1)) for line in (done.stdout + done.stderr).splitlines()
                if (found := re.search(r"(madvae gen [^>]*)", line))]
    assert {Path(c[c.index("--out") + 1]).parent.name for c in commands} >= {"train", "val", "test", "sets"}
    seeds = {}
    for command in commands:
        seeds.setdefault(_effective_seed(command), []).append(command[command.index("--out") + 1])
    shared = {seed: outs for seed, outs in seeds.items() if len(outs) > 1}
    assert not shared, f"gen jobs sharing a seed: {shared}"
