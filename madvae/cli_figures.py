"""The `madvae embed` and `madvae report` verbs: UMAP figures, tables, sample grids and training curves."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from madvae.cli_options import (DeviceOpt, Device, EmbedColour, EmbedSpace, OverpoweredPreset, ProgressOpt,
                                ReportKind, SeedOpt, SetField, fail_cleanly, given_options)
from madvae.errors import UsageError, does_not_apply
from madvae.evaluate import option_name

# --- embed (issue 3: madvae/embed.py) ---


def refuse_stray(given: set, applies: dict, what: str) -> None:
    """``applies``: {option: whether it applies to ``what``}; one given that does not is a usage error."""
    stray = [name for name, used in applies.items() if name in given and not used]
    if stray:
        raise does_not_apply(map(option_name, stray), what)


@fail_cleanly
def embed(
    ctx: typer.Context,
    set_path: Annotated[Path, typer.Argument(metavar="SET.h5", help="HDF5 set to embed.")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", metavar="PREFIX", help="One figure: writes PREFIX.csv and PREFIX.png.")]
    = None,
    out_dir: Annotated[Optional[Path], typer.Option(metavar="DIR", 
        help="Several figures of the same samples in one run (UMAP compiles once): DIR/input.* and "
             "DIR/NAME_SPACE.* for each --vae and each --space but input.")] = None,
    space: Annotated[Optional[list[EmbedSpace]], typer.Option(metavar="SPACE", 
        help="input: the images; latent: VAE means; output: VAE outputs; overpowered-latent / overpowered-output: "
             "latent means / VAE outputs of the clean images before and after the Overpowered Attack, side by "
             "side (paper Figures 6 and 5; needs --classifier). Repeatable with --out-dir. Default: input.")]
    = None,
    colour: Annotated[EmbedColour, typer.Option(help="true labels, or the classifier's predicted labels.")]
    = EmbedColour.true,
    field: Annotated[Optional[SetField], typer.Option(help="Images to use. Default: x_adv when the set has it.")]
    = None,
    vae: Annotated[Optional[list[str]], typer.Option(
        metavar="[NAME=]PATH", help="VAE checkpoint (needed for latent and output). Repeatable with --out-dir; "
                                    "NAME (default: the file stem) names its figures.")] = None,
    classifier: Annotated[Optional[Path], typer.Option(metavar="CKPT.pt", help="Classifier checkpoint (needed for --colour predicted).")]
    = None,
    n: Annotated[int, typer.Option("--n", metavar="N", min=1, help="Random samples to embed (all if the set is smaller).")] = 3000,
    width: Annotated[float, typer.Option(metavar="X", min=1, help="Figure width in inches (paper: 14).")] = 7.0,
    height: Annotated[float, typer.Option(metavar="X", min=1, help="Figure height in inches (paper: 10).")] = 5.0,
    dpi: Annotated[int, typer.Option(metavar="N", min=50, max=1200, help="Figure resolution (paper: 300).")] = 150,
    norm: Annotated[Optional[float], typer.Option(metavar="X", 
        help="Overpowered spaces: the attack's robustness norm, the L2 norm of its noise. Default: 1.0, the "
             "paper's figures'.")] = None,
    preset: Annotated[Optional[OverpoweredPreset], typer.Option(
        help="Overpowered spaces: the attack's settings, quick (CPU) or paper. Default: quick.")] = None,
    param: Annotated[Optional[list[str]], typer.Option(metavar="KEY=VALUE", 
        help="Overpowered spaces: override restarts, steps or noise_samples, e.g. --param steps=10 (repeatable).")]
    = None,
    seed: SeedOpt = 42, device: DeviceOpt = Device.auto, progress: ProgressOpt = True,
):
    """UMAP figures and coordinates of images, VAE latent means or VAE outputs (paper section 3.4), and of
    latents and outputs before and after the Overpowered Attack (section 3.5). Overpowered figures are two
    panels, each --width wide."""
    from madvae.embed import embed_figures, plan_figures

    spaces = [s.value for s in space or [EmbedSpace.input]]
    attacked = any(name.startswith("overpowered") for name in spaces)
    # (--norm, --preset and --param without an Overpowered space: madvae.embed refuses them)
    refuse_stray(given_options(ctx), {"classifier": attacked or colour is EmbedColour.predicted},
                 f"--space {', '.join(spaces)} with --colour {colour.value}")
    overpowered = {"params": param} if param else {}
    if norm is not None:
        overpowered["norm"] = norm
    if preset is not None:
        overpowered["preset"] = preset.value
    figures = plan_figures(spaces, vae or [], out=out, out_dir=out_dir)
    written = embed_figures(set_path, figures, field=field.value if field else None, classifier_path=classifier,
                            colour=colour.value, n=n, seed=seed, device=device.value, figsize=(width, height),
                            dpi=dpi, progress=progress, overpowered=overpowered)
    for info in written:
        attacked = (f", Overpowered Attack at norm {float(info['norm'])}: {info['budget_fraction']:.0%} within "
                    "its L2 budget" if "norm" in info else "")
        typer.echo(f"{info['png']}: UMAP of {info['n']} {info['space']}-space samples ({info['field']}, defense "
                   f"{info['defense']}{attacked}, coloured by {info['colour']} label); coordinates in {info['csv']}")


# --- report (issue 3: madvae/report.py) ---


@fail_cleanly
def report(
    ctx: typer.Context,
    inputs: Annotated[list[Path], typer.Argument(
        metavar="INPUT", help="Tables: result JSON files of `madvae attack`, or folders. samples: one adversarial "
                              "set. curves: training logs ([NAME=]<vae>.steps.csv or .train.csv of `madvae train`).")],
    out_dir: Annotated[Path, typer.Option("--out-dir", "-o", metavar="DIR", help="Folder for the tables or the figure.")],
    kind: Annotated[ReportKind, typer.Option(
        help="A table (Tables 1, 2 and 3 of the paper, and the adaptive attacks: from the results' kind), "
             "selection (a sweep's candidates on the validation sets: NAME.csv, NAME.md and the kept models in "
             "NAME.json), security (accuracy against eps from the `--eps-grid` curves: NAME_accuracy.csv, "
             "NAME_agreement.csv, NAME.md and NAME.png), or a figure: samples (clean / adversarial / purified "
             "digits), curves (training loss terms).")]
    = ReportKind.whitebox,
    name: Annotated[Optional[str], typer.Option(metavar="NAME", help="File name stem: NAME_accuracy.csv, NAME_agreement.csv, "
                                                     "NAME.md (overpowered: NAME.csv; figures: NAME.png). "
                                                     "Default: the kind.")] = None,
    classifier: Annotated[Optional[Path], typer.Option(metavar="CKPT.pt", help="samples: the classifier whose predictions are shown.")]
    = None,
    vae: Annotated[Optional[list[str]], typer.Option(
        metavar="[NAME=]PATH", help="samples: a purifier whose outputs make a row (repeatable).")] = None,
    device: DeviceOpt = Device.auto,
    criterion: Annotated[str, typer.Option(metavar="CRITERION", help="selection: mean-accuracy (over the validation attacks) or "
                                                "min-accuracy (the worst one).")] = "mean-accuracy",
    paper: Annotated[bool, typer.Option("--paper", help=(
        "whitebox, blackbox-paper, overpowered: also NAME_paper.md, NAME_paper.csv and NAME_claims.csv, ours beside "
        "the paper's Table 1, 2 or 3 on its metric, and its claims checked (full-MNIST test results only)."))]
    = False,
):
    """Tables shaped like the paper's (accuracy and agreement, CSV and Markdown), sample grids and training curves."""
    stem = name or kind.value.replace("-", "_")
    samples = kind is ReportKind.samples
    refuse_stray(given_options(ctx), {"classifier": samples, "vae": samples, "device": samples,
                                      "criterion": kind is ReportKind.selection},  # --paper: table_spec below
                 f"--kind {kind.value}")
    if paper:
        from madvae.paper import load_reference, table_spec

        table_spec(load_reference(), kind.value)  # the paper has Tables 1-3 only
    if kind is ReportKind.selection:
        from madvae.selection import write_selection

        record = write_selection(inputs, out_dir, name=stem, criterion=criterion)["record"]
        kept = ", ".join(f"{v}: {w['checkpoint']}" for v, w in record["selected"].items())
        typer.echo(f"{Path(out_dir) / stem}.{{csv,md,json}}: {len(record['candidates'])} candidates by "
                   f"{criterion}; kept {kept}")
        return
    if kind is ReportKind.security:
        from madvae.security import write_security

        written = write_security(inputs, out_dir, name=stem)
        table = written["table"]
        typer.echo(f"{', '.join(str(p) for p in written['files'].values())}: {len(table.rows)} curves x "
                   f"{len(table.columns)} eps ({table.dataset} {table.split}, n = {table.n})")
        return
    if kind in (ReportKind.samples, ReportKind.curves):
        from madvae import figures
        from madvae.util import named_paths

        png = Path(out_dir) / f"{stem}.png"
        if kind is ReportKind.curves:
            logs = {name: Path(path) for name, path in named_paths(
                [str(p) if "=" in str(p) else f"{p.name.split('.')[0]}={p}" for p in inputs], "INPUT").items()}
            typer.echo(f"{figures.training_curves(logs, png)}: training curves of {', '.join(logs)}")
            return
        if len(inputs) != 1 or classifier is None:
            raise UsageError("samples: give one adversarial set and --classifier")
        vaes = named_paths(vae or [], "--vae")
        figures.sample_grid(inputs[0], png, classifier_path=classifier, vaes=vaes, device=device.value)
        typer.echo(f"{png}: clean, adversarial and purified ({', '.join(vaes) or 'no purifier'}) samples")
        return
    if paper:
        from madvae.paper import write_with_paper as write_tables
    else:
        from madvae.report import write_tables

    written = write_tables(inputs, out_dir, name=stem, kind=kind.value)
    table = written["table"]
    for path in table.skipped:
        typer.echo(f"{path}: no row in the {kind.value} table (skipped)", err=True)
    files = ", ".join(str(path) for path in written["files"].values())
    typer.echo(f"{files}: {len(table.rows)} rows x {len(table.columns)} columns "
               f"({table.dataset} {table.split}, n = {table.n})")
    if paper:
        from madvae.paper import tally

        typer.echo(tally(written["comparison"]))
