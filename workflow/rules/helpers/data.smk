# Inputs and options of the rules in rules/data.smk.


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
