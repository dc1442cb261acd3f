"""The Snakemake workflow: job counts per rule from config, the grid as data, config-schema rejections, and a
tiny end-to-end run with the local executor."""
from __future__ import annotations

import hashlib
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from test_report_paper import write_grid

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "config" / "config.yaml"
PAPER = ROOT / "config" / "paper.yaml"
TINY = ROOT / ".test" / "config" / "config.yaml"


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
    blackbox, adaptive = config.get("blackbox", {}), config.get("adaptive", {})
    overpowered = config.get("overpowered", {}).get("variants", [])
    overpowered = len(variants) if overpowered is None else len(overpowered)
    # Figures 5-6: one job per figure variant, by default the embed variants (by default every variant)
    figure_variants = config.get("overpowered", {}).get("figure_variants")
    if figure_variants is None:
        figure_variants = variants if embed.get("variants") is None else embed["variants"]
    defenses = 1 + len(variants)
    paper, transfer, adaptive = (len(blackbox.get("paper", [])), len(blackbox.get("transfer", [])),
                                 len(adaptive.get("attacks", [])))
    curves = len(config.get("curves", {}).get("attacks", []))
    seeds = len(config.get("seeds", [0]))  # the purifiers and every evaluation, once per seed
    return {"clean_set": 2, "classifier": 1, "gen_train": len(config["train_attacks"]), "gen_test": len(tests),
            "train": seeds * len(variants), "attack_defended": seeds * len(variants) * len(tests),
            "attack_undefended": seeds * len(tests),
            "embed_clean": 1, "embed_attack": len(embed["attacks"]), "embed_overpowered": len(figure_variants),
            "substitute": paper, "attack_blackbox_paper": seeds * defenses * paper,
            "attack_blackbox_transfer": seeds * defenses * transfer, "attack_overpowered": seeds * overpowered,
            "attack_adaptive": seeds * defenses * adaptive, "table_overpowered": int(overpowered > 0),
            "attack_curve": seeds * defenses * curves, "table_security": int(curves > 0),
            "tables": 1 + (paper > 0) + (transfer > 0) + (adaptive > 0),
            "samples": len(tests) if variants else 0, "curves": int(bool(variants)), "all": 1}


def without_zeros(counts):
    return {rule: n for rule, n in counts.items() if n}


def write_config(tmp_path, config, name="config.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_paper_grid_job_counts(tmp_path):
    counts, output = dry_run(tmp_path, PAPER)
    # the original trained its substitutes A-E for 29 epochs
    assert re.findall(r"madvae classifier .*--arch [A-E] --epochs (\d+)", output) == ["29"] * 5
    assert counts == without_zeros(expected_counts(effective(PAPER)))
    # 4 variants + identity; Tables 1-3 and the adaptive table
    literal = {"clean_set": 2, "classifier": 1, "gen_train": 9, "gen_test": 6, "train": 5, "attack_defended": 30,
               "attack_undefended": 6, "substitute": 5, "attack_blackbox_paper": 30, "attack_blackbox_transfer": 30,
               "attack_overpowered": 5, "attack_adaptive": 30, "attack_curve": 12, "table_security": 1, "tables": 4,
               "table_overpowered": 1,
               "samples": 6, "curves": 1, "embed_overpowered": 4}
    assert {rule: counts[rule] for rule in literal} == literal


@pytest.fixture(scope="module")
def default_dry_run(tmp_path_factory):
    return dry_run(tmp_path_factory.mktemp("default"))


def test_embedded_default_job_counts(default_dry_run):
    counts, output = default_dry_run
    assert counts == without_zeros(expected_counts(effective()))
    assert counts["gen_train"] == 7 and counts["attack_defended"] == 30 and counts["embed_attack"] == 3  # 5 variants
    assert counts["embed_overpowered"] == 4  # Figures 5-6 of the paper's four variants, not of identity
    assert "--space overpowered-latent --space overpowered-output" in output and "--norm 1.0 --preset quick" in output
    assert "--quick --limit 500" in output  # the CPU-sized CW training set


def test_three_seeds_repeat_the_purifiers_and_evaluations_and_the_tables_take_every_seed(tmp_path):
    seeds = ROOT / "config" / "seeds.yaml"
    counts, output = dry_run(tmp_path, seeds)
    assert counts == without_zeros(expected_counts(effective(seeds)))
    assert counts["train"] == 15 and counts["classifier"] == 1 and counts["gen_test"] == 6  # sets shared
    lines = output.splitlines()
    train = [line for line in lines if "madvae train" in line and "--loss vanilla" in line]
    assert sorted(re.search(r"--seed (\d+) .*--out \S+/seeds/(\d+)/models/vae_vanilla.pt", line).groups()
                  for line in train) == [("0", "0"), ("1", "1"), ("2", "2")]
    evaluation = next(line for line in lines if "madvae attack" in line and "seeds/2/eval/vanilla/pgd.json" in line)
    assert "--vae" in evaluation and "seeds/2/models/vae_vanilla.pt" in evaluation and "--seed 2" in evaluation
    adaptive = next(line for line in lines if "--mode square" in line and "seeds/1/eval/adaptive/none/" in line)
    assert "--seed 1" in adaptive
    table = next(line for line in lines if "madvae report" in line and "--kind whitebox" in line)
    assert all(f"seeds/{seed}/eval/combined/cw.json" in table for seed in range(3))
    samples = next(line for line in lines if "--kind samples" in line)
    assert "seeds/0/models/vae_vanilla.pt" in samples and "seeds/1/" not in samples  # figures: the first seed


def test_a_retried_job_gets_more_time_and_memory(tmp_path):
    """Attempt 2 of a job (a retry after SLURM's TIMEOUT or OUT_OF_MEMORY) asks for twice the first's runtime and
    memory, attempt 3 three times, so it is not rerun at the limit that killed it."""
    base = load(DEFAULT)["resources"]["train"]
    for attempt in (1, 2, 3):
        done = snakemake("-n", "--attempt", attempt, results=tmp_path / "results")
        assert done.returncode == 0, done.stderr[-2000:]
        block = (done.stdout + done.stderr).split("rule train:")[1].split("\n\n")[0]
        assert f"runtime={base['runtime'] * attempt}," in block and f"mem_mb={base['mem_mb'] * attempt}," in block


def test_a_sweep_over_several_seeds_is_refused(tmp_path):
    config = effective(ROOT / "config" / "sweep.yaml")
    config["seeds"] = [0, 1]
    done = snakemake("-n", "--configfile", write_config(tmp_path, config), results=tmp_path / "results")
    assert done.returncode != 0
    assert "config seeds: [0, 1] with a sweep (combined)" in done.stdout + done.stderr


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
    config["embed"]["variants"].append("combined-g0.5")
    counts, output = dry_run(tmp_path, write_config(tmp_path, config))
    tests = len(config["test_attacks"])
    assert counts == without_zeros(expected_counts(config))
    # one more training, one more column in every table, no other change
    assert counts["train"] == base["train"] + 1 and counts["attack_defended"] == base["attack_defended"] + tests
    assert counts["attack_blackbox_paper"] == base["attack_blackbox_paper"] + len(config["blackbox"]["paper"])
    assert counts["attack_adaptive"] == base["attack_adaptive"] + len(config["adaptive"]["attacks"])
    assert counts["gen_train"] == base["gen_train"] and counts["embed_attack"] == base["embed_attack"]
    assert "--gamma 0.5" in output and "--defense-name combined-g0.5" in output
    # its figures come from the same per-attack UMAP jobs, one more --vae each, plus its own Figures 5-6 job
    assert counts["embed_overpowered"] == base["embed_overpowered"] + 1
    assert output.count("--vae combined-g0.5=") == len(config["embed"]["attacks"]) + tests + 1  # + sample-grid rows
    assert "figures/umap/fgsm/combined-g0.5_latent.png" in output


@pytest.mark.parametrize("config, needles", [
    ({"dataset": {"nmae": "mnist"}}, ["Additional properties are not allowed", "'nmae' was unexpected"]),
    ({"epochs": 3}, ["'epochs' was unexpected"]),
    ({"variants": [{"loss": "vanilla", "epoch": 3}]}, ["'epoch' was unexpected"]),
    ({"classifier": {"epochs": "many"}}, ["'many' is not of type 'integer'", "['classifier']['epochs']"]),
    ({"resources": {"gpu": 1}}, ["'gpu' was unexpected", "['resources']"]),  # GPUs: profiles/default
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
    assert "mnist-5k test" in markdown and "n = 32 per cell" in markdown
    header = (results / "tables" / "whitebox_accuracy.csv").read_text().splitlines()[0]
    assert header == "Attack,No Attack,No Defense,vanilla,combined,Dataset,Split,n,Preset"
    # Table 2 in both modes, Table 3 and the adaptive table, each with its configured rows and sizes
    rows = {name: (results / "tables" / name).read_text().splitlines()
            for name in ("blackbox_paper_accuracy.csv", "blackbox_transfer_accuracy.csv", "adaptive_accuracy.csv",
                         "overpowered.csv")}
    assert rows["blackbox_paper_accuracy.csv"][0] == "Substitute,No Attack,No Defense,vanilla,combined,Dataset,Split,n,Preset"
    assert [r.split(",")[0] for r in rows["blackbox_paper_accuracy.csv"][1:]] == ["A"]
    assert [r.split(",")[0] for r in rows["blackbox_transfer_accuracy.csv"][1:]] == ["E (quick)"]
    # the adaptive table names its defense and preset per row and ends with the per-image worst case (which the
    # stored FGSM and PGD evaluations enter)
    assert [r.split(",")[0] for r in rows["adaptive_accuracy.csv"][1:]] == [
        "PGD end-to-end vs posterior-mean defense (quick)", "Worst case vs posterior-mean defense"]
    adaptive_md = (results / "tables" / "adaptive.md").read_text()
    assert "FGSM, PGD, PGD end-to-end" in adaptive_md and "Reduced settings" in adaptive_md
    assert rows["overpowered.csv"][0] == "Metric,vanilla,Dataset,Split,n,Preset" and rows["overpowered.csv"][1].startswith("Accuracy,")
    assert "n = 24 per cell" in (results / "tables" / "blackbox_transfer.md").read_text()  # 32 - 8 held out
    assert "n = 8 per cell" in (results / "tables" / "adaptive.md").read_text()
    assert "n = 4 per cell" in (results / "tables" / "overpowered.md").read_text()
    figures = sorted(p.relative_to(results).as_posix() for p in results.glob("figures/**/*.png"))
    samples = ["figures/samples/fgsm.png", "figures/samples/pgd_nb_iter3.png"]  # one per test attack
    overpowered = [f"figures/umap/{variant}_overpowered-{space}.png" for variant in ("combined", "vanilla")
                   for space in ("latent", "output")]  # Figures 5-6 of every variant (tiny: embed variants null)
    assert figures == ["figures/overpowered/vanilla.png", *samples, "figures/training_curves.png",
                       "figures/umap/clean_input.png", *overpowered[:2], "figures/umap/fgsm/input.png",
                       *overpowered[2:]]
    curve = (results / "models" / "vae_vanilla.steps.csv").read_text().splitlines()
    assert curve[0].startswith("epoch,images,") and len(curve) > 1
    assert (results / "sets" / "test" / "pgd_nb_iter3.h5").exists()
    jobs = sum(expected_counts(config).values())
    assert len(list(results.glob("logs/**/*.log"))) == len(list(results.glob("benchmarks/**/*.tsv"))) == jobs - 1

    report = snakemake("--report", tmp_path / "report.html", "--configfile", TINY, results=results)
    assert report.returncode == 0, report.stderr[-3000:]
    html = (tmp_path / "report.html").read_text()
    assert "UMAP of the clean mnist-5k test images" in html and "whitebox_accuracy.csv" in html
    assert "training_curves.png" in html and "Above each digit" in html  # the sample grids and their caption


@pytest.mark.slow
def test_tiny_two_seeds_train_two_purifiers_and_table_1_averages_them(tmp_path):
    """Table 1 and the adaptive table of the tiny grid over seeds 0 and 1, run for real: each seed its own
    purifiers, the tables the mean and sd over the two, each seed's value in the CSV."""
    results = tmp_path / "results"
    config = write_config(tmp_path, {**effective(TINY), "seeds": [0, 1]}, "seeds.yaml")
    targets = [results / "tables" / name for name in ("whitebox_accuracy.csv", "adaptive.md")]
    done = snakemake(*targets, "--cores", "2", "--configfile", config, results=results, timeout=900)
    assert done.returncode == 0, done.stderr[-5000:]
    sha = {seed: hashlib.sha256((results / "seeds" / str(seed) / "models" / "vae_vanilla.pt").read_bytes()).digest()
           for seed in (0, 1)}
    assert sha[0] != sha[1]  # two trainings, not one copied
    recorded = json.loads((results / "seeds" / "1" / "eval" / "vanilla" / "fgsm.json").read_text())
    assert recorded["seed"] == 1 and recorded["defense"]["training"]["seed"] == 1
    rows = [line.split(",") for line in targets[0].read_text().splitlines()]
    assert rows[0] == ["Attack", "Seed", "No Attack", "No Defense", "vanilla", "combined", "Dataset", "Split", "n", "Preset"]
    fgsm = {row[1]: row for row in rows if row[0] == "FGSM"}
    assert list(fgsm) == ["0", "1", "mean", "sd"]
    per_seed = [float(fgsm[seed][4]) for seed in ("0", "1")]
    assert float(fgsm["mean"][4]) == pytest.approx(sum(per_seed) / 2, abs=1e-4)
    assert float(fgsm["sd"][4]) == pytest.approx(abs(per_seed[0] - per_seed[1]) / 2 ** 0.5, abs=1e-4)
    assert "mean over 2 seeds (0, 1" in targets[1].read_text()
    assert not (results / "models" / "vae_vanilla.pt").exists()  # several seeds: every purifier under seeds/


def test_snakefmt_leaves_every_snakefile_as_it_is():
    """The catalog's style check (pyproject's [tool.snakefmt]: 120 columns) on the Snakefile and every .smk."""
    snakefmt = Path(sys.executable).parent / "snakefmt"
    done = subprocess.run([str(snakefmt), "--check", "workflow"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "would be left unchanged" in done.stderr + done.stdout


@pytest.mark.parametrize("configfile", [None, PAPER, ROOT / "config" / "seeds.yaml"])
def test_lint_reports_nothing(tmp_path, configfile):
    args = ["--lint"] + (["--configfile", configfile] if configfile else [])
    done = snakemake(*args, results=tmp_path / "results")
    output = done.stdout + done.stderr
    assert done.returncode == 0 and "Lints for" not in output, output[-3000:]


def test_hostile_results_dir_is_refused_and_odd_ones_are_quoted(tmp_path):
    """A config value never reaches a shell unquoted: shell syntax in results_dir is refused by the schema, and
    a folder with a space reaches every command as one argument."""
    hostile = snakemake("-n", results="r; touch PWNED #")
    assert hostile.returncode != 0 and "results_dir" in hostile.stdout + hostile.stderr
    assert not (ROOT / "PWNED").exists() and not (ROOT / "r").exists()
    spaced = tmp_path / "my results"
    done = snakemake("-n", "-p", results=spaced, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    commands = [line.split("Shell command:", 1)[1].strip() for line in (done.stdout + done.stderr).splitlines()
                if "Shell command: madvae " in line]
    assert len(commands) > 100
    for command in commands:
        argv = shlex.split(command)
        # every path argument stays whole: no word is a fragment of the spaced folder's name
        assert not any(word.startswith("results/") or word.endswith("/my") for word in argv), command
        outputs = [argv[k + 1] for k, word in enumerate(argv) if word in ("--out", "--out-dir")]
        assert outputs and all(path.startswith(str(spaced)) for path in outputs), command
        redirect = argv.index(">")
        assert argv[redirect + 1].startswith(str(spaced) + "/logs/"), command


def test_pairs_per_epoch_reaches_every_purifier_and_a_variant_may_override_it(tmp_path):
    config = {"vae": {"pairs_per_epoch": 1000},
              "variants": [{"loss": "vanilla", "epochs": 1}, {"loss": "identity", "epochs": 1, "pairs_per_epoch": 50}],
              "embed": {"variants": ["vanilla"]}}
    done = snakemake("-n", "-p", "--configfile", write_config(tmp_path, config), results=tmp_path / "results")
    assert done.returncode == 0, done.stderr[-3000:]
    trains = [line for line in (done.stdout + done.stderr).splitlines() if "madvae train " in line]
    assert len(trains) == 2
    assert sum("--pairs-per-epoch 1000" in line and "--loss vanilla" in line for line in trains) == 1
    assert sum("--pairs-per-epoch 50" in line and "--loss identity" in line for line in trains) == 1


def report_commands(output):
    """{--kind of each madvae report table job: its shell command}."""
    commands = [line.split("Shell command: ", 1)[1] for line in output.splitlines()
                if "Shell command: madvae report " in line]
    return {shlex.split(command)[shlex.split(command).index("--kind") + 1]: command for command in commands}


PAPER_FILES = ("{name}_paper.md", "{name}_paper.csv", "{name}_claims.csv")


def test_report_paper_puts_the_papers_tables_1_to_3_beside_ours(tmp_path, default_dry_run):
    config = {"dataset": {"name": "mnist", "root": "../shared/data/mnist"}, "report": {"paper": True}}
    counts, output = dry_run(tmp_path, write_config(tmp_path, config))
    commands = report_commands(output)
    for kind, name in (("whitebox", "whitebox"), ("blackbox-paper", "blackbox_paper"), ("overpowered", "overpowered")):
        assert "--paper" in shlex.split(commands[kind]), commands[kind]
        for pattern in PAPER_FILES:
            assert re.search(rf"^\s+output: .*tables/{pattern.format(name=name)}\b", output, re.M), (kind, pattern)
    # the paper has no transfer-mode or adaptive table, and the workflow makes every table it made before
    assert "--paper" not in commands["blackbox-transfer"] + commands["adaptive"]
    base, default_output = default_dry_run
    assert sum(counts.values()) == sum(base.values())
    assert "--paper" not in default_output and "_claims.csv" not in default_output  # off by default


def test_report_paper_is_refused_on_another_data_set(tmp_path):
    done = snakemake("-n", "--configfile", write_config(tmp_path, {"report": {"paper": True}}),
                     results=tmp_path / "results")
    assert done.returncode != 0
    message = done.stdout + done.stderr
    assert "config report.paper" in message and "dataset.name is mnist-5k" in message, message[-2000:]


@pytest.mark.slow
def test_report_paper_jobs_write_the_comparisons(tmp_path):
    """The three table jobs alone, on hand-made full-MNIST results laid out as the workflow's evaluations."""
    results = tmp_path / "results"
    for kind in ("whitebox", "blackbox-paper"):
        for path in write_grid(tmp_path / kind, kind, extra_defenses=("identity",)).glob("*.json"):
            result = json.loads(path.read_text())
            folder, row = ("eval", result["attack"]) if kind == "whitebox" else ("eval/blackbox-paper",
                                                                                 result["substitute"])
            (results / folder / result["defense"]["name"]).mkdir(parents=True, exist_ok=True)
            path.rename(results / folder / result["defense"]["name"] / f"{row}.json")
    write_grid(results / "eval" / "overpowered", "overpowered", extra_defenses=("identity",))
    config = write_config(tmp_path, {"dataset": {"name": "mnist"}, "report": {"paper": True}})
    targets = [results / "tables" / pattern.format(name=name)
               for name in ("whitebox", "blackbox_paper", "overpowered") for pattern in PAPER_FILES]
    done = snakemake(*targets, "--cores", "1", "--configfile", config, "--allowed-rules", "tables_paper",
                     "table_overpowered", results=results, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert all(path.stat().st_size > 0 for path in targets)
    assert "# Ours beside the paper's Table 3: mnist test" in (results / "tables" / "overpowered_paper.md").read_text()
    log = (results / "logs" / "tables" / "whitebox.log").read_text()
    assert "36 of 36 cells of the paper's Table 1 compared" in log
