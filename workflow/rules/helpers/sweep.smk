# Inputs and options of the rules in rules/sweep.smk.

VAL_ATTACKS = by_name(config["validation"]["attacks"], lambda entry: setting_name(entry, "val"), "validation.attacks")


def sweep_candidates(variant, file="vae.pt"):
    """A swept variant's candidate files: file vae.pt, vae.train.csv or vae.steps.csv (madvae train's names)."""
    return [res(f"models/sweep/{variant}/{combo}/{file}") for combo in SWEEPS[variant]]


def val_evaluations():
    return [
        res(f"eval/sweep/{v}/{combo}/{attack}.json") for v in SWEEPS for combo in SWEEPS[v] for attack in VAL_ATTACKS
    ]


def installed_candidates(wildcards):
    """The install job's inputs: the selection and every candidate of the variant with its logs (the kept one is
    known only once the selection has run)."""
    files = {"selection": res("tables/selection.json")}
    for key, file in (("vaes", "vae.pt"), ("logs", "vae.train.csv"), ("curves", "vae.steps.csv")):
        files[key] = sweep_candidates(wildcards.variant, file)
    return files


def val_attack_options(wildcards):
    return gen_options(VAL_ATTACKS[wildcards.vsetting])
