# Inputs and options of the rules in rules/gen.smk.


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
