# Inputs and options of the rules in rules/attack.smk.


def evaluate_options(wildcards):
    return options(
        "--batch-size",
        config["evaluate"]["batch_size"],
        "--samples",
        config["evaluate"]["samples"],
        "--seed",
        seed_of(wildcards),
    )


def param_items(params):
    return [item for param in params for item in ("--param", param)]


def defended_input(wildcards):
    """The clean test set attacked on the fly, the target classifier, and the purifier unless defense none."""
    inputs = {"set": clean_set("test"), "classifier": res("models/classifier.pt")}
    if wildcards.defense != "none":
        inputs["vae"] = res(f"{seed_dir(wildcards)}models/vae_{wildcards.defense}.pt")
    return inputs


def blackbox_paper_input(wildcards):
    inputs = defended_input(wildcards)
    del inputs["classifier"]  # the substitute is both the attacked and the classifying model
    inputs["substitute"] = res(f"models/substitute_{wildcards.arch}.pt")
    return inputs


def defense_items(wildcards, input):
    """The purifier, if any, and the job's seed (every attack job's options start here)."""
    seed = ["--seed", seed_of(wildcards)]
    return seed if wildcards.defense == "none" else ["--vae", input.vae, "--defense-name", wildcards.defense, *seed]


def limit_items(limit):
    return ["--limit", limit] if limit else []


def blackbox_options(wildcards, input):
    items = defense_items(wildcards, input) + ["--param", f"eps={BLACKBOX['eps']}"]
    if "substitute" not in input.keys():  # transfer mode
        items += param_items(BLACKBOX["transfer_params"]) + (["--quick"] if BLACKBOX["quick"] else [])
    return options(*items, *limit_items(BLACKBOX.get("limit")))


def overpowered_options(wildcards):
    return options(
        "--preset",
        OVERPOWERED["preset"],
        *param_items(OVERPOWERED["params"]),
        "--seed",
        seed_of(wildcards),
        *limit_items(OVERPOWERED.get("limit")),
    )


def adaptive_options(wildcards, input):
    """adaptive.params reach the attacks that have them (eps all, nb_iter the PGD ones; check_config refuses a
    parameter none of the configured attacks has)."""
    spec = ADAPTIVE_ATTACKS[wildcards.adaptive]
    mine = [item for item in ADAPTIVE["params"] if item.split("=", 1)[0] in spec.presets["test"]]
    items = defense_items(wildcards, input) + param_items(mine)
    if ADAPTIVE["quick"]:
        items.append("--quick")
    if spec.decoding == "sampled" and wildcards.defense != "none":
        items += ["--samples", ADAPTIVE["eot_defense_samples"]]  # eot attacks the stochastic defense
    return options(*items, *limit_items(ADAPTIVE.get("limit")))


def curve_options(wildcards, input):
    items = defense_items(wildcards, input) + ["--eps-grid", ",".join(str(eps) for eps in CURVES["eps"])]
    if CURVES["quick"]:
        items.append("--quick")
    if ADAPTIVE_ATTACKS[wildcards.adaptive].decoding == "sampled" and wildcards.defense != "none":
        items += ["--samples", ADAPTIVE["eot_defense_samples"]]
    return options(*items, *limit_items(CURVES.get("limit")))
