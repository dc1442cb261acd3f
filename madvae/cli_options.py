"""What the `madvae` verbs share: choice types built from the registries, the common options and the one-line
error handling. Nothing here imports torch."""
from __future__ import annotations

import functools
from enum import Enum
from typing import Annotated, Optional

import typer

from madvae.attacks import OVERPOWERED_PRESETS, STORED_ATTACKS
from madvae.data import SOURCES
from madvae.errors import Interrupted, MadvaeError
from madvae.evaluate import MODES
from madvae.registry import (CLASSIFIERS, EMBED_COLOURS, EMBED_SPACES, PRECISIONS, SET_FIELDS, SUBSTITUTES,
                             VARIANTS)


def choices(name: str, values) -> type[Enum]:
    """A CLI choice type of a registry's names (a member per name, "-" read as "_": ``AttackName.single_pixel``)."""
    return Enum(name, {value.replace("-", "_"): value for value in values}, type=str)


Arch = choices("Arch", CLASSIFIERS)
SubstituteArch = choices("SubstituteArch", SUBSTITUTES)
AttackName = choices("AttackName", ["none", *STORED_ATTACKS])
Dataset = choices("Dataset", SOURCES)
LossVariant = choices("LossVariant", VARIANTS)
OverpoweredPreset = choices("OverpoweredPreset", OVERPOWERED_PRESETS)
AttackMode = choices("AttackMode", MODES)  # madvae.evaluate.MODES: its modules are imported when one runs


class Split(str, Enum):
    train = "train"
    val = "val"
    test = "test"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


DeviceOpt = Annotated[Device, typer.Option(help="Where to compute: auto picks CUDA when torch sees a GPU.")]
MAX_SEED = 2**63 - 1  # seeds are stored as HDF5 int64
SeedOpt = Annotated[int, typer.Option(metavar="N", min=0, max=MAX_SEED, help="Random seed: same seed, same output.")]
LimitOpt = Annotated[Optional[int], typer.Option(metavar="N", min=1, help="Use only the first N images (quick runs, tests).")]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar on stderr.")]


def given_options(ctx: typer.Context) -> set[str]:
    """The command's parameters the user set (command line or environment), even to their defaults."""
    return {name for name in ctx.params
            if getattr(ctx.get_parameter_source(name), "name", "") in ("COMMANDLINE", "ENVIRONMENT")}


def fail_cleanly(func):
    """Turn a MadvaeError into one line on stderr and its kind's exit code (madvae.errors), never a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except Interrupted as exc:
            typer.echo(f"madvae: interrupted: {exc}", err=True)
            raise typer.Exit(Interrupted.EXIT_CODE) from None
        except MadvaeError as exc:  # usage 2, bad input 65, cannot write 74 (madvae.errors)
            typer.echo(f"madvae: error: {exc}", err=True)
            raise typer.Exit(exc.EXIT_CODE) from None

    return wrapper


Precision = choices("Precision", PRECISIONS)
EmbedSpace = choices("EmbedSpace", EMBED_SPACES)
EmbedColour = choices("EmbedColour", EMBED_COLOURS)
SetField = choices("SetField", SET_FIELDS)


class ReportKind(str, Enum):
    whitebox = "whitebox"
    blackbox_paper = "blackbox-paper"
    blackbox_transfer = "blackbox-transfer"
    adaptive = "adaptive"
    overpowered = "overpowered"
    selection = "selection"
    samples = "samples"
    curves = "curves"
    security = "security"
