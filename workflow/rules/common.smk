# Helpers: names, target lists and per-job inputs/options, all computed from the validated config.
import os
import re
import shlex
import sys

from snakemake.exceptions import WorkflowError

# the rules call `madvae`: find the one installed beside the Python running Snakemake, even when its
# environment is not activated (`.venv/bin/snakemake`, `make workflow`, SLURM job steps)
os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])

R = config["results_dir"]
DATASET = config["dataset"]["name"]
DEVICE = config["device"]
RES = config["resources"]
USES_CLASSIFIER = ("classification", "combined")
TABLES = ("tables/whitebox_accuracy.csv", "tables/whitebox_agreement.csv", "tables/whitebox.md")


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


def train_setting_name(entry):
    return setting_name(entry, None)


def test_setting_name(entry):
    return setting_name(entry, "test")


def variant_name(entry):
    return entry.get("name", entry["loss"])


TRAIN_ATTACKS = by_name(config["train_attacks"], train_setting_name, "train_attacks")
TEST_ATTACKS = by_name(config["test_attacks"], test_setting_name, "test_attacks")
VARIANTS = by_name([v for v in config["variants"] if v["enabled"]], variant_name, "variants")


def check_config():
    """Cross-references the schema cannot express."""
    if not VARIANTS:
        raise WorkflowError("config variants: every entry is disabled; enable at least one")
    seen = {}
    for name, entry in TEST_ATTACKS.items():
        if entry["attack"] in seen:  # madvae report keys its rows by attack
            raise WorkflowError(f"config test_attacks: {seen[entry['attack']]!r} and {name!r} are both "
                                f"{entry['attack']}; the white-box table has one row per attack")
        seen[entry["attack"]] = name
    embed = config["embed"]
    for key, known in (("attacks", TEST_ATTACKS), ("variants", VARIANTS)):
        unknown = sorted(set(embed[key] or ()) - set(known))
        if unknown:
            raise WorkflowError(f"config embed.{key}: {', '.join(unknown)} not among the enabled "
                                f"{'test_attacks' if key == 'attacks' else 'variants'} ({', '.join(known)})")


check_config()


def name_regex(names):
    return "|".join(re.escape(name) for name in names)


# --- targets ---


def clean_set(split):
    return res(f"sets/{DATASET}_{split}.h5")


def train_sets():
    return [res(f"sets/train/{name}.h5") for name in TRAIN_ATTACKS]


def evaluations():
    return [res(f"eval/{defense}/{attack}.json") for defense in ["none", *VARIANTS] for attack in TEST_ATTACKS]


def figures():
    embed = config["embed"]
    variants = VARIANTS if embed["variants"] is None else embed["variants"]
    paths = [res("figures/umap/clean_input.png")]
    for attack in embed["attacks"]:
        paths.append(res(f"figures/umap/{attack}/input.png"))
        paths += [res(f"figures/umap/{attack}/{v}_{space}.png") for v in variants for space in embed["spaces"]]
    return paths


def final_outputs():
    return [res(table) for table in TABLES] + figures()


# --- per-job inputs and command-line options (params functions return shell-quoted text) ---


def options(*items):
    return shlex.join(str(item) for item in items)


def clean_options(wildcards):
    source = config["dataset"]
    items = []
    if source["root"]:
        items += ["--root", source["root"]]
    if source["download"]:
        items.append("--download")
    if source["limit"][wildcards.split]:
        items += ["--limit", source["limit"][wildcards.split]]
    return options(*items)


def classifier_options(wildcards):
    model = config["classifier"]
    items = ["--arch", model["arch"], "--epochs", model["epochs"], "--lr", model["lr"]]
    if model["batch_size"]:
        items += ["--batch-size", model["batch_size"]]
    return options(*items)


def gen_options(entry):
    items = ["--attack", entry["attack"], "--preset", entry["preset"], "--batch-size", config["gen"]["batch_size"]]
    for param in entry["params"]:
        items += ["--param", param]
    if entry["quick"]:
        items.append("--quick")
    if entry["limit"]:
        items += ["--limit", entry["limit"]]
    return options(*items)


def train_attack_options(wildcards):
    return gen_options(TRAIN_ATTACKS[wildcards.setting])


def test_attack_options(wildcards):
    return gen_options(TEST_ATTACKS[wildcards.attack])


def vae_input(wildcards):
    """identity learns x_clean -> x_clean from the clean set; the others learn from every adversarial set."""
    loss = VARIANTS[wildcards.variant]["loss"]
    inputs = {"sets": [clean_set("train")] if loss == "identity" else train_sets()}
    if loss in USES_CLASSIFIER:
        inputs["classifier"] = res("models/classifier.pt")
    return inputs


def vae_options(wildcards, input):
    variant = VARIANTS[wildcards.variant]
    items = ["--loss", variant["loss"]]
    if variant["epochs"]:
        items += ["--epochs", variant["epochs"]]
    for key in ("batch_size", "lr", "alpha", "sigma", "beta", "gamma"):
        items += [f"--{key.replace('_', '-')}", variant.get(key, config["vae"][key])]
    if "classifier" in input.keys():
        items += ["--classifier", input.classifier]
    return options(*items)


def evaluate_options(wildcards):
    return options("--batch-size", config["evaluate"]["batch_size"], "--samples", config["evaluate"]["samples"])


def embed_options(wildcards):
    embed = config["embed"]
    return options("--n", embed["n"], "--width", embed["width"], "--height", embed["height"], "--dpi", embed["dpi"])


def embed_prefix(wildcards, output):
    """madvae embed takes a prefix and writes <prefix>.png and <prefix>.csv."""
    return os.path.splitext(output.png)[0]


def table_dir(wildcards, output):
    return os.path.dirname(output.markdown)
