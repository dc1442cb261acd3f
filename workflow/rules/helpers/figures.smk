# Inputs and options of the rules in rules/figures.smk.


def all_vaes():
    return [first_seed(f"models/vae_{v}.pt") for v in VARIANTS]


def all_training_logs():
    return [first_seed(f"models/vae_{v}.steps.csv") for v in VARIANTS]


def sample_vae_options(wildcards, input):
    return options(*[item for v, path in zip(VARIANTS, input.vaes) for item in ("--vae", f"{v}={path}")])


def named_training_logs(wildcards, input):
    return options(*[f"{v}={path}" for v, path in zip(VARIANTS, input)])


def figure_dir(wildcards, output):
    return os.path.dirname(output.png)
