# Inputs and options of the rules in rules/train.smk, and the sweep grids (rules/sweep.smk trains their candidates).
import itertools

from madvae.registry import LOSS_VARIANTS, LOSS_WEIGHTS, SWEEP_OPTIONS


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
    return options(*items, "--seed", seed_of(wildcards))


def train_sets():
    return [res(f"sets/train/{name}.h5") for name in TRAIN_ATTACKS]


# a list for a training option trains one candidate per combination (rules/sweep.smk)
# weights a loss never reads: a list of one would train identical models, so it sweeps nothing there
UNUSED_WEIGHTS = {name: set(LOSS_WEIGHTS) - set(variant.weights) for name, variant in LOSS_VARIANTS.items()}


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
    return {
        os.path.join(*(f"{k}~{v}" for k, v in zip(swept, combo))): dict(zip(swept, combo))
        for combo in itertools.product(*(values[k] for k in swept))
    }


SWEEPS = {name: grid for name in VARIANTS if (grid := sweep_grid(name))}
if len(SEEDS) > 1 and SWEEPS:
    raise WorkflowError(
        f"config seeds: {SEEDS} with a sweep ({', '.join(SWEEPS)}); a sweep selects one model per "
        "variant and takes one seed: give seeds one entry, or no lists in the training options"
    )
