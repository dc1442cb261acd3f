# Where the jobs' madvae comes from, under every --sdm, wherever Snakemake runs (README "Software").
import os
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake_interface_executor_plugins.settings import DeploymentMethod

# the source tree this workflow belongs to (workflow/rules/ -> the repository), wherever Snakemake runs from
SOURCE = Path(workflow.current_basedir.get_path_or_uri(secret_free=True)).resolve().parents[1]
if not (SOURCE / "madvae" / "__init__.py").is_file():
    raise WorkflowError(f"{SOURCE}: no madvae/ beside workflow/; run the workflow from a checkout of the repository")
# common.smk's registries come from this tree's madvae, also where Snakemake's own environment lacks it
# (--sdm conda); those modules import nothing outside the standard library
sys.path.insert(0, str(SOURCE))


def python_command(methods):
    """How the jobs start Python with this tree's madvae, by software deployment method (--sdm):
    none: the Python running Snakemake (its venv need not be activated), this tree first on PYTHONPATH;
    conda: the python of workflow/envs/madvae.yaml (dependencies only), this tree first on PYTHONPATH;
    apptainer: the python of the image (workflow/envs/madvae.def puts its venv first on PATH), which holds
    madvae installed: the host's tree is not inside the container."""
    if DeploymentMethod.APPTAINER in methods:
        return "python"
    python = "python" if DeploymentMethod.CONDA in methods else shlex.quote(sys.executable)
    return f"PYTHONPATH={shlex.quote(str(SOURCE))}${{PYTHONPATH:+:$PYTHONPATH}} {python}"


def container_image(image):
    """Config `container`: a URI (docker://, oras://, ...) as given, a relative path from the repository."""
    return image if "://" in image or os.path.isabs(image) else str(SOURCE / image)


# Every job's shell defines `madvae` (the CLI) and `madvae_python` (for `-m madvae.<module>`) as functions, so a
# rule reads as the command a user types and runs the right madvae under every --sdm, with no PATH rewritten.
# shell.prefix replaces Snakemake's default prefix, hence the strict mode; it formats its text, hence the braces.
JOB_PREFIX = (
    f'set -euo pipefail; madvae_python() {{ {python_command(workflow.deployment_settings.deployment_method)} "$@"; }}; '
    'madvae() { madvae_python -m madvae "$@"; }; '
)
shell.prefix(JOB_PREFIX.replace("{", "{{").replace("}", "}}"))
