"""Training-option sweeps: the selection on hand-made validation results, the sweep's jobs in a dry run, and a tiny
sweep end to end whose answer is known."""
from __future__ import annotations

import csv
import json
import re
import shlex

import pytest
import torch
from typer.testing import CliRunner

from madvae.checkpoint import save_checkpoint
from madvae.cli import app
from madvae.errors import MadvaeError
from madvae.selection import install_selected, select, write_selection
from madvae.util import sha256_file
from test_workflow import DEFAULT, ROOT, dry_run, effective, load, snakemake, write_config

runner = CliRunner()
BASE = {"epochs": 1, "batch_size": 32, "lr": 0.001, "alpha": 0.01, "sigma": 1e-5, "beta": 0.1, "gamma": 0.1}


def candidate(folder, variant, loss="combined", **options):
    """A vae checkpoint (any weights: selection reads only the config) with its two training logs."""
    path = folder / variant / "_".join(f"{k}{v}" for k, v in sorted(options.items())) / "vae.pt"
    path.parent.mkdir(parents=True)
    save_checkpoint(path, kind="vae", arch="defense-vae", model=torch.nn.Linear(1, 1),
                    config={"loss": loss, **BASE, **options})
    (path.parent / "vae.train.csv").write_text("epoch,total\n1,0.5\n")
    (path.parent / "vae.steps.csv").write_text("epoch,images,total\n1,32,0.5\n")
    return path


def result(folder, checkpoint, variant, attack, accuracy, *, split="val", set_sha="", n=100):
    payload = {"encoding-type": "madvae.result", "encoding-version": "1.0", "creator_version": "0.1.0",
               "kind": "whitebox", "dataset": "mnist-5k", "split": split, "n": n, "attack": attack, "params": {},
               "set": f"sets/val/{attack}.h5", "set_sha256": set_sha or f"sha-{attack}", "classifier": "clf.pt",
               "classifier_sha256": "sha-clf",
               "defense": {"name": variant, "checkpoint": str(checkpoint), "sha256": sha256_file(checkpoint),
                           "samples": 0},
               "metrics": {"clean": {"accuracy": 0.99, "agreement": 1.0},
                           "no_defense": {"accuracy": 0.1, "agreement": 0.1},
                           "defended": {"accuracy": accuracy, "agreement": accuracy}}}
    path = folder / "eval" / f"{len(list(folder.glob('eval/*.json')))}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(payload))
    return path


@pytest.fixture
def grid(tmp_path):
    """combined over gamma x sigma (2 x 2) and classification over gamma (2), scored on fgsm and rfgsm.
    combined's best mean is gamma 1.0 / sigma 1e-5; classification's two candidates tie on mean and min."""
    scores = {("combined", 0.1, 1e-5): (0.50, 0.60), ("combined", 0.1, 1e-4): (0.70, 0.40),
              ("combined", 1.0, 1e-5): (0.80, 0.62), ("combined", 1.0, 1e-4): (0.30, 0.20),
              ("classification", 0.1, 1e-5): (0.40, 0.60), ("classification", 1.0, 1e-5): (0.60, 0.40)}
    paths = []
    for (variant, gamma, sigma), (fgsm, rfgsm) in scores.items():
        ckpt = candidate(tmp_path, variant, loss=variant, gamma=gamma, sigma=sigma)
        paths += [result(tmp_path, ckpt, variant, "fgsm", fgsm), result(tmp_path, ckpt, variant, "rfgsm", rfgsm)]
    return tmp_path, paths


def test_selection_keeps_the_best_mean_per_variant_and_breaks_ties_by_option_values(grid):
    folder, paths = grid
    record = select(reversed(paths))  # the input order must not matter
    assert record["swept"] == ["gamma", "sigma"] and record["attacks"] == ["fgsm", "rfgsm"]
    kept = {v: (w["options"]["gamma"], w["options"]["sigma"]) for v, w in record["selected"].items()}
    # classification: mean 0.5 and min 0.4 for both, so the smaller gamma wins
    assert kept == {"classification": (0.1, 1e-5), "combined": (1.0, 1e-5)}
    assert record["selected"]["combined"]["score"] == pytest.approx(0.71)
    ranks = {(c["variant"], c["options"]["gamma"], c["options"]["sigma"]): c["rank"] for c in record["candidates"]}
    assert ranks[("combined", 0.1, 1e-5)] == 2 and ranks[("combined", 0.1, 1e-4)] == 3


def test_min_accuracy_and_mean_accuracy_can_disagree(tmp_path):
    steady = candidate(tmp_path, "combined", gamma=0.1)
    spiky = candidate(tmp_path, "combined", gamma=1.0)
    paths = [result(tmp_path, steady, "combined", "fgsm", 0.6), result(tmp_path, steady, "combined", "rfgsm", 0.6),
             result(tmp_path, spiky, "combined", "fgsm", 0.9), result(tmp_path, spiky, "combined", "rfgsm", 0.5)]
    assert select(paths)["selected"]["combined"]["options"]["gamma"] == 1.0  # mean 0.7 > 0.6
    assert select(paths, "min-accuracy")["selected"]["combined"]["options"]["gamma"] == 0.1  # 0.6 > 0.5


def test_selection_files_list_every_combination_once(grid, tmp_path):
    folder, paths = grid
    done = runner.invoke(app, ["report", *map(str, paths), "--kind", "selection", "--out-dir", str(tmp_path / "t")])
    assert done.exit_code == 0, done.output
    with open(tmp_path / "t" / "selection.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["variant", "gamma", "sigma", "fgsm", "rfgsm", "mean", "min", "rank", "kept"]
    assert sorted((r["variant"], r["gamma"], r["sigma"]) for r in rows) == sorted(
        [("combined", g, s) for g in ("0.1", "1.0") for s in ("1e-05", "0.0001")]
        + [("classification", g, "1e-05") for g in ("0.1", "1.0")])
    assert [(r["variant"], r["gamma"], r["sigma"]) for r in rows if r["kept"] == "yes"] == [
        ("classification", "0.1", "1e-05"), ("combined", "1.0", "1e-05")]
    assert next(r for r in rows if r["kept"] == "yes" and r["variant"] == "combined")["mean"] == "0.7100"
    markdown = (tmp_path / "t" / "selection.md").read_text()
    assert "Criterion: mean-accuracy" in markdown and "n = 100 per cell" in markdown
    assert markdown.count("| combined |") == 4 and markdown.count("| yes |") == 2


def test_install_copies_the_kept_checkpoint_and_its_logs_byte_for_byte(grid, tmp_path):
    folder, paths = grid
    record = write_selection(paths, tmp_path / "t")["record"]
    out = tmp_path / "models" / "vae_combined.pt"
    install_selected(tmp_path / "t" / "selection.json", "combined", out)
    kept = record["selected"]["combined"]["checkpoint"]
    assert sha256_file(out) == sha256_file(kept)
    assert (tmp_path / "models" / "vae_combined.train.csv").read_text() == "epoch,total\n1,0.5\n"
    assert (tmp_path / "models" / "vae_combined.steps.csv").exists()
    with pytest.raises(MadvaeError, match="no kept model for variant 'vanilla'"):
        install_selected(tmp_path / "t" / "selection.json", "vanilla", out)
    torch.save({"changed": True}, kept)  # retrained after the selection: the record is stale
    with pytest.raises(MadvaeError, match="changed since the selection"):
        install_selected(tmp_path / "t" / "selection.json", "combined", out)


def test_install_step_as_the_workflow_runs_it(grid, tmp_path, capsys):
    """`python -m madvae.selection SELECTION VARIANT OUT` (rule install_vae): a line on success, the CLI's one-line
    error and exit codes otherwise."""
    from madvae.errors import UsageError
    from madvae.selection import main

    folder, paths = grid
    write_selection(paths, tmp_path / "t")
    selection, out = tmp_path / "t" / "selection.json", tmp_path / "models" / "vae_combined.pt"
    assert main([str(selection), "combined", str(out)]) == 0 and out.is_file()
    assert capsys.readouterr().out.startswith(f"{out}: kept ")
    assert main([str(selection), "combined"]) == UsageError.EXIT_CODE
    assert "usage: python -m madvae.selection" in capsys.readouterr().err
    assert main([str(selection), "vanilla", str(out)]) == MadvaeError.EXIT_CODE
    assert capsys.readouterr().err.startswith("madvae: error: ") and sha256_file(out)


def _edit(path, change):
    payload = json.loads(path.read_text())
    change(payload)
    path.write_text(json.dumps(payload))


@pytest.mark.parametrize("change, message", [
    (lambda r: r.update(split="test"), "selection uses validation results only"),
    (lambda r: r.update(set_sha256="other"), "two different validation sets named 'fgsm'"),
    (lambda r: r.update(n=50), "different sample counts n"),
    (lambda r: r["defense"].update(sha256="0" * 64), "checkpoint changed since it was evaluated"),
    (lambda r: r["defense"].update(checkpoint="gone.pt"), "the evaluated checkpoint gone.pt is not there"),
    (lambda r: r["metrics"]["defended"].update(accuracy=1.5), "defended.accuracy"),
])
def test_bad_results_are_refused_with_one_line_naming_the_file(grid, tmp_path, change, message):
    folder, paths = grid
    _edit(paths[0], change)
    done = runner.invoke(app, ["report", *map(str, paths), "--kind", "selection", "--out-dir", str(tmp_path / "t")])
    assert done.exit_code == 65 and message in done.output, done.output
    assert len(done.output.strip().splitlines()) == 1 and "Traceback" not in done.output
    assert not (tmp_path / "t").exists()  # nothing written


def test_a_candidate_missing_an_attack_or_given_twice_is_refused(grid):
    folder, paths = grid
    with pytest.raises(MadvaeError, match="no validation result on rfgsm"):
        select(paths[:1] + paths[2:])
    again = folder / "again.json"
    again.write_text(paths[0].read_text())
    with pytest.raises(MadvaeError, match="two results of checkpoint .* on set 'fgsm'"):
        select(paths + [again])
    with pytest.raises(MadvaeError, match="unknown selection criterion 'best'"):
        select(paths, "best")


# --- the workflow ---


def sweep_config(tmp_path, **vae):
    """The embedded default with lists in vae: (Snakemake merges vae: key by key)."""
    return write_config(tmp_path, {"vae": vae}, "sweep.yaml")


def test_default_config_schedules_no_sweep_jobs(tmp_path):
    counts, output = dry_run(tmp_path)
    assert not {"train_candidate", "gen_val", "attack_val", "selection", "install_vae"} & set(counts)
    assert "--split val" not in output


def test_a_2x2_sweep_trains_each_combination_and_tests_only_the_kept_models(tmp_path):
    counts, output = dry_run(tmp_path, sweep_config(tmp_path, gamma=[0.1, 1.0], sigma=[1.0e-5, 1.0e-4]))
    base = effective()
    variants = {v["loss"] for v in base["variants"]}
    # gamma weighs classification and combined, sigma proximity-distance and combined: 2 + 2 + 4 candidates;
    # vanilla and identity use neither and train once, as before
    assert counts["train_candidate"] == 8 and counts["train"] == len(variants) - 3
    assert counts["install_vae"] == 3 and counts["selection"] == 1
    assert counts["gen_val"] == len(load(DEFAULT)["validation"]["attacks"]) == 2
    assert counts["attack_val"] == 8 * 2 and counts["clean_set"] == 3  # train, test and val
    assert counts["attack_defended"] == len(variants) * len(base["test_attacks"])  # the test table is unchanged
    for gamma in ("0.1", "1.0"):
        for sigma in ("1e-05", "0.0001"):
            assert f"models/sweep/combined/gamma~{gamma}/sigma~{sigma}/vae.pt" in output
    assert "models/sweep/classification/gamma~1.0/vae.pt" in output
    assert "models/sweep/vanilla" not in output and "models/sweep/proximity-distance/sigma~0.0001/vae.pt" in output
    line = next(l for l in output.splitlines() if "madvae train" in l
                and "--out " + shlex.quote(str(tmp_path / "results/models/sweep/combined/gamma~1.0/sigma~0.0001/vae.pt"))
                in l)
    assert "--gamma 1.0" in line and "--sigma 0.0001" in line and "--alpha 0.01" in line
    assert "--split val" in output and "--preset val" in output
    # every test-set evaluation reads the installed models/vae_<variant>.pt, never a candidate
    tests = [l for l in output.splitlines() if re.search(r"madvae attack .*sets/test/", l)]
    assert tests and not any("models/sweep/" in l for l in tests)
    assert all(re.search(r"models/vae_[\w-]+\.pt", l) for l in tests if "--vae" in l)


def test_a_variant_entry_may_sweep_its_own_options(tmp_path):
    config = load(DEFAULT)
    config["variants"] = [{"loss": "vanilla", "epochs": [1, 2], "lr": [0.001, 0.01]}, {"loss": "combined"}]
    config["embed"]["variants"] = ["vanilla"]
    counts, output = dry_run(tmp_path, write_config(tmp_path, config))
    assert counts["train_candidate"] == 4 and counts["train"] == 1 and counts["install_vae"] == 1
    assert "models/sweep/vanilla/epochs~2/lr~0.01/vae.pt" in output


def test_sweep_lint_is_clean(tmp_path):
    done = snakemake("--lint", "--configfile", sweep_config(tmp_path, gamma=[0.1, 1.0]), results=tmp_path / "r")
    output = done.stdout + done.stderr
    assert done.returncode == 0 and "Lints for" not in output, output[-3000:]


@pytest.mark.slow
def test_tiny_sweep_end_to_end_keeps_the_sane_setting(tmp_path):
    """vanilla over lr 1e-3 / 1e-9 x beta 0.1 / 1.0, 64 steps of batch 8 on 512 digits, scored on 64 val digits.
    The answer is known: lr 1e-9 leaves the VAE as initialised and beta 1.0 collapses it to the mean digit, both
    near chance through the classifier (about 0.1), while lr 1e-3 / beta 0.1 reconstructs digits (about 0.35).
    Only the white-box table and the selection are asked for (no figures): a few minutes on 2 cores."""
    config = load(ROOT / ".test" / "config" / "config.yaml")
    config.update(classifier={"arch": "magnet", "epochs": 2, "batch_size": 8}, vae={"batch_size": 8},
                  variants=[{"loss": "vanilla", "epochs": 1, "lr": [1.0e-3, 1.0e-9], "beta": [0.1, 1.0]}],
                  test_attacks=[{"attack": "fgsm"}], validation={"attacks": [{"attack": "fgsm"}]})
    config["dataset"]["limit"] = {"train": 512, "test": 32, "val": 64}
    results = tmp_path / "results"
    targets = [results / "tables" / "whitebox.md", results / "tables" / "selection.md"]
    # targets first: --configfile takes every path after it
    done = snakemake(*targets, "--cores", "2", "--configfile", write_config(tmp_path, config), results=results,
                     timeout=1200)
    assert done.returncode == 0, done.stderr[-5000:]
    with open(results / "tables" / "selection.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted((r["beta"], r["lr"]) for r in rows) == [("0.1", "0.001"), ("0.1", "1e-09"),
                                                          ("1.0", "0.001"), ("1.0", "1e-09")]
    assert [(r["beta"], r["lr"]) for r in rows if r["kept"] == "yes"] == [("0.1", "0.001")]
    assert "n = 64 per cell" in (results / "tables" / "selection.md").read_text()
    # the kept candidate, unchanged, is the model the test table evaluated; the train rule never ran for it
    winner = json.loads((results / "tables" / "selection.json").read_text())["selected"]["vanilla"]
    assert winner["checkpoint"].endswith("models/sweep/vanilla/beta~0.1/lr~0.001/vae.pt")
    assert sha256_file(results / "models" / "vae_vanilla.pt") == winner["sha256"]
    evaluation = json.loads((results / "eval" / "vanilla" / "fgsm.json").read_text())
    assert evaluation["split"] == "test" and evaluation["defense"]["sha256"] == winner["sha256"]
    assert (results / "models" / "vae_vanilla.steps.csv").read_text() == \
        (results / "models" / "sweep" / "vanilla" / "beta~0.1" / "lr~0.001" / "vae.steps.csv").read_text()
    assert not (results / "logs" / "models" / "vae_vanilla.log").exists()
    header = (results / "tables" / "whitebox_accuracy.csv").read_text().splitlines()[0]
    assert header == "Attack,No Attack,No Defense,vanilla,Dataset,Split,n,Preset"
