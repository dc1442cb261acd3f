"""bench/estimate.py: a workflow config's jobs (bench/jobs.py) against `snakemake -n`, their minutes at hand-made
rates worked out by hand, the --cores schedule, and the paper grid's hours (no timing measured here)."""
import pytest
import yaml

from bench.estimate import JobTime, estimate, paper_grid_hours, schedule
from bench.jobs import Job, workflow_jobs
from bench.rates import Rates, flops, purify_cost
from bench.workflow_config import effective_config
from madvae.attacks import resolve_params
from test_workflow import ROOT, dry_run

# a tiny grid: 100 train / 50 test digits, one FGSM and one quick CW training set, two purifiers with pairs_per_epoch
TINY = {
    "dataset": {"name": "mnist-5k", "limit": {"train": 100, "test": 50}},
    "classifier": {"epochs": 2},
    "train_attacks": [{"attack": "fgsm", "preset": "train-0"},
                      {"attack": "cw", "preset": "train-1", "quick": True, "limit": 40}],
    "test_attacks": [{"attack": "fgsm"}, {"attack": "pgd", "limit": 20}],
    "vae": {"batch_size": 64, "pairs_per_epoch": 100},
    "variants": [{"loss": "vanilla", "epochs": 2}, {"loss": "identity", "epochs": 1, "pairs_per_epoch": 30}],
    "blackbox": {"paper": [], "transfer": []},
    "overpowered": {"variants": ["vanilla"], "preset": "quick", "limit": 10, "figure_variants": [],
                    "params": ["steps=5"]},
    "adaptive": {"attacks": ["bpda"], "quick": True, "limit": 10},
    "curves": {"attacks": ["bpda"], "eps": [0.0, 0.3], "quick": True, "limit": 10},
    "embed": {"attacks": [], "variants": [], "spaces": []},
}
STARTUP = 2.0  # seconds per job: the startup figure is 0.5 jobs/s


def fig(name, rate, batch=64, **setting):
    return {"name": name, "ours_images_per_s": rate, "batch_size": batch, "threads": 2, "unit": "/s",
            "setting": setting}


FIGURES = [fig("startup (per job)", 1 / STARTUP, 1), fig("clean-set", 100.0), fig("classifier-train", 50.0),
           fig("fgsm", 100.0), fig("cw (per iteration)", 1000.0), fig("pgd", 10.0, nb_iter=40),
           fig("vae-vanilla", 20.0), fig("vae-vanilla", 5.0, batch=512), fig("vae-identity", 40.0),
           fig("eval (vae + classifier)", 100.0), fig("overpowered (per step)", 50.0, noise_samples=4),
           fig("adaptive-bpda (per step)", 25.0), fig("umap (3000 points)", 1000.0, first_call_seconds=10.0)]


@pytest.fixture(scope="module")
def tiny():
    return estimate(workflow_jobs(effective_config(overrides=TINY)), Rates(FIGURES))


def test_tiny_grid_has_the_workflows_jobs(tiny):
    assert tiny.missing == {}
    assert dict(tiny.jobs_by_rule()) == {
        "clean_set": 2, "classifier": 1, "gen_train": 2, "gen_test": 2, "train": 2, "attack_undefended": 2,
        "attack_defended": 4, "attack_overpowered": 1, "attack_adaptive": 3, "embed_clean": 1, "samples": 2,
        "curves": 1, "tables": 2, "table_overpowered": 1, "attack_curve": 3, "table_security": 1, "all": 1}


def test_tiny_grid_minutes_by_hand(tiny):
    seconds = tiny.seconds_by_rule()
    classify = 100.0 * purify_cost(0) / flops()["classifier"]  # MagNet alone: eval rate x FLOPs ratio
    assert seconds["clean_set"] == pytest.approx(2 * STARTUP + 100 / 100 + 50 / 100)
    assert seconds["classifier"] == pytest.approx(STARTUP + 2 * 100 / 50 + 50 / classify)
    # FGSM on 100 images; quick CW: 40 images x 100 iterations x 1 binary step
    assert resolve_params("cw", "train-1", quick=True)["max_iterations"] == 100
    assert seconds["gen_train"] == pytest.approx(2 * STARTUP + 100 / 100 + 40 * 100 / 1000)
    # PGD: 20 images x 40 iterations at 10 images/s = 400 iterations/s
    assert seconds["gen_test"] == pytest.approx(2 * STARTUP + 50 / 100 + 20 * 40 / 400)
    # vanilla: min(100, 100 + 40) pairs x 2 epochs at the batch-64 figure; identity: min(30, 100 clean) x 1
    assert seconds["train"] == pytest.approx(2 * STARTUP + 2 * 100 / 20 + 30 / 40)
    # both sets' x_clean and x_adv through MagNet, and through the two purifiers
    assert seconds["attack_undefended"] == pytest.approx(2 * STARTUP + (100 + 40) / classify)
    assert seconds["attack_defended"] == pytest.approx(4 * STARTUP + 2 * (100 + 40) * (1 / 100 + 1 / classify))
    # 10 images x 4 norms x 1 restart x 5 steps at 4 noise draws; then 10 images x (4 norms + clean) purified
    assert seconds["attack_overpowered"] == pytest.approx(STARTUP + 10 * 4 * 5 / 50 + 10 * 5 / 100)
    # quick BPDA, 10 images x 10 steps: through each purifier at 25/s, plain PGD at PGD's 400 iterations/s
    assert seconds["attack_adaptive"] == pytest.approx(3 * STARTUP + 100 / 400 + 2 * (100 / 25 + 20 / 100)
                                                       + 3 * 20 / classify)
    assert seconds["embed_clean"] == pytest.approx(STARTUP + 10.0 + 50 / 1000)
    assert seconds["all"] == 0
    assert tiny.serial == pytest.approx(sum(seconds.values()))


def test_more_noise_draws_cost_their_flops():
    config = effective_config(overrides={**TINY, "overpowered": {**TINY["overpowered"],
                                                                  "params": ["steps=5", "noise_samples=100"]}})
    seconds = estimate(workflow_jobs(config), Rates(FIGURES)).seconds_by_rule()["attack_overpowered"]
    f = flops()
    scale = (f["decoder"] + 100 * f["classifier"]) / (f["decoder"] + 4 * f["classifier"])
    assert seconds == pytest.approx(STARTUP + 10 * 4 * 5 / 50 * scale + 10 * 5 / 100)


def test_a_missing_figure_is_named_with_its_bench_section():
    result = estimate(workflow_jobs(effective_config(overrides=TINY)),
                      Rates([f for f in FIGURES if not f["name"].startswith("pgd")]))
    assert result.missing == {"pgd": "pgd", "classifier-step": "pgd"}


def test_job_counts_match_snakemakes_dry_run(tmp_path):
    # pairs_per_epoch left out: the dry run validates against the schema of this checkout
    tiny = {**TINY, "vae": {"batch_size": 64}, "variants": [{"loss": "vanilla", "epochs": 2}, {"loss": "identity"}]}
    tiny_path = tmp_path / "tiny.yaml"
    tiny_path.write_text(yaml.safe_dump(tiny))
    # the sweep: candidates, validation sets and their evaluations, the selection and the install jobs
    # mnist: the reproduction's grid (its Tables 1-2 in the tables_paper rule)
    # seeds: the purifiers and every evaluation once per seed, under seeds/<seed>/
    for name, path in (("tiny", tiny_path), ("sweep", ROOT / "config" / "sweep.yaml"),
                       ("mnist", ROOT / "config" / "mnist.yaml"), ("seeds", ROOT / "config" / "seeds.yaml")):
        counts, _ = dry_run(tmp_path / name, path)
        jobs = workflow_jobs(effective_config(path))
        assert {rule: sum(job.rule == rule for job in jobs) for rule in counts} == counts
        assert len(jobs) == sum(counts.values())


def test_schedule_runs_one_thread_jobs_side_by_side():
    def timed(name, threads, compute, needs=()):
        return JobTime(Job("rule", name, list(needs), [], threads), startup=1.0, compute=compute, bench_threads=2)

    times = [timed("a", 2, 10.0), timed("b", 1, 4.0, ["a"]), timed("c", 1, 4.0, ["a"]), timed("d", 2, 2.0, ["b"])]
    # a alone (1 + 10); b and c together, each on one core at twice its 2-thread compute (1 + 8); then d (1 + 2)
    assert schedule(times, cores=2) == pytest.approx(11 + 9 + 3)
    assert schedule(times, cores=1) == pytest.approx(1 + 20 + 2 * (1 + 8) + 1 + 4)
    # measured: 2 threads only 1.5x as fast as one, so b and c each take 1.5x their 2-thread compute
    for t in times:
        t.speedup = 1.5
    assert schedule(times, cores=2) == pytest.approx(11 + (1 + 6) + 3)


NAMES = ["startup (per job)", "clean-set", "classifier-train", "fgsm", "rfgsm", "cw (per iteration)", "mifgsm",
         "pgd", "single-pixel", "eval (vae + classifier)", "overpowered (per step)", "umap (3000 points)",
         *(f"vae-{v}" for v in ("vanilla", "classification", "proximity-distance", "combined", "identity")),
         *(f"substitute-{a}-train" for a in "ABCDE"), *(f"adaptive-{a} (per step)" for a in ("pgd-e2e", "bpda", "eot"))]


def figures(rate, **overrides):
    return [fig(name, overrides.get(name.split(" ")[0], rate), first_call_seconds=1 / rate) for name in NAMES]


def test_paper_hours_scale_inversely_with_the_rates():
    slow, fast = paper_grid_hours(figures(100.0)), paper_grid_hours(figures(400.0))
    assert fast["total_hours"] == pytest.approx(slow["total_hours"] / 4)
    assert slow["total_hours"] == pytest.approx(sum(slow["hours"].values()))


def test_paper_cw_training_sets_count_every_iteration_of_every_setting():
    hours = paper_grid_hours(figures(100.0, cw=1000.0))["hours"]
    faster = paper_grid_hours(figures(100.0, cw=2000.0))["hours"]
    iterations = sum(resolve_params("cw", f"train-{i}")["max_iterations"]
                     * resolve_params("cw", f"train-{i}")["binary_search_steps"] for i in range(3))
    # halving CW's time saves half of 55,000 images x every iteration of the three settings, in gen_train only
    assert hours["gen_train"] - faster["gen_train"] == pytest.approx(55_000 * iterations / 1000 / 2 / 3600)
    assert faster["classifier"] == hours["classifier"]


def test_a_missing_section_gives_no_paper_estimate():
    assert paper_grid_hours([f for f in figures(100.0) if f["name"] != "pgd"]) is None
