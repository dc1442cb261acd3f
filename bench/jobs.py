"""Every job the workflow runs for a config, and the work each one does in the units the bench measures.

One Job per Snakemake job, named after its output (without extension; its benchmark TSV's path under
results/benchmarks/) and linked to the jobs it needs, so that the counts per rule compare with `snakemake -n` and
bench/estimate.py can schedule them. A Work item is an amount
of one bench rate (bench/rates.py), with the job's setting where the rate must be scaled to it."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from madvae.attacks import OVERPOWERED_PRESETS, SUBSTITUTE_TRAINING, resolve_params
from madvae.registry import DEFAULT_EPOCHS
from madvae.train_classifier import ARCH_DEFAULTS, SUBSTITUTE_DEFAULTS

from bench.workflow_config import workflow_names

# madvae.data's splits (train / val / test)
SPLIT_SIZES = {"mnist-5k": {"train": 3_500, "val": 500, "test": 1_000},
               "mnist": {"train": 55_000, "val": 5_000, "test": 10_000},
               "fashion-mnist": {"train": 55_000, "val": 5_000, "test": 10_000}}
# the resources step of each rule (its threads: resources.<step>.cpus_per_task); None: no process runs
STEP_OF_RULE = {"clean_set": "data", "classifier": "classifier", "substitute": "classifier", "gen_train": "gen",
                "gen_test": "gen", "gen_val": "gen", "train": "train", "train_candidate": "train",
                "attack_val": "attack", "attack_defended": "attack", "attack_undefended": "attack",
                "attack_blackbox_paper": "attack", "attack_blackbox_transfer": "attack",
                "attack_overpowered": "attack", "attack_adaptive": "attack", "embed_overpowered": "attack",
                "attack_curve": "attack", "table_security": "report",
                "embed_clean": "embed", "embed_attack": "embed", "samples": "report", "curves": "report",
                "tables": "report", "tables_paper": "report", "table_overpowered": "report", "selection": "report", "install_vae": "report",
                "all": None, "table1": None}
TRANSFER_BATCH = 128  # madvae.attacks.blackbox.train_substitute's default
EXTENSIONS = {"sets": ".h5", "models": ".pt", "eval": ".json", "tables": ".md", "figures": ".png"}


@dataclass
class Work:
    rate: str  # a bench rate (bench/rates.py RATES)
    amount: float  # in that rate's units
    what: str  # how the amount comes about, for the printout
    batch: int | None = None  # the job's batch size, to pick the bench figure measured nearest to it
    setting: dict = field(default_factory=dict)  # what the rate is scaled to (noise draws, decodings, ...)


@dataclass
class Job:
    rule: str
    name: str
    needs: list[str]
    work: list[Work]
    threads: int = 1
    output: str | None = None  # one of its files under results_dir, a Snakemake target (None: a rule target)


def train_rate(arch: str) -> str:
    return "classifier-train" if arch == "magnet" else f"substitute-{arch}-train"


def attack_work(entry: dict, n: int, batch: int) -> Work:
    """A `madvae gen` attack on n images: per image, per iteration (CW, MI-FGSM, PGD) or per pixel tried."""
    attack = entry["attack"]
    params = resolve_params(attack, entry["preset"], entry["params"], entry["quick"])
    if attack == "cw":
        iterations = params["max_iterations"] * params["binary_search_steps"]
        return Work("cw", n * iterations, f"{n:,} images x {iterations:,} iterations", batch)
    if attack in ("mifgsm", "pgd"):
        return Work(attack, n * params["nb_iter"], f"{n:,} images x {params['nb_iter']} iterations", batch)
    if attack == "single-pixel":  # an upper bound: an image stops at its first fooling pixel
        return Work(attack, n * params["max_pixels"], f"{n:,} images x {params['max_pixels']} pixels", batch)
    return Work(attack, n, f"{n:,} images", batch)


def _query_attack_work(attack, params, n, *, defended: bool) -> list:
    """AutoAttack and Square as gradient steps through the defense and forward passes (queries), as if every
    component ran on every image (an upper bound: each runs only on the images the ones before left correct).
    A FAB-T step takes the gradients of all ten logits: ten steps."""
    if attack == "autoattack":
        targets = params["target_classes"]
        steps = params["apgd_steps"] * (1 + targets) + 10 * params["fab_steps"] * targets
        queries, what = params["square_queries"], (f"{n:,} images x ({params['apgd_steps']} APGD steps x "
                                                   f"{1 + targets} + FAB-T), {params['square_queries']} queries")
    else:
        steps, queries, what = 0, params["n_queries"], f"{n:,} images x {params['n_queries']} queries"
    gradient = [Work("adaptive-pgd-e2e" if defended else "classifier-step", n * steps, what, 250)] if steps else []
    forward = [Work("purify", n * (queries + 2), f"{n:,} images x {queries + 2}", 250)] if defended else []
    return gradient + forward + [Work("classify", n * (queries + 2), f"{n:,} images x {queries + 2}")]


class _Planner:
    """Walks the workflow's rules in its order and collects the jobs the config makes."""

    def __init__(self, config: dict):
        self.config, self.wf = config, workflow_names(config)
        limits = config["dataset"]["limit"]
        sizes = SPLIT_SIZES[config["dataset"]["name"]]
        self.split = {s: min(sizes[s], limits.get(s) or math.inf) for s in sizes}
        self.set_size, self.jobs = {}, []
        self.seed = ""  # the folder of the seed being planned (the workflow's PER_SEED): "" for one seed

    def add(self, rule, name, needs, work, output=None):
        step = STEP_OF_RULE[rule]
        threads = self.config["resources"][step]["cpus_per_task"] if step else 0
        if step:  # every process pays the interpreter's and torch's start
            work = [Work("startup", 1, "1 job"), *work]
        folder = name.removeprefix(self.seed).split("/")[0]
        output = output or (name + EXTENSIONS[folder] if "/" in name else None)
        self.jobs.append(Job(rule, name, list(needs), [w for w in work if w.amount], threads, output))
        return name

    def clean(self, split):
        return f"sets/{self.wf.DATASET}_{split}"

    def plan(self) -> list[Job]:
        for split in ("train", "test") + (("val",) if self.wf.SWEEPS else ()):
            n = self.split[split]
            self.add("clean_set", self.clean(split), [], [Work("clean-set", n, f"{n:,} images")])
        self.classifier()
        self.gen_sets()
        for seed in self.wf.SEEDS:  # the purifiers and every evaluation, once per seed
            self.seed = self.wf.PER_SEED.format(seed=seed)
            self.purifiers()
            self.whitebox()
            self.blackbox()
            self.overpowered()
            self.adaptive()
            self.curves()
        self.seed = self.wf.FIRST_SEED  # the figures use the first seed's purifiers
        self.figures()
        self.tables()
        return self.jobs

    def classifier(self):
        model, n, test = self.config["classifier"], self.split["train"], self.split["test"]
        batch = model["batch_size"] or ARCH_DEFAULTS.get(model["arch"], SUBSTITUTE_DEFAULTS)["batch_size"]
        self.add("classifier", "models/classifier", [self.clean("train"), self.clean("test")],
                 [Work(train_rate(model["arch"]), model["epochs"] * n, f"{model['epochs']} epochs x {n:,} images",
                       batch), Work("classify", test, f"{test:,} test images")])
        epochs = self.wf.BLACKBOX["substitute_epochs"]
        for arch in self.wf.BLACKBOX["paper"]:
            self.add("substitute", f"models/substitute_{arch}", [self.clean("train"), self.clean("test")],
                     [Work(train_rate(arch), epochs * n, f"{epochs} epochs x {n:,} images",
                           SUBSTITUTE_DEFAULTS["batch_size"])])

    def gen_sets(self):
        batch = self.config["gen"]["batch_size"]
        wf = self.wf
        for split, entries in (("train", wf.TRAIN_ATTACKS), ("test", wf.TEST_ATTACKS),
                               ("val", wf.VAL_ATTACKS if wf.SWEEPS else {})):  # validation sets only for a sweep
            for name, entry in entries.items():
                n = min(entry["limit"] or math.inf, self.split[split])
                path = self.add(f"gen_{split}", f"sets/{split}/{name}", [self.clean(split), "models/classifier"],
                                [attack_work(entry, n, batch)])
                self.set_size[path] = n

    def vae_work(self, variant, values) -> tuple[list[str], Work]:
        entry = self.wf.VARIANTS[variant]
        loss = entry["loss"]
        sets = [self.clean("train")] if loss == "identity" else [f"sets/train/{n}" for n in self.wf.TRAIN_ATTACKS]
        total = self.split["train"] if loss == "identity" else sum(self.set_size[s] for s in sets)
        per_epoch = entry.get("pairs_per_epoch", self.config["vae"].get("pairs_per_epoch"))
        pairs = min(per_epoch, total) if per_epoch else total
        epochs = values["epochs"] or DEFAULT_EPOCHS[loss]
        needs = sets + (["models/classifier"] if loss in self.wf.USES_CLASSIFIER else [])
        return needs, Work(f"vae-{loss}", epochs * pairs, f"{epochs} epochs x {pairs:,} pairs", values["batch_size"])

    def purifiers(self):
        candidates = []
        for variant in self.wf.VARIANTS:
            first = {key: listed[0] for key, listed in self.wf.option_values(variant).items()}
            if variant not in self.wf.SWEEPS:
                needs, work = self.vae_work(variant, first)
                self.add("train", f"{self.seed}models/vae_{variant}", needs, [work])
                continue
            for combo, options in self.wf.SWEEPS[variant].items():
                needs, work = self.vae_work(variant, {**first, **options})
                model = self.add("train_candidate", f"models/sweep/{variant}/{combo}/vae", needs, [work])
                for setting in self.wf.VAL_ATTACKS:
                    candidates.append(self.add("attack_val", f"eval/sweep/{variant}/{combo}/{setting}",
                                               [f"sets/val/{setting}", "models/classifier", model],
                                               self.eval_work(self.set_size[f"sets/val/{setting}"], True)))
                candidates.append(model)
        if self.wf.SWEEPS:
            self.add("selection", "tables/selection", candidates, [])
            for variant in self.wf.SWEEPS:
                self.add("install_vae", f"models/vae_{variant}", ["tables/selection"], [])

    def eval_work(self, n, defended: bool) -> list[Work]:
        """`madvae attack` on a stored set: x_clean and x_adv classified, and purified first when defended."""
        work = [Work("classify", 2 * n, f"2 x {n:,} images")]
        if defended:
            samples = self.config["evaluate"]["samples"]
            work.append(Work("purify", 2 * n, f"2 x {n:,} images", self.config["evaluate"]["batch_size"],
                             {"samples": samples}))
        return work

    def whitebox(self):
        for attack in self.wf.TEST_ATTACKS:
            test_set = f"sets/test/{attack}"
            for defense in self.wf.DEFENSES:
                needs = [test_set, "models/classifier"] + ([f"{self.seed}models/vae_{defense}"]
                                                           if defense != "none" else [])
                rule = "attack_undefended" if defense == "none" else "attack_defended"
                self.add(rule, f"{self.seed}eval/{defense}/{attack}", needs,
                         self.eval_work(self.set_size[test_set], defense != "none"))

    def defended_needs(self, defense, model="models/classifier"):
        return [self.clean("test"), model] + ([f"{self.seed}models/vae_{defense}"] if defense != "none" else [])

    def blackbox(self):
        box = self.wf.BLACKBOX
        n = min(box.get("limit") or math.inf, self.split["test"])
        for defense in self.wf.DEFENSES:
            for arch in box["paper"]:  # FGSM on the substitute (forward + backward), its 2 forward passes
                work = [Work(train_rate(arch), n * (1 + 2 / 3), f"{n:,} images: FGSM + 2 forward passes, as "
                             f"{1 + 2 / 3:.2f} training steps")]
                if defense != "none":
                    work.append(Work("purify", 2 * n, f"2 x {n:,} images", 500))
                self.add("attack_blackbox_paper", f"{self.seed}eval/blackbox-paper/{defense}/{arch}",
                         self.defended_needs(defense, f"models/substitute_{arch}"), work)
            for arch in box["transfer"]:
                self.add("attack_blackbox_transfer", f"{self.seed}eval/blackbox-transfer/{defense}/{arch}",
                         self.defended_needs(defense), self.transfer_work(arch, defense != "none", n))

    def transfer_work(self, arch, defended, pool) -> list[Work]:
        """Papernot substitute training on the target's answers, then FGSM on the rest (evaluate_blackbox)."""
        box = self.wf.BLACKBOX
        params = resolve_params(SUBSTITUTE_TRAINING, "test", box["transfer_params"], box["quick"])
        held, rounds, epochs = params["holdout"], params["rounds"], params["substitute_epochs"]
        trained = epochs * held * (2 ** rounds - 1)  # round r trains on held * 2**r images
        augmented, queries, rest = held * (2 ** (rounds - 1) - 1), held * 2 ** (rounds - 1), pool - held
        oracle = "purify" if defended else "classify"
        work = [Work(train_rate(arch), trained, f"{rounds} rounds x {epochs} epochs on {held:,} to "
                     f"{queries:,} images", TRANSFER_BATCH),
                Work(train_rate(arch), augmented + rest * (1 + 1 / 3),
                     f"Jacobian steps on {augmented:,} images, FGSM + labels on {rest:,}, as training steps"),
                Work(oracle, queries, f"{queries:,} oracle queries"),
                Work("classify", 2 * rest, f"2 x {rest:,} images")]
        if defended:
            work.append(Work("purify", 2 * rest, f"2 x {rest:,} images", 500))
        return work

    def overpowered_setting(self) -> dict:
        preset = self.wf.OVERPOWERED["preset"]
        return {"n": OVERPOWERED_PRESETS[preset]["n"],
                **resolve_params("overpowered", preset, self.wf.OVERPOWERED["params"])}

    def overpowered(self):
        op = self.overpowered_setting()
        n = self.wf.OVERPOWERED.get("limit") or min(op["n"], self.split["test"])
        norms = len(op["norms"])
        for variant in self.wf.overpowered_variants():
            self.add("attack_overpowered", f"{self.seed}eval/overpowered/{variant}", self.defended_needs(variant),
                     [Work("overpowered", n * norms * op["restarts"] * op["steps"],
                           f"{n:,} images x {norms} norms x {op['restarts']} restarts x {op['steps']:,} steps, "
                           f"{op['noise_samples']} noise draws", 100, {"noise_samples": op["noise_samples"]}),
                      Work("purify", n * (norms + 1), f"{n:,} images x {norms + 1}", 100)])

    def adaptive(self):
        box = self.wf.ADAPTIVE
        n = min(box.get("limit") or math.inf, self.split["test"])
        for defense in self.wf.DEFENSES:
            for attack in box["attacks"]:
                params = resolve_params(attack, "test", box["params"], box["quick"])
                self.add("attack_adaptive", f"{self.seed}eval/adaptive/{defense}/{attack}", self.defended_needs(defense),
                         self.adaptive_work(attack, params, n, defense))

    def curves(self):
        """One job per attack and defense: the attack at every eps above 0 of the grid (eps 0 is scored only)."""
        box = self.wf.CURVES
        n = min(box.get("limit") or math.inf, self.split["test"])
        points = sum(eps > 0 for eps in box["eps"])
        for defense in self.wf.DEFENSES:
            for attack in box["attacks"]:
                params = resolve_params(attack, "test", [], box["quick"])
                work = self.adaptive_work(attack, params, n * points, defense) if points else []
                self.add("attack_curve", f"{self.seed}eval/curves/{defense}/{attack}", self.defended_needs(defense),
                         work + [Work("classify", 2 * n, f"2 x {n:,} images at eps 0")])

    def adaptive_work(self, attack, params, n, defense) -> list:
        if "nb_iter" not in params:  # autoattack, square: in the PGD family's units
            return _query_attack_work(attack, params, n, defended=defense != "none")
        steps = params["nb_iter"] * params["restarts"]
        what = f"{n:,} images x {params['nb_iter']} steps x {params['restarts']} restarts"
        eot = {"eot_samples": params["eot_samples"], "samples": self.wf.ADAPTIVE["eot_defense_samples"]} \
            if attack == "eot" else {}
        if defense == "none":  # every attack is plain PGD on the classifier
            work = [Work("classifier-step", n * steps, what)]
        else:
            work = [Work(f"adaptive-{attack}", n * steps, what, 250, eot),
                    Work("purify", 2 * n, f"2 x {n:,} images", 250, {"samples": eot.get("samples", 0)})]
        return work + [Work("classify", 2 * n, f"2 x {n:,} images")]

    def figures(self):
        embed, wf = self.config["embed"], self.wf
        n = min(embed["n"], self.split["test"])
        first_call = Work("umap-first-call", 1, "numba compiles UMAP once per job")
        self.add("embed_clean", "figures/umap/clean_input", [self.clean("test")],
                 [first_call, Work("umap", n, f"1 fit of {n:,} points")])
        variants = wf.embed_variants() if embed["spaces"] else []
        for attack in embed["attacks"]:
            m = min(embed["n"], self.set_size[f"sets/test/{attack}"])
            fits = 1 + len(variants) * len(embed["spaces"])
            self.add("embed_attack", f"figures/umap/{attack}",
                     [f"sets/test/{attack}", "models/classifier", *(f"{self.seed}models/vae_{v}" for v in variants)],
                     [first_call, Work("umap", fits * m, f"{fits} fits of {m:,} points"),
                      Work("purify", len(variants) * m, f"{len(variants)} x {m:,} images", 500)],
                     output=f"figures/umap/{attack}/input.png")
        op = self.overpowered_setting()
        m = min(wf.OVERPOWERED["figure_n"], self.split["test"])
        for variant in wf.overpowered_figure_variants():  # one norm; both figures from one joint fit each
            self.add("embed_overpowered", f"figures/umap/{variant}_overpowered", self.defended_needs(variant),
                     [first_call, Work("overpowered", m * op["restarts"] * op["steps"],
                                       f"{m:,} images x 1 norm x {op['restarts']} restarts x {op['steps']:,} steps, "
                                       f"{op['noise_samples']} noise draws", 100,
                                       {"noise_samples": op["noise_samples"]}),
                      Work("umap", 2 * 2 * m, f"2 fits of {2 * m:,} points")],
                     output=f"figures/umap/{variant}_overpowered-latent.png")
        vaes = [f"{self.seed}models/vae_{v}" for v in wf.VARIANTS]
        for attack in wf.TEST_ATTACKS:
            self.add("samples", f"figures/samples/{attack}", [f"sets/test/{attack}", "models/classifier", *vaes], [])
        self.add("curves", "figures/training_curves", vaes, [])

    def tables(self):
        wf, finals = self.wf, [job.name for job in self.jobs if job.rule.startswith(("embed_", "samples", "curves"))]
        for table, (_, evaluations) in wf.ROW_TABLES.items():
            paths = evaluations()
            if paths:
                needs = [path[len(wf.R) + 1:].removesuffix(".json") for path in paths]
                paper = wf.config.get("report", {}).get("paper") and table in ("whitebox", "blackbox_paper")
                finals.append(self.add("tables_paper" if paper else "tables", f"tables/{table}", needs, []))
        overpowered = [path[len(wf.R) + 1:].removesuffix(".json") for path in wf.overpowered_evaluations()]
        if overpowered:
            finals.append(self.add("table_overpowered", "tables/overpowered", overpowered, []))
        curves = [path[len(wf.R) + 1:].removesuffix(".json") for path in wf.curve_evaluations()]
        if curves:
            finals.append(self.add("table_security", "tables/security", curves, []))
        self.add("all", "all", finals + overpowered, [])
        self.add("table1", "table1", ["tables/whitebox"], [])


def workflow_jobs(config: dict, targets=("all",)) -> list[Job]:
    """The jobs `snakemake TARGETS` runs from scratch for this (effective) config, in the workflow's order.
    ``targets``: all, table1 or job names (outputs without results_dir and extension, e.g. tables/adaptive)."""
    jobs = _Planner(config).plan()
    by_name = {job.name: job for job in jobs}
    targets = [targets] if isinstance(targets, str) else list(targets)
    unknown = [target for target in targets if target not in by_name]
    if unknown:
        raise ValueError(f"unknown target {unknown[0]!r}: give all, table1 or a job's name ({jobs[-3].name}, ...)")
    wanted, stack = set(), targets
    while stack:
        name = stack.pop()
        if name not in wanted:
            wanted.add(name)
            stack += by_name[name].needs
    return [job for job in jobs if job.name in wanted]
