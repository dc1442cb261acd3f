"""Snakemake script of rule install_vae: the kept candidate of one variant -> models/vae_<variant>.pt."""
import sys

from madvae.errors import MadvaeError
from madvae.selection import install_selected

with open(snakemake.log[0], "w") as log:  # noqa: F821 (snakemake is injected)
    try:
        done = install_selected(snakemake.input.selection, snakemake.wildcards.variant,  # noqa: F821
                                snakemake.output.vae)  # noqa: F821
    except MadvaeError as exc:  # one line in the log, as the madvae CLI would print it
        print(f"madvae: error: {exc}", file=log)
        sys.exit(2)
    options = ", ".join(f"{key} {value}" for key, value in done["options"].items())
    print(f"{done['out']}: kept {done['source']} ({options}) with its training logs", file=log)
