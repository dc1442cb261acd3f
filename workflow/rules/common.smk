# Helpers: names, target lists and per-job inputs/options, all computed from the validated config.
import itertools
import math
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
ROW_TABLE_FILES = ("{name}_accuracy.csv", "{name}_agreement.csv", "{name}.md")
# evaluation folders beside eval/<variant>/: a variant of one of these names would share its paths
RESERVED_NAMES = ("none", "blackbox-paper", "blackbox-transfer", "overpowered", "adaptive", "sweep")


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
DEFENSES = ["none", *VARIANTS]
BLACKBOX = config["blackbox"]
OVERPOWERED = config["overpowered"]
ADAPTIVE = config["adaptive"]


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
            raise WorkflowError(f"config test_attacks: {seen[entry['attack']]!r} and {name!r} are both "
                                f"{entry['attack']}; the white-box table has one row per attack")
        seen[entry["attack"]] = name
    if config["report"]["paper"] and DATASET != "mnist":  # the paper's numbers are full-MNIST test numbers
        raise WorkflowError(f"config report.paper: the paper's tables compare with full MNIST only and "
                            f"dataset.name is {DATASET}; set dataset.name: mnist or report.paper: false")
    reserved = sorted(set(VARIANTS) & set(RESERVED_NAMES))
    if reserved:
        raise WorkflowError(f"config variants: {', '.join(reserved)} is reserved for an evaluation folder; "
                            "give the entry another 'name'")
    for where, names, known in (("embed.attacks", config["embed"]["attacks"], TEST_ATTACKS),
                                ("embed.variants", config["embed"]["variants"], VARIANTS),
                                ("overpowered.variants", OVERPOWERED["variants"], VARIANTS),
                                ("overpowered.figure_variants", OVERPOWERED["figure_variants"], VARIANTS)):
        unknown = sorted(set(names or ()) - set(known))
        if unknown:
            raise WorkflowError(f"config {where}: {', '.join(unknown)} not among the enabled "
                                f"{'test_attacks' if known is TEST_ATTACKS else 'variants'} ({', '.join(known)})")


check_config()


def name_regex(names):
    return "|".join(re.escape(name) for name in names)


# --- sweeps: a list for a training option trains one candidate per combination (rules/sweep.smk) ---

SWEEP_OPTIONS = ("alpha", "batch_size", "beta", "epochs", "gamma", "lr", "sigma")  # A-Z, as madvae.selection
# weights a loss never reads: a list of one would train identical models, so it sweeps nothing there
UNUSED_WEIGHTS = {"vanilla": ("alpha", "sigma", "gamma"), "identity": ("alpha", "sigma", "gamma"),
                  "classification": ("alpha", "sigma"), "proximity-distance": ("gamma",), "combined": ()}


def option_values(name):
    """{option: [values]} of a variant: its entry's, else vae:'s (epochs: the entry's only)."""
    entry, values = VARIANTS[name], {}
    for key in SWEEP_OPTIONS:
        value = entry.get(key) if key == "epochs" or key in entry else config["vae"][key]
        values[key] = value if isinstance(value, list) else [value]
    return values


def sweep_grid(name):
    """{path: {option: value}} per combination of the variant's swept options, the path readable and unique
    (e.g. gamma~0.1/sigma~1e-05, options in SWEEP_OPTIONS order); {} when nothing is swept."""
    values = option_values(name)
    swept = [k for k in SWEEP_OPTIONS if len(values[k]) > 1 and k not in UNUSED_WEIGHTS[VARIANTS[name]["loss"]]]
    if not swept:
        return {}
    return {os.path.join(*(f"{k}~{v}" for k, v in zip(swept, combo))): dict(zip(swept, combo))
            for combo in itertools.product(*(values[k] for k in swept))}


SWEEPS = {name: grid for name in VARIANTS if (grid := sweep_grid(name))}
VAL_ATTACKS = by_name(config["validation"]["attacks"], lambda entry: setting_name(entry, "val"), "validation.attacks")


def any_of(names):
    """A wildcard constraint for these names; with none, one that matches nothing (a rule left unused)."""
    return name_regex(names) or "(?!)"


def sweep_candidates(variant, file="vae.pt"):
    """A swept variant's candidate files: file vae.pt, vae.train.csv or vae.steps.csv (madvae train's names)."""
    return [res(f"models/sweep/{variant}/{combo}/{file}") for combo in SWEEPS[variant]]


def val_evaluations():
    return [res(f"eval/sweep/{v}/{combo}/{attack}.json")
            for v in SWEEPS for combo in SWEEPS[v] for attack in VAL_ATTACKS]


def installed_candidates(wildcards):
    """The install job's inputs: the selection and every candidate of the variant with its logs (the kept one is
    known only once the selection has run)."""
    files = {"selection": res("tables/selection.json")}
    for key, file in (("vaes", "vae.pt"), ("logs", "vae.train.csv"), ("curves", "vae.steps.csv")):
        files[key] = sweep_candidates(wildcards.variant, file)
    return files


def val_attack_options(wildcards):
    return gen_options(VAL_ATTACKS[wildcards.vsetting])


# --- targets ---


def clean_set(split):
    return res(f"sets/{DATASET}_{split}.h5")


def train_sets():
    return [res(f"sets/train/{name}.h5") for name in TRAIN_ATTACKS]


def evaluations():
    return [res(f"eval/{defense}/{attack}.json") for defense in ["none", *VARIANTS] for attack in TEST_ATTACKS]


def embed_variants():
    embed = config["embed"]
    return list(VARIANTS) if embed["variants"] is None else embed["variants"]


def attack_figure_names():
    """Figures of one attack, all drawn by its embed_attack job: its inputs, then each variant's spaces."""
    return ["input"] + [f"{v}_{space}" for v in embed_variants() for space in config["embed"]["spaces"]]


def attack_figures(ext, attack="{attack}"):
    return [res(f"figures/umap/{attack}/{name}.{ext}") for name in attack_figure_names()]


def attack_figure_reports():
    """The PNG outputs of embed_attack, each captioned and labelled for the HTML report."""
    common = {"category": "UMAP", "subcategory": "{attack}"}
    figures = [report(res("figures/umap/{attack}/input.png"), caption="../report/umap_attack.rst",
                      labels={"attack": "{attack}", "figure": "input, predicted label"}, **common)]
    for v in embed_variants():
        for space in config["embed"]["spaces"]:
            figures.append(report(res(f"figures/umap/{{attack}}/{v}_{space}.png"), caption="../report/umap_defense.rst",
                                  labels={"attack": "{attack}", "figure": f"{v} {space}, predicted label"}, **common))
    return figures


def embed_vaes():
    return [res(f"models/vae_{v}.pt") for v in embed_variants()] if config["embed"]["spaces"] else []


def figures():
    paths = [res("figures/umap/clean_input.png")]
    for attack in config["embed"]["attacks"]:
        paths += attack_figures("png", attack)
    if VARIANTS:
        paths += [res(f"figures/samples/{attack}.png") for attack in TEST_ATTACKS]
        paths.append(res("figures/training_curves.png"))
    return paths


def all_vaes():
    return [res(f"models/vae_{v}.pt") for v in VARIANTS]


def all_training_logs():
    return [res(f"models/vae_{v}.steps.csv") for v in VARIANTS]


def overpowered_variants():
    return list(VARIANTS) if OVERPOWERED["variants"] is None else OVERPOWERED["variants"]


def blackbox_evaluations(mode):
    return [res(f"eval/blackbox-{mode}/{defense}/{arch}.json") for defense in DEFENSES for arch in BLACKBOX[mode]]


def overpowered_evaluations():
    return [res(f"eval/overpowered/{variant}.json") for variant in overpowered_variants()]


def adaptive_evaluations():
    return [res(f"eval/adaptive/{defense}/{attack}.json") for defense in DEFENSES for attack in ADAPTIVE["attacks"]]


# table name -> (madvae report --kind, its evaluations); a table whose grid is empty in the config is absent
ROW_TABLES = {
    "whitebox": ("whitebox", evaluations),
    "blackbox_paper": ("blackbox-paper", lambda: blackbox_evaluations("paper")),
    "blackbox_transfer": ("blackbox-transfer", lambda: blackbox_evaluations("transfer")),
    # the stored attacks' evaluations enter the adaptive table's per-image worst case
    "adaptive": ("adaptive", lambda: adaptive_evaluations() + evaluations() if adaptive_evaluations() else []),
}


def table_evaluations(wildcards):
    return ROW_TABLES[wildcards.table][1]()


def table_kind(wildcards):
    return ROW_TABLES[wildcards.table][0]


def final_outputs():
    outputs = []
    for name, (_, evaluations_of) in ROW_TABLES.items():
        if evaluations_of():
            outputs += [res(f"tables/{pattern.format(name=name)}") for pattern in ROW_TABLE_FILES]
    if overpowered_evaluations():
        outputs += [res("tables/overpowered.csv"), res("tables/overpowered.md")]
        outputs += [res(f"figures/overpowered/{variant}.png") for variant in overpowered_variants()]
    for variant in overpowered_figure_variants():
        outputs += overpowered_figures("png", variant)
    return outputs + figures()


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
    """A plain variant's options (the first of any list it does not sweep), or a sweep candidate's."""
    values = {key: listed[0] for key, listed in option_values(wildcards.variant).items()}
    values.update(SWEEPS.get(wildcards.variant, {}).get(getattr(wildcards, "combo", None), {}))
    items = ["--loss", VARIANTS[wildcards.variant]["loss"]]
    if values["epochs"]:
        items += ["--epochs", values["epochs"]]
    for key in ("batch_size", "lr", "alpha", "sigma", "beta", "gamma"):
        items += [f"--{key.replace('_', '-')}", values[key]]
    per_epoch = VARIANTS[wildcards.variant].get("pairs_per_epoch", config["vae"].get("pairs_per_epoch"))
    if per_epoch:
        items += ["--pairs-per-epoch", per_epoch]
    if "classifier" in input.keys():
        items += ["--classifier", input.classifier]
    return options(*items)


def evaluate_options(wildcards):
    return options("--batch-size", config["evaluate"]["batch_size"], "--samples", config["evaluate"]["samples"])


def defended_input(wildcards):
    """The clean test set attacked on the fly, the target classifier, and the purifier unless defense none."""
    inputs = {"set": clean_set("test"), "classifier": res("models/classifier.pt")}
    if wildcards.defense != "none":
        inputs["vae"] = res(f"models/vae_{wildcards.defense}.pt")
    return inputs


def blackbox_paper_input(wildcards):
    inputs = defended_input(wildcards)
    del inputs["classifier"]  # the substitute is both the attacked and the classifying model
    inputs["substitute"] = res(f"models/substitute_{wildcards.arch}.pt")
    return inputs


def defense_items(wildcards, input):
    return [] if wildcards.defense == "none" else ["--vae", input.vae, "--defense-name", wildcards.defense]


def param_items(params):
    return [item for param in params for item in ("--param", param)]


def limit_items(limit):
    return ["--limit", limit] if limit else []


def blackbox_options(wildcards, input):
    items = defense_items(wildcards, input) + ["--param", f"eps={BLACKBOX['eps']}"]
    if "substitute" not in input.keys():  # transfer mode
        items += param_items(BLACKBOX["transfer_params"]) + (["--quick"] if BLACKBOX["quick"] else [])
    return options(*items, *limit_items(BLACKBOX.get("limit")))


def overpowered_options(wildcards):
    return options("--preset", OVERPOWERED["preset"], *param_items(OVERPOWERED["params"]),
                   *limit_items(OVERPOWERED.get("limit")))


# --- Overpowered clustering figures (paper Figures 5 and 6): one embed_overpowered job per variant ---

OVERPOWERED_SPACES = ("latent", "output")


def overpowered_figure_variants():
    variants = OVERPOWERED["figure_variants"]
    return embed_variants() if variants is None else variants


def overpowered_figures(ext, variant="{variant}"):
    """madvae embed --out-dir figures/umap --vae VARIANT=... names them VARIANT_overpowered-SPACE."""
    return [res(f"figures/umap/{variant}_overpowered-{space}.{ext}") for space in OVERPOWERED_SPACES]


def overpowered_figure_reports():
    return [report(path, caption="../report/umap_overpowered.rst", category="UMAP", subcategory="overpowered",
                   labels={"attack": "overpowered", "figure": f"{{variant}} {space}, before / after, true label"})
            for path, space in zip(overpowered_figures("png"), OVERPOWERED_SPACES)]


def overpowered_figure_options(wildcards):
    """Table 3's preset and params at the one figure norm (its norms list does not apply), embed's figure size."""
    embed = config["embed"]
    params = [param for param in OVERPOWERED["params"] if not param.startswith("norms=")]
    return options("--norm", OVERPOWERED["figure_norm"], "--preset", OVERPOWERED["preset"], *param_items(params),
                   "--n", OVERPOWERED["figure_n"], "--width", embed["width"], "--height", embed["height"],
                   "--dpi", embed["dpi"])


def adaptive_options(wildcards, input):
    items = defense_items(wildcards, input) + param_items(ADAPTIVE["params"])
    if ADAPTIVE["quick"]:
        items.append("--quick")
    if wildcards.adaptive == "eot" and wildcards.defense != "none":
        items += ["--samples", ADAPTIVE["eot_defense_samples"]]  # eot attacks the stochastic defense
    return options(*items, *limit_items(ADAPTIVE.get("limit")))


def embed_options(wildcards):
    embed = config["embed"]
    return options("--n", embed["n"], "--width", embed["width"], "--height", embed["height"], "--dpi", embed["dpi"])


def embed_prefix(wildcards, output):
    """madvae embed --out takes a prefix and writes <prefix>.png and <prefix>.csv."""
    return os.path.splitext(output.png)[0]


def embed_out_dir(wildcards, output):
    return os.path.dirname(output.figures[0])


def embed_space_options(wildcards):
    return options(*[item for space in config["embed"]["spaces"] for item in ("--space", space)])


def embed_vae_options(wildcards, input):
    if not config["embed"]["spaces"]:
        return ""
    return options(*[item for v, path in zip(embed_variants(), input.vaes) for item in ("--vae", f"{v}={path}")])


def sample_vae_options(wildcards, input):
    return options(*[item for v, path in zip(VARIANTS, input.vaes) for item in ("--vae", f"{v}={path}")])


def named_training_logs(wildcards, input):
    return options(*[f"{v}={path}" for v, path in zip(VARIANTS, input)])


def figure_dir(wildcards, output):
    return os.path.dirname(output.png)


def table_dir(wildcards, output):
    return os.path.dirname(output.markdown)
