"""How the commands' help reads: an argument shows its metavar (``SET.h5...``), as the options do, instead of the
parser's ``{SET}`` on the usage line and ``SET <list[Path]>`` in the Arguments list."""
from __future__ import annotations

import re

import typer.core


class Command(typer.core.TyperCommand):
    """Every madvae verb."""

    def format_help(self, ctx, formatter) -> None:
        super().format_help(ctx, formatter)
        metavars = [p.metavar for p in self.params if isinstance(p, typer.core.TyperArgument) and p.metavar]
        if not metavars or not hasattr(formatter, "buffer"):
            return
        text = "".join(formatter.buffer)
        for metavar in metavars:
            text = text.replace("{" + metavar + "}", metavar)
            # "SET.h5 <list[Path]>  help": the type after the metavar goes, the help column keeps its place
            text = re.sub(rf"^(\s*{re.escape(metavar)}(?:\.\.\.)?)( <[^>]*>)", lambda m: m.group(1) + " " * len(m.group(2)),
                          text, flags=re.M)
        formatter.buffer[:] = [text]
