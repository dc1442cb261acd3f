# Inputs and options of the rules in rules/classifier.smk.


def classifier_options(wildcards):
    model = config["classifier"]
    items = ["--arch", model["arch"], "--epochs", model["epochs"], "--lr", model["lr"]]
    if model["batch_size"]:
        items += ["--batch-size", model["batch_size"]]
    return options(*items)
