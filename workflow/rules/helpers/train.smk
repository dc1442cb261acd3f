# Inputs and options of the rules in rules/train.smk.


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
