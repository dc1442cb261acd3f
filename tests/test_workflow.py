"""The Snakemake workflow: job counts per rule from config, the grid as data, config-schema rejections, and a
tiny end-to-end run with the local executor."""
from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "config" / "config.yaml"
PAPER = ROOT / "config" / "paper.yaml"
TINY = ROOT / "tests" / "data" / "tiny.yaml"


def snakemake(*args, results, timeout=120):
    """Run snakemake in the repository root with results redirected, so existing outputs never change counts."""
    command = [sys.executable, "-m", "snakemake", *map(str, args), "--config", f"results_dir={results}"]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def dry_run(tmp_path, configfile=None):
    """(job count per rule, output) of `snakemake -n -p` on a fresh results folder."""
    args = ["-n", "-p"] + (["--configfile", configfile] if configfile else [])
    done = snakemake(*args, results=tmp_path / "results")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    output = done.stdout + done.stderr
    table = output.split("Job stats:", 1)[1].split("total", 1)[0]
    return {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)\s*$", table, re.M)}, output


def load(path):
    return yaml.safe_load(Path(path).read_text())


def effective(overlay=None):
    """config.yaml with a --configfile on top, merged the way Snakemake does: mappings key by key, lists whole."""
    def merge(base, over):
        for key, value in over.items():
            base[key] = merge(base.get(key, {}), value) if isinstance(value, dict) else value
        return base

    config = load(DEFAULT)
    return merge(config, load(overlay)) if overlay else config


def expected_counts(config):
    variants = [v for v in config["variants"] if v.get("enabled", True)]
    tests, embed = config["test_attacks"], config["embed"]
    figures_per_attack = len(embed.get("variants") or variants) * len(embed.get("spaces", ["latent", "output"]))
    return {"clean_set": 2, "classifier": 1, "gen_train": len(config["train_attacks"]), "gen_test": len(tests),
            "train": len(variants), "attack_defended": len(variants) * len(tests), "attack_undefended": len(tests),
            "embed_clean": 1, "embed_attack": len(embed["attacks"]),
            "embed_defense": len(embed["attacks"]) * figures_per_attack, "tables": 1, "all": 1}


def without_zeros(counts):
    return {rule: n for rule, n in counts.items() if n}


def write_config(tmp_path, config, name="config.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_paper_grid_job_counts(tmp_path):
    counts, _ = dry_run(tmp_path, PAPER)
    assert counts == without_zeros(expected_counts(effective(PAPER)))
    literal = {"clean_set": 2, "classifier": 1, "gen_train": 9, "gen_test": 6, "train": 4, "attack_defended": 24,
               "attack_undefended": 6, "tables": 1}
    assert {rule: counts[rule] for rule in literal} == literal


@pytest.fixture(scope="module")
def default_dry_run(tmp_path_factory):
    return dry_run(tmp_path_factory.mktemp("default"))


def test_embedded_default_job_counts(default_dry_run):
    counts, output = default_dry_run
    assert counts == without_zeros(expected_counts(effective()))
    assert counts["gen_train"] == 7 and counts["attack_defended"] == 24 and counts["embed_defense"] == 24
    assert "--quick --limit 1000" in output  # the CPU-sized CW training set


def test_identity_switch_adds_a_clean_trained_variant(tmp_path):
    config = load(PAPER)
    for variant in config["variants"]:
        variant["enabled"] = True
    counts, output = dry_run(tmp_path, write_config(tmp_path, config))
    assert counts["train"] == 5 and counts["attack_defended"] == 30
    line = next(line for line in output.splitlines() if "--loss identity" in line)
    assert "sets/mnist_train.h5" in line and "sets/train/" not in line


def test_one_more_eps_setting_is_one_more_job(tmp_path, default_dry_run):
    base, _ = default_dry_run
    config = load(DEFAULT)
    config["train_attacks"].append({"attack": "fgsm", "preset": "train-0", "params": ["eps=0.4"]})
    counts, output = dry_run(tmp_path, write_config(tmp_path, config))
    assert counts == {**base, "gen_train": base["gen_train"] + 1}
    assert "--attack fgsm --preset train-0 --batch-size 500 --param eps=0.4" in output
    assert "sets/train/fgsm_train-0_eps0.4.h5" in output


def test_one_more_variant_adds_its_training_evaluations_and_figures(tmp_path, default_dry_run):
    base, _ = default_dry_run
    config = load(DEFAULT)
    config["variants"].append({"name": "combined-g0.5", "loss": "combined", "epochs": 3, "gamma": 0.5})
    counts, output = dry_run(tmp_path, write_config(tmp_path, config))
    tests, embed = len(config["test_attacks"]), config["embed"]
    assert counts == {**base, "train": base["train"] + 1, "attack_defended": base["attack_defended"] + tests,
                      "embed_defense": base["embed_defense"] + len(embed["attacks"]) * len(embed["spaces"])}
    assert "--gamma 0.5" in output and "--defense-name combined-g0.5" in output


@pytest.mark.parametrize("config, needles", [
    ({"dataset": {"nmae": "mnist"}}, ["Additional properties are not allowed", "'nmae' was unexpected"]),
    ({"epochs": 3}, ["'epochs' was unexpected"]),
    ({"variants": [{"loss": "vanilla", "epoch": 3}]}, ["'epoch' was unexpected"]),
    ({"classifier": {"epochs": "many"}}, ["'many' is not of type 'integer'", "['classifier']['epochs']"]),
    ({"resources": {"gpu": 0.5}}, ["0.5 is not of type 'integer'", "['resources']['gpu']"]),
    ({"test_attacks": [{"attack": "deepfool"}]}, ["'deepfool' is not one of"]),
    ({"train_attacks": [{"attack": "fgsm"}]}, ["'preset' is a required property"]),
    ({"variants": [{"loss": "vanilla", "name": "none"}]}, ["['variants'][0]['name']"]),
    ({"embed": {"attacks": ["fgsm", "deepfool"]}}, ["config embed.attacks: deepfool not among"]),
    ({"train_attacks": [{"attack": "fgsm", "preset": "train-0"}, {"attack": "fgsm", "preset": "train-0"}]},
     ["config train_attacks: two entries are named 'fgsm_train-0'"]),
    ({"test_attacks": [{"attack": "pgd"}, {"attack": "pgd", "params": ["nb_iter=5"]}]},
     ["'pgd' and 'pgd_nb_iter5' are both pgd"]),
])
def test_config_rejections_name_the_key(tmp_path, config, needles):
    done = snakemake("-n", "--configfile", write_config(tmp_path, config), results=tmp_path / "results")
    assert done.returncode != 0
    for needle in needles:
        assert needle in done.stdout + done.stderr, done.stderr[-2000:]


@pytest.mark.slow
def test_tiny_end_to_end_with_the_local_executor(tmp_path):
    """The whole DAG on 64 train / 32 test digits (a few minutes on 2 shared cores, mostly start-up time)."""
    results = tmp_path / "results"
    done = snakemake("--cores", "2", "--configfile", TINY, results=results, timeout=900)
    assert done.returncode == 0, done.stderr[-5000:]
    config = effective(TINY)
    for table in ("whitebox_accuracy.csv", "whitebox_agreement.csv", "whitebox.md"):
        assert (results / "tables" / table).stat().st_size > 0
    markdown = (results / "tables" / "whitebox.md").read_text()
    assert "mnist-5k test" in markdown and "n = 32 per attack" in markdown
    header = (results / "tables" / "whitebox_accuracy.csv").read_text().splitlines()[0]
    assert header == "Attack,No Attack,No Defense,vanilla,combined"
    figures = sorted(p.relative_to(results).as_posix() for p in results.glob("figures/**/*.png"))
    assert figures == ["figures/umap/clean_input.png", "figures/umap/fgsm/input.png"]
    assert (results / "sets" / "test" / "pgd_nb_iter3.h5").exists()
    jobs = sum(expected_counts(config).values())
    assert len(list(results.glob("logs/**/*.log"))) == len(list(results.glob("benchmarks/**/*.tsv"))) == jobs - 1

    report = snakemake("--report", tmp_path / "report.html", "--configfile", TINY, results=results)
    assert report.returncode == 0, report.stderr[-3000:]
    html = (tmp_path / "report.html").read_text()
    assert "UMAP of the clean mnist-5k test images" in html and "whitebox_accuracy.csv" in html
