"""Deployment (issue 18.8): the jobs' madvae under --sdm conda and --sdm apptainer, from any folder.

Neither conda nor Apptainer is installed here (and their channels and registries are out of reach), so each is a
stand-in that does what Snakemake asks of it without downloading anything: the conda one "creates" an environment
whose python is this machine's base interpreter with madvae's dependencies but without madvae (the venv's
editable install is a .pth file, which PYTHONPATH entries do not read); the Apptainer one runs the command on the
host with the "image's" bin folder first on PATH, as workflow/envs/madvae.def's %environment does. Each records how
the jobs called Python. What they cannot show: that conda-forge solves the environment and that the image builds.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "workflow" / "Snakefile"
ENV_FILE = ROOT / "workflow" / "envs" / "madvae.yaml"
IMAGE_DEF = ROOT / "workflow" / "envs" / "madvae.def"
TINY = ROOT / ".test" / "config" / "config.yaml"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

# records each call (PYTHONPATH, then the arguments) in $0's folder/../calls.log, then runs the real interpreter
RECORDING_PYTHON = """#!/bin/sh
printf '%s|%s\\n' "${{PYTHONPATH:-}}" "$*" >> "$(dirname "$0")/../calls.log"
{run}
"""

FAKE_CONDA = """#!/bin/sh
# a stand-in for conda: what Snakemake runs to check, create and activate an environment
base=$(cd "$(dirname "$0")/.." && pwd)
case "$1" in
  --version) echo "conda 24.11.3" ;;
  info) printf '{"conda_prefix": "%s", "platform": "linux-64"}\\n' "$base" ;;
  config) echo '{"get": {"channel_priority": "strict"}}' ;;
  clean) ;;  # no package cache to clean
  env)  # env create --quiet --no-default-packages --file F --prefix P
    while [ $# -gt 0 ]; do
      case "$1" in --file) file=$2; shift ;; --prefix) prefix=$2; shift ;; esac
      shift
    done
    mkdir -p "$prefix/bin"
    cp "$FAKE_ENV_PYTHON" "$prefix/bin/python"
    chmod +x "$prefix/bin/python" ;;
  *) echo "fake conda: unexpected $*" >&2; exit 1 ;;
esac
"""

ACTIVATE = """# sourced by Snakemake as `source activate ENV`
PATH="$1/bin:$PATH"
export PATH
"""

FAKE_APPTAINER = """#!/bin/sh
# a stand-in for apptainer: `apptainer --version`, and `apptainer [flags] exec [options] IMAGE SHELL -c CMD`
# run on the host with the image's bin folder ($FAKE_IMAGE_BIN) first on PATH
[ "$1" = --version ] && { echo "apptainer version 1.3.6"; exit 0; }
while [ "$1" != exec ]; do shift; done
shift
while :; do
  case "$1" in --home|--bind|--pwd|-B) shift 2 ;; --*) shift ;; *) break ;; esac
done
image=$1; shell=$2
printf '%s\\n' "$image" >> "$FAKE_IMAGE_BIN/../images.log"
PATH="$FAKE_IMAGE_BIN:$PATH" exec "$shell" -c "$4"
"""


def _executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


# another lab's workflow that uses ours as a module
MODULE_USER = f"""module madvae:
    snakefile:
        {str(SNAKEFILE)!r}
    config:
        config


use rule * from madvae as madvae_*
"""


def _run_clean_set(tmp_path, *deployment, env, as_module=False):
    """The one clean_set job of the tiny config, run from a folder that is neither the repository nor the
    working directory, with --directory elsewhere (or as a module of a workflow there): nothing may depend on
    where Snakemake was started or where the workflow's files are."""
    elsewhere, workdir = tmp_path / "elsewhere", tmp_path / "work dir"
    elsewhere.mkdir()
    workdir.mkdir()
    snakefile = SNAKEFILE
    if as_module:
        snakefile = workdir / "Snakefile"
        snakefile.write_text(MODULE_USER)
    target = "results/sets/mnist-5k_test.h5"
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), "--directory", str(workdir),
         "--cores", "1", *deployment, "--configfile", str(TINY), "--", target],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (workdir / target).is_file()
    assert not list(elsewhere.iterdir()), "Snakemake wrote into the folder it was started from"
    return done


def _calls(log: Path):
    """(PYTHONPATH, arguments) of every recorded python call."""
    return [tuple(line.split("|", 1)) for line in log.read_text().splitlines()]


def test_the_conda_environment_is_pyprojects_dependencies_and_names_no_path():
    env = yaml.safe_load(ENV_FILE.read_text())
    pip = [entry["pip"] for entry in env["dependencies"] if isinstance(entry, dict)]
    assert len(pip) == 1
    # Snakemake and its SLURM plugin run outside the jobs; madvae itself comes from the workflow's tree
    runtime = [dep for dep in PYPROJECT["project"]["dependencies"] if not dep.startswith("snakemake")]
    assert pip[0] == runtime
    python = [dep for dep in env["dependencies"] if isinstance(dep, str) and dep.startswith("python ")]
    assert python, "the environment pins its Python"
    version = re.search(r"(\d+\.\d+)", python[0]).group(1)
    assert tuple(map(int, version.split("."))) >= tuple(
        map(int, PYPROJECT["project"]["requires-python"].removeprefix(">=").split(".")))
    for item in pip[0]:  # a path would be read from wherever Snakemake copies the file (--conda-prefix)
        assert not item.startswith(("-e", "-r", ".", "/", "file:")) and "/" not in item, item


def test_the_image_definition_copies_what_pyprojects_build_needs():
    text = IMAGE_DEF.read_text()
    sections = dict(re.findall(r"^%(\w+)\n(.*?)(?=^%|\Z)", text, re.M | re.S))
    copied = {line.split()[0] for line in sections["files"].splitlines() if line.strip()}
    setuptools = PYPROJECT["tool"]["setuptools"]
    needed = {"pyproject.toml", PYPROJECT["project"]["readme"], *PYPROJECT["project"]["license-files"],
              *{package.split(".")[0] for package in setuptools["packages"]}}
    assert needed <= copied, f"the image build lacks {needed - copied}"
    assert all((ROOT / name).exists() for name in copied)
    # the jobs call `python` (rules/deployment.smk): the image's venv comes first on its PATH
    venv = re.search(r"python -m venv (\S+)", sections["post"]).group(1)
    assert f"{venv}/bin/pip install" in sections["post"]
    assert re.search(rf"export PATH={re.escape(venv)}/bin:\$PATH", sections["environment"])


@pytest.mark.slow
@pytest.mark.parametrize("as_module", [False, True], ids=["directory", "module"])
def test_conda_route_runs_the_workflows_own_madvae_in_the_environment(tmp_path, as_module):
    base_python = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = sysconfig.get_paths()["purelib"]  # the dependencies; madvae's editable .pth is not read from here
    env_python = _executable(tmp_path / "template" / "bin" / "python", RECORDING_PYTHON.format(
        run=f'PYTHONPATH="${{PYTHONPATH:+$PYTHONPATH:}}{site}" exec {shlex.quote(str(base_python))} "$@"'))
    conda = tmp_path / "conda"
    _executable(conda / "bin" / "conda", FAKE_CONDA)
    (conda / "bin" / "activate").write_text(ACTIVATE)
    prefix = tmp_path / "conda envs"
    env = {**os.environ, "PATH": f"{conda / 'bin'}{os.pathsep}{os.environ['PATH']}",
           "FAKE_ENV_PYTHON": str(env_python)}
    env.pop("PYTHONPATH", None)
    check = subprocess.run([str(env_python), "-c", "import madvae"], env=env, cwd=tmp_path, capture_output=True,
                           text=True)
    assert check.returncode != 0, "the stand-in environment must not hold madvae"
    (tmp_path / "template" / "calls.log").unlink()

    _run_clean_set(tmp_path, "--sdm", "conda", "--conda-prefix", str(prefix), env=env, as_module=as_module)
    # Snakemake created the environment from the file as it is, under --conda-prefix
    [created] = [path for path in prefix.iterdir() if path.is_dir()]
    assert Path(f"{created}.yaml").read_text() == ENV_FILE.read_text()
    # the job ran the environment's python, with this tree's madvae first on its path
    [(pythonpath, args)] = _calls(created / "calls.log")
    assert pythonpath.split(os.pathsep)[0] == str(ROOT)
    assert args.startswith("-m madvae gen --attack none --dataset mnist-5k --split test")


@pytest.mark.slow
def test_apptainer_route_runs_every_job_in_the_configured_image(tmp_path):
    image_bin = tmp_path / "image" / "bin"
    _executable(image_bin / "python", RECORDING_PYTHON.format(run=f'exec {shlex.quote(sys.executable)} "$@"'))
    host_bin = tmp_path / "host-bin"
    _executable(host_bin / "apptainer", FAKE_APPTAINER)
    env = {**os.environ, "PATH": f"{host_bin}{os.pathsep}{os.environ['PATH']}", "FAKE_IMAGE_BIN": str(image_bin)}
    env.pop("PYTHONPATH", None)

    _run_clean_set(tmp_path, "--sdm", "apptainer", env=env)
    # config container: madvae.sif, taken from the repository root and not from the working directory
    assert (image_bin.parent / "images.log").read_text().split() == [str(ROOT / "madvae.sif")]
    # the image's python with the image's madvae: the host's tree is not on its path
    [(pythonpath, args)] = _calls(image_bin.parent / "calls.log")
    assert str(ROOT) not in pythonpath.split(os.pathsep)
    assert args.startswith("-m madvae gen --attack none --dataset mnist-5k --split test")


def test_no_environment_variable_is_rewritten_at_parse_time_and_every_rule_calls_madvae_by_name():
    sources = {path: path.read_text() for path in [SNAKEFILE, *sorted((ROOT / "workflow").rglob("*.smk"))]}
    for path, text in sources.items():
        assert "os.environ[" not in text and "envvars:" not in text, path
    rules = (ROOT / "workflow" / "rules")
    for path in rules.glob("*.smk"):
        for command in re.findall(r"shell:\n\s+\"([^\"]*)", path.read_text()):
            assert command.startswith(("madvae ", "madvae_python -m madvae.")), f"{path.name}: {command}"


def test_the_workflow_parses_with_snakemake_alone(tmp_path):
    """Under --sdm conda the host needs Snakemake (and its SLURM plugin) only: parsing reads the checkout's
    torch-free registries. Here an installed madvae and madvae's own dependencies are made unimportable for
    Snakemake's process (numpy stays: the SLURM plugin needs it, through pandas)."""
    blocked = tmp_path / "blocked"
    for name in ("madvae", "torch", "torchvision", "h5py", "scipy", "umap", "matplotlib", "advertorch", "torchattacks",
                 "typer", "safetensors", "mlxtend", "tqdm"):
        (blocked / name).mkdir(parents=True)
        (blocked / name / "__init__.py").write_text(f"raise ImportError('{name} is blocked for this test')\n")
    env = {**os.environ, "PYTHONPATH": str(blocked)}
    done = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory",
                           str(tmp_path), "-n", "--configfile", str(TINY)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "Job stats:" in done.stdout + done.stderr, done.stderr[-3000:]
