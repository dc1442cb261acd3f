# Inputs and options of the rules in rules/embed.smk, and the names of the figures they draw.

# Overpowered clustering figures (paper Figures 5 and 6): one embed_overpowered job per variant
OVERPOWERED_SPACES = ("latent", "output")


def overpowered_figure_variants():
    variants = OVERPOWERED["figure_variants"]
    return embed_variants() if variants is None else variants


def overpowered_figures(ext, variant="{variant}"):
    """madvae embed --out-dir figures/umap --vae VARIANT=... names them VARIANT_overpowered-SPACE."""
    return [res(f"figures/umap/{variant}_overpowered-{space}.{ext}") for space in OVERPOWERED_SPACES]


def embed_variants():
    embed = config["embed"]
    return list(VARIANTS) if embed["variants"] is None else embed["variants"]


def attack_figure_names():
    """Figures of one attack, all drawn by its embed_attack job: its inputs, then each variant's spaces."""
    return ["input"] + [f"{v}_{space}" for v in embed_variants() for space in config["embed"]["spaces"]]


def attack_figures(ext, attack="{attack}"):
    return [res(f"figures/umap/{attack}/{name}.{ext}") for name in attack_figure_names()]


# Snakemake's report(): a .smk line may not start with "report(" (the parser takes it for the report: keyword), and
# snakefmt puts long calls on lines of their own
captioned = report


def attack_figure_reports():
    """The PNG outputs of embed_attack, each captioned and labelled for the HTML report."""
    common = {"category": "UMAP", "subcategory": "{attack}"}
    figures = [
        captioned(
            res("figures/umap/{attack}/input.png"),
            caption="../report/umap_attack.rst",
            labels={"attack": "{attack}", "figure": "input, predicted label"},
            **common,
        )
    ]
    for v in embed_variants():
        for space in config["embed"]["spaces"]:
            figures.append(
                captioned(
                    res(f"figures/umap/{{attack}}/{v}_{space}.png"),
                    caption="../report/umap_defense.rst",
                    labels={"attack": "{attack}", "figure": f"{v} {space}, predicted label"},
                    **common,
                )
            )
    return figures


def embed_vaes():
    return [first_seed(f"models/vae_{v}.pt") for v in embed_variants()] if config["embed"]["spaces"] else []


def overpowered_figure_reports():
    return [
        captioned(
            path,
            caption="../report/umap_overpowered.rst",
            category="UMAP",
            subcategory="overpowered",
            labels={"attack": "overpowered", "figure": f"{{variant}} {space}, before / after, true label"},
        )
        for path, space in zip(overpowered_figures("png"), OVERPOWERED_SPACES)
    ]


def overpowered_figure_options(wildcards):
    """Table 3's preset and params at the one figure norm (its norms list does not apply), embed's figure size."""
    embed = config["embed"]
    params = [param for param in OVERPOWERED["params"] if not param.startswith("norms=")]
    return options(
        "--norm",
        OVERPOWERED["figure_norm"],
        "--preset",
        OVERPOWERED["preset"],
        *param_items(params),
        "--n",
        OVERPOWERED["figure_n"],
        "--width",
        embed["width"],
        "--height",
        embed["height"],
        "--dpi",
        embed["dpi"],
    )


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
