# Helpers: names, target lists and per-job inputs/options, all computed from the validated config.
import math
import os
import re
import shlex

from snakemake.exceptions import WorkflowError

from madvae.attacks import ADAPTIVE_ATTACKS  # from this checkout: rules/deployment.smk put it first on sys.path
from madvae.registry import SUBSTITUTES, USES_CLASSIFIER

R = config["results_dir"]
DATASET = config["dataset"]["name"]
DEVICE = config["device"]
RES = config["resources"]
ROW_TABLE_FILES = ("{name}_accuracy.csv", "{name}_agreement.csv", "{name}.md")
# evaluation folders beside eval/<variant>/: a variant of one of these names would share its paths
RESERVED_NAMES = ("none", "blackbox-paper", "blackbox-transfer", "overpowered", "adaptive", "curves", "sweep")


def job_threads(kind):
    return RES[kind]["cpus_per_task"]


def grows_with_attempt(amount):
    """A resource that a retried job gets more of: a job killed at its time or memory limit (SLURM TIMEOUT,
    OUT_OF_MEMORY) is not rerun at the same limit; attempt 2 has twice the first, attempt 3 three times."""
    return lambda wildcards, attempt: amount * attempt


def job_resources(kind):
    """A rule's memory, run time and CPUs (config resources.<kind>). Its GPUs come from the workflow profile
    (profiles/default/profile.yaml), the site's partitions and account from the site profile (profiles/slurm)."""
    spec = RES[kind]
    return {
        "mem_mb": grows_with_attempt(spec["mem_mb"]),
        "runtime": grows_with_attempt(spec["runtime"]),
        "cpus_per_task": spec["cpus_per_task"],
    }


def res(path):
    """A path under the results folder (config results_dir, so tests can redirect it)."""
    return f"{R}/{path}"


def setting_name(entry, default_preset):
    """An attack setting's name: explicit, or <attack>[_<preset>][_<param><value>...]."""
    if "name" in entry:
        return entry["name"]
    parts = [entry["attack"]]
    if entry["preset"] != default_preset:
        parts.append(entry["preset"])
    for item in entry["params"]:
        key, value = item.split("=", 1)
        parts.append(f"{key}{re.sub(r'[^A-Za-z0-9.-]', '', value)}")
    return "_".join(parts)


def by_name(entries, name_of, what):
    """{name: entry}; two entries with one name would write one file, so that is an error."""
    named = {}
    for entry in entries:
        name = name_of(entry)
        if name in named:
            raise WorkflowError(f"config {what}: two entries are named {name!r}; give one a distinct 'name'")
        named[name] = entry
    return named


TRAIN_ATTACKS = by_name(config["train_attacks"], lambda entry: setting_name(entry, None), "train_attacks")
TEST_ATTACKS = by_name(config["test_attacks"], lambda entry: setting_name(entry, "test"), "test_attacks")
VARIANTS = by_name(
    [v for v in config["variants"] if v["enabled"]], lambda entry: entry.get("name", entry["loss"]), "variants"
)
DEFENSES = ["none", *VARIANTS]
BLACKBOX = config["blackbox"]
OVERPOWERED = config["overpowered"]
ADAPTIVE = config["adaptive"]
CURVES = config["curves"]
SEEDS = config["seeds"]
# several seeds: each seed's purifiers and evaluations under seeds/<seed>/ (a {seed} wildcard in those rules'
# paths); one seed: the plain paths, its value passed as --seed
PER_SEED = "seeds/{seed}/" if len(SEEDS) > 1 else ""
FIRST_SEED = PER_SEED.format(seed=SEEDS[0])  # the figures use the first seed's purifiers


def per_seed(path, under=""):
    """A per-seed rule's path pattern under results_dir (and under its logs/ or benchmarks/ folder)."""
    return os.path.join(under, f"{PER_SEED}{path}")


def first_seed(path):
    return res(f"{FIRST_SEED}{path}")


def seed_of(wildcards):
    return getattr(wildcards, "seed", SEEDS[0])


def seed_dir(wildcards):
    """The folder of this job's seed, for input functions."""
    return PER_SEED.format(seed=seed_of(wildcards))


def over_seeds(path):
    """A per-seed output's files, one per seed."""
    return [res(PER_SEED.format(seed=seed) + path) for seed in SEEDS]


def non_finite(value, where="config"):
    """Paths of the NaN and infinite numbers in the config: NaN passes every JSON-schema bound."""
    if isinstance(value, float) and not math.isfinite(value):
        return [where]
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in non_finite(item, f"{where}.{key}")]
    if isinstance(value, list):
        return [p for k, item in enumerate(value) for p in non_finite(item, f"{where}[{k}]")]
    return []


def check_config():
    """Cross-references the schema cannot express."""
    bad = non_finite(config)
    if bad:
        raise WorkflowError(f"{', '.join(bad)}: NaN or infinite; every number in the config must be finite")
    if not VARIANTS:
        raise WorkflowError("config variants: every entry is disabled; enable at least one")
    seen = {}
    for name, entry in TEST_ATTACKS.items():
        if entry["attack"] in seen:  # madvae report keys its rows by attack
            raise WorkflowError(
                f"config test_attacks: {seen[entry['attack']]!r} and {name!r} are both "
                f"{entry['attack']}; the white-box table has one row per attack"
            )
        seen[entry["attack"]] = name
    if config["report"]["paper"] and DATASET != "mnist":  # the paper's numbers are full-MNIST test numbers
        raise WorkflowError(
            f"config report.paper: the paper's tables compare with full MNIST only and "
            f"dataset.name is {DATASET}; set dataset.name: mnist or report.paper: false"
        )
    known = {key for name in ADAPTIVE["attacks"] for key in ADAPTIVE_ATTACKS[name].presets["test"]}
    stray = [item for item in ADAPTIVE["params"] if item.split("=", 1)[0] not in known]
    if stray:
        raise WorkflowError(
            f"config adaptive.params: {', '.join(stray)} is a parameter of none of the configured "
            f"adaptive attacks ({', '.join(ADAPTIVE['attacks']) or 'none'})"
        )
    if sorted(CURVES["eps"]) != CURVES["eps"]:
        raise WorkflowError(f"config curves.eps: {CURVES['eps']} must be ascending")
    reserved = sorted(set(VARIANTS) & set(RESERVED_NAMES))
    if reserved:
        raise WorkflowError(
            f"config variants: {', '.join(reserved)} is reserved for an evaluation folder; "
            "give the entry another 'name'"
        )
    for where, names, known in (
        ("embed.attacks", config["embed"]["attacks"], TEST_ATTACKS),
        ("embed.variants", config["embed"]["variants"], VARIANTS),
        ("overpowered.variants", OVERPOWERED["variants"], VARIANTS),
        ("overpowered.figure_variants", OVERPOWERED["figure_variants"], VARIANTS),
    ):
        unknown = sorted(set(names or ()) - set(known))
        if unknown:
            raise WorkflowError(
                f"config {where}: {', '.join(unknown)} not among the enabled "
                f"{'test_attacks' if known is TEST_ATTACKS else 'variants'} ({', '.join(known)})"
            )


check_config()


def name_regex(names):
    return "|".join(re.escape(name) for name in names)


def any_of(names):
    """A wildcard constraint for these names; with none, one that matches nothing (a rule left unused)."""
    return name_regex(names) or "(?!)"


# --- targets ---


def clean_set(split):
    return res(f"sets/{DATASET}_{split}.h5")


def evaluations():
    return [
        path for defense in DEFENSES for attack in TEST_ATTACKS for path in over_seeds(f"eval/{defense}/{attack}.json")
    ]


def figures():
    paths = [res("figures/umap/clean_input.png")]
    for attack in config["embed"]["attacks"]:
        paths += attack_figures("png", attack)
    if VARIANTS:
        paths += [res(f"figures/samples/{attack}.png") for attack in TEST_ATTACKS]
        paths.append(res("figures/training_curves.png"))
    return paths


def overpowered_variants():
    return list(VARIANTS) if OVERPOWERED["variants"] is None else OVERPOWERED["variants"]


def blackbox_evaluations(mode):
    return [
        path
        for defense in DEFENSES
        for arch in BLACKBOX[mode]
        for path in over_seeds(f"eval/blackbox-{mode}/{defense}/{arch}.json")
    ]


def overpowered_evaluations():
    return [path for variant in overpowered_variants() for path in over_seeds(f"eval/overpowered/{variant}.json")]


def curve_evaluations():
    return [
        path
        for defense in DEFENSES
        for attack in CURVES["attacks"]
        for path in over_seeds(f"eval/curves/{defense}/{attack}.json")
    ]


SECURITY_FILES = ("security_accuracy.csv", "security_agreement.csv", "security.md", "security.png")


def adaptive_evaluations():
    return [
        path
        for defense in DEFENSES
        for attack in ADAPTIVE["attacks"]
        for path in over_seeds(f"eval/adaptive/{defense}/{attack}.json")
    ]


# table name -> (madvae report --kind, its evaluations); a table whose grid is empty in the config is absent
ROW_TABLES = {
    "whitebox": ("whitebox", evaluations),
    "blackbox_paper": ("blackbox-paper", lambda: blackbox_evaluations("paper")),
    "blackbox_transfer": ("blackbox-transfer", lambda: blackbox_evaluations("transfer")),
    # the stored attacks' evaluations enter the adaptive table's per-image worst case
    "adaptive": ("adaptive", lambda: adaptive_evaluations() + evaluations() if adaptive_evaluations() else []),
}


def final_outputs():
    outputs = []
    for name, (_, evaluations_of) in ROW_TABLES.items():
        if evaluations_of():
            outputs += [res(f"tables/{pattern.format(name=name)}") for pattern in ROW_TABLE_FILES]
    if curve_evaluations():
        outputs += [res(f"tables/{file}") for file in SECURITY_FILES]
    if overpowered_evaluations():
        outputs += [res("tables/overpowered.csv"), res("tables/overpowered.md")]
        outputs += [
            path for variant in overpowered_variants() for path in over_seeds(f"figures/overpowered/{variant}.png")
        ]
    for variant in overpowered_figure_variants():
        outputs += overpowered_figures("png", variant)
    return outputs + figures()


# --- per-job inputs and command-line options (params functions return shell-quoted text) ---


def options(*items):
    return shlex.join(str(item) for item in items)
