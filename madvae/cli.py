"""The `madvae` command line: thin Typer verbs over library functions, one per step of the chain.

classifier  madvae.train_classifier   gen      madvae.generate        inspect  madvae.inspect / madvae.verify
train       madvae.train              attack   madvae.evaluate        embed    madvae.embed (cli_figures.py)
report      madvae.report, .paper, .selection, .figures (cli_figures.py)
The choice types (built from the registries) and the shared options are in madvae.cli_options."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from madvae import __version__
from madvae.cli_figures import embed, report
from madvae.cli_options import (MAX_SEED, Arch, AttackMode, AttackName, Dataset, Device, DeviceOpt,
                                LimitOpt, LossVariant, OverpoweredPreset, Precision, ProgressOpt, SeedOpt, Split,
                                SubstituteArch, fail_cleanly, given_options)
from madvae.cli_help import Command
from madvae.errors import MadvaeError, UsageError
from madvae.evaluate import Request, evaluate

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Train, attack and compare Defense-VAE / MAD-VAE purification defenses.")


def _print_version(value: bool):
    if value:
        typer.echo(f"madvae {__version__}")
        raise typer.Exit()


@app.callback()
def _front(version_flag: Annotated[bool, typer.Option(
        "--version", "-V", callback=_print_version, is_eager=True, help="Print the version and exit.")] = False):
    """Train, attack and compare Defense-VAE / MAD-VAE purification defenses."""


@app.command(cls=Command)
@fail_cleanly
def classifier(
    train: Annotated[Path, typer.Option("--train", metavar="SET.h5", help="Clean HDF5 training set.")],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="CKPT.pt", help="Checkpoint to write.")],
    test: Annotated[Optional[Path], typer.Option("--test", metavar="SET.h5", help="Clean HDF5 test set for the reported accuracy.")] = None,
    arch: Annotated[Arch, typer.Option(help="magnet (Table 5) or substitute A-E (Table 6).")] = Arch.magnet,
    epochs: Annotated[int, typer.Option(metavar="N", min=1)] = 8,
    batch_size: Annotated[Optional[int], typer.Option(metavar="N", min=1, help="Default: 128 (magnet), 256 (A-E).")] = None,
    lr: Annotated[float, typer.Option(metavar="X", help="Adam learning rate.")] = 1e-3,
    lr_decay: Annotated[Optional[float], typer.Option(metavar="X", help="Per-epoch factor. Default: 1 (magnet), 0.95 (A-E).")] = None,
    seed: SeedOpt = 0, device: DeviceOpt = Device.auto, limit: LimitOpt = None, progress: ProgressOpt = True,
):
    """Train a classifier on a clean set and write its checkpoint."""
    from madvae.train_classifier import train_classifier

    meta = train_classifier(train, out, test_path=test, arch=arch.value, epochs=epochs, batch_size=batch_size,
                            lr=lr, lr_decay=lr_decay, seed=seed, device=device.value, limit=limit,
                            progress=progress)
    last = meta["history"][-1]
    line = f"{out}: {arch.value} trained on {meta['n_train']} images, train accuracy {last['train_accuracy']:.4f}"
    if "test_accuracy" in meta:
        line += f", test accuracy {meta['test_accuracy']:.4f} (n={meta['n_test']})"
    typer.echo(line)


@app.command(cls=Command)
@fail_cleanly
def gen(
    out: Annotated[Path, typer.Option("--out", "-o", metavar="SET.h5", help="HDF5 set to write.")],
    attack: Annotated[AttackName, typer.Option(help="none writes a clean set from --dataset.")] = AttackName.none,
    dataset: Annotated[Dataset, typer.Option(help="Source of a clean set.")] = Dataset.mnist_5k,
    split: Annotated[Split, typer.Option()] = Split.test,
    root: Annotated[Optional[Path], typer.Option(metavar="DIR", help="Folder with IDX files (mnist, fashion-mnist).")] = None,
    download: Annotated[bool, typer.Option(help="Let torchvision download the dataset (needs a network).")] = False,
    input: Annotated[Optional[Path], typer.Option("--input", "-i", metavar="SET.h5", help="Clean set to attack.")] = None,
    classifier: Annotated[Optional[Path], typer.Option(metavar="CKPT.pt", help="Classifier checkpoint the attack targets.")] = None,
    preset: Annotated[str, typer.Option(metavar="PRESET", help="test, val, or train-0/1/2 (the paper's training grid).")] = "test",
    param: Annotated[Optional[list[str]], typer.Option(metavar="KEY=VALUE", help="Override a parameter: --param eps=0.3 (repeatable).")] = None,
    quick: Annotated[bool, typer.Option(
        help="CPU-sized CW: 1 binary step of 100 iterations, lr 0.1, const 3 (see README).")] = False,
    batch_size: Annotated[int, typer.Option(metavar="N", min=1)] = 500,
    seed: Annotated[Optional[int], typer.Option(metavar="N", 
        min=0, max=MAX_SEED, help="Random seed: same seed, same output. Default: derived from the set's dataset, split and file "
             "name, so no two sets share a random stream.")] = None,
    device: DeviceOpt = Device.auto, limit: LimitOpt = None, progress: ProgressOpt = True,
):
    """Write a clean set (--attack none) or an adversarial set crafted against a classifier."""
    from madvae import generate
    from madvae.attacks import get_attack

    if attack is AttackName.none:
        if input or classifier or param:
            raise UsageError("--attack none writes a clean set from --dataset; --input/--classifier/--param "
                              "belong to an attack")
        info = generate.make_clean_set(out, dataset=dataset.value, split=split.value, root=root,
                                       download=download, limit=limit, seed=seed)
        typer.echo(f"{out}: clean {info['dataset']} {info['split']} set, {info['n']} images")
        return
    if input is None or classifier is None:
        raise UsageError(f"--attack {attack.value} needs --input (a clean set) and --classifier (a checkpoint)")
    info = generate.make_adversarial_set(out, input_path=input, classifier_path=classifier, attack=attack.value,
                                         preset=preset, overrides=param, quick=quick, device=device.value,
                                         batch_size=batch_size, limit=limit, seed=seed, progress=progress)
    quick = get_attack(attack.value).quick if info["params"]["quick"] else {}
    note = f" [quick preset: {', '.join(f'{k}={v}' for k, v in quick.items())}]" if quick else ""
    typer.echo(f"{out}: {attack.value} ({preset}) on {info['n']} images, "
               f"{info['images_per_s']:.1f} images/s{note}")


@app.command(cls=Command)
@fail_cleanly
def inspect(
    paths: Annotated[list[Path], typer.Argument(metavar="FILE", help="HDF5 sets, checkpoints and result JSONs.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
    verify: Annotated[bool, typer.Option(
        "--verify", help="Read every file in full, then check each recorded SHA-256 (set -> classifier it was "
                         "crafted on -> VAE trained on it -> results) against the files given or found at their "
                         "recorded paths. Exit 1 on a mismatch.")] = False,
):
    """Summarize sets, checkpoints and result JSONs; every valid file first, then the errors; exit non-zero on an
    invalid file."""
    if verify:
        from madvae.verify import format_checks, verify_paths

        summaries, checks = verify_paths(paths)
        if as_json:
            typer.echo(json.dumps([{"artifact": c.artifact, "role": c.reference.role, "sha256": c.reference.sha256,
                                    "recorded_path": c.reference.path, "status": c.status, "found": c.found}
                                   for c in checks], indent=2))
        else:
            typer.echo(format_checks(summaries, checks))
        if any(check.status == "mismatch" for check in checks):
            raise typer.Exit(1)
        return
    from madvae.inspect import format_summary, inspect_path

    summaries, errors = [], []
    for path in paths:  # every valid file is reported, then the errors of the bad ones
        try:
            summaries.append(inspect_path(path))
        except MadvaeError as exc:
            errors.append(exc)
    if summaries and as_json:
        typer.echo(json.dumps(summaries if len(paths) > 1 else summaries[0], indent=2))
    elif summaries:
        typer.echo("\n".join(format_summary(s) for s in summaries))
    if errors:
        for exc in errors[:-1]:
            typer.echo(f"madvae: error: {exc}", err=True)
        raise errors[-1]


# --- train (issue 3: madvae/train.py) ---


@app.command(cls=Command)
@fail_cleanly
def train(
    out: Annotated[Path, typer.Option("--out", "-o", metavar="CKPT.pt", help="VAE checkpoint to write.")],
    sets: Annotated[Optional[list[Path]], typer.Argument(metavar="SET.h5", help="Adversarial HDF5 sets (clean for identity).")] = None,
    set_option: Annotated[Optional[list[Path]], typer.Option("--set", metavar="SET.h5", help="A training set (repeatable).")] = None,
    loss: Annotated[LossVariant, typer.Option(help="Training objective (paper section 2.2).")] = LossVariant.vanilla,
    classifier: Annotated[Optional[Path], typer.Option(metavar="CKPT.pt", help="Frozen classifier (classification, combined).")] = None,
    epochs: Annotated[Optional[int], typer.Option(metavar="N", min=1, help="Default: 5 vanilla/prox.-dist., 10 others.")] = None,
    batch_size: Annotated[int, typer.Option(metavar="N", min=1)] = 512,
    lr: Annotated[float, typer.Option(metavar="X", help="Adam learning rate (x0.998 per epoch, floor 1e-5).")] = 1e-3,
    alpha: Annotated[float, typer.Option(metavar="X", help="Proximity loss weight.")] = 0.01,
    sigma: Annotated[float, typer.Option(metavar="X", help="Distance loss weight (original code: 1e-4 for prox.-dist.).")] = 1e-5,
    beta: Annotated[float, typer.Option(metavar="X", help="KL weight.")] = 0.1,
    gamma: Annotated[float, typer.Option(metavar="X", help="Classification loss weight.")] = 0.1,
    centre_lr_decay: Annotated[float, typer.Option(metavar="X", 
        help="Per-epoch factor of both centre sets' SGD rates (proximity 0.5, distance 1e-4), as the original; "
             "1 keeps them fixed.")] = 0.1,
    centre_lr_floor: Annotated[float, typer.Option(metavar="X", help="The centre rates never decay below this.")] = 1e-5,
    pairs_per_epoch: Annotated[Optional[int], typer.Option(
        min=1, metavar="N", help="Train each epoch on a fresh random sample of N pairs, every set in proportion "
                                 "(default: every pair).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from <out>.resume.pt left by an interrupted run.")] = False,
    precision: Annotated[Precision, typer.Option(help="bf16: mixed-precision forward pass (GPUs with bfloat16).")
                         ] = Precision.fp32,
    seed: SeedOpt = 0, device: DeviceOpt = Device.auto, limit: LimitOpt = None, progress: ProgressOpt = True,
):
    """Train a Defense-VAE / MAD-VAE purifier (x_adv -> x_clean) and write its checkpoint and log."""
    from madvae.train import train_vae

    info = train_vae([*(sets or []), *(set_option or [])], out, loss=loss.value, classifier_path=classifier,
                     epochs=epochs, batch_size=batch_size, lr=lr, alpha=alpha, sigma=sigma, beta=beta, gamma=gamma,
                     centre_lr_decay=centre_lr_decay, centre_lr_floor=centre_lr_floor, seed=seed,
                     device=device.value, limit=limit, pairs_per_epoch=pairs_per_epoch, resume=resume,
                     progress=progress, precision=precision.value)
    last = info["history"][-1]
    typer.echo(f"{out}: {loss.value} VAE trained on {info['n_train']} {info['dataset']} images for "
               f"{last['epoch']} epochs, final loss {last['total']:.4f} (logs {info['log']}, {info['steps_log']})")


# --- attack (madvae/evaluate/: one module per mode) ---


@app.command(cls=Command)
@fail_cleanly
def attack(
    ctx: typer.Context,
    set_path: Annotated[Path, typer.Option("--set", "-s", metavar="SET.h5", help="HDF5 set: adversarial (stored) or clean.")],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="RESULT.json", help="Result JSON to write.")],
    classifier: Annotated[Optional[Path], typer.Option(metavar="CKPT.pt", help="Classifier checkpoint (the target).")] = None,
    vae: Annotated[Optional[Path], typer.Option(metavar="CKPT.pt", help="Defense-VAE checkpoint; without it, no defense.")] = None,
    mode: Annotated[AttackMode, typer.Option(
        help="stored: evaluate a set's stored adversarial images (defense-unaware, Table 1). pgd-e2e, bpda, eot, "
             "autoattack, square: adaptive attacks through the defense. blackbox-paper: FGSM on --substitute, "
             "classified by it (Table 2 as the original code). blackbox-transfer: a substitute trained from target queries. "
             "overpowered: the latent-space attack on the VAE (Table 3).")] = AttackMode.stored,
    param: Annotated[Optional[list[str]], typer.Option(metavar="KEY=VALUE", help="Override a parameter: --param eps=0.2 (repeatable).")]
    = None,
    quick: Annotated[bool, typer.Option(help="CPU-sized settings of the adaptive attacks and the transfer "
                                             "substitute (recorded in the result).")] = False,
    preset: Annotated[OverpoweredPreset, typer.Option(help="overpowered: the attack's settings (madvae.attacks."
                                                           "OVERPOWERED_PRESETS): quick, cpu or paper.")]
    = OverpoweredPreset.quick,
    substitute: Annotated[Optional[Path], typer.Option(metavar="CKPT.pt", help="blackbox-paper: substitute checkpoint (A-E).")] = None,
    substitute_arch: Annotated[SubstituteArch, typer.Option(help="blackbox-transfer: substitute architecture.")]
    = SubstituteArch.A,
    figure: Annotated[Optional[Path], typer.Option(metavar="FILE.png", help="overpowered: also write a Figure-7-like PNG.")] = None,
    defense_name: Annotated[Optional[str], typer.Option(metavar="NAME", help="Name in tables (default: the VAE's loss).")] = None,
    samples: Annotated[int, typer.Option(metavar="N", min=0, help="0: decode the posterior mean; K: average K decodings.")] = 0,
    batch_size: Annotated[Optional[int], typer.Option(metavar="N", min=1, help="Default: 500 (overpowered 100, adaptive 250).")]
    = None,
    eps_grid: Annotated[Optional[str], typer.Option(
        metavar="EPS,EPS,...", help="Adaptive modes: a security-evaluation curve, the accuracy at each eps of "
                                    "the grid on the same images (e.g. 0,0.1,0.2,0.3,0.4).")] = None,
    seed: SeedOpt = 0, device: DeviceOpt = Device.auto, limit: LimitOpt = None, progress: ProgressOpt = True,
):
    """Evaluate classifier(VAE(x)) under attack: accuracy (true labels) and agreement (clean predictions)."""
    from madvae.util import refuse_output_over_inputs

    refuse_output_over_inputs({"--out": out, "--figure": figure},
                              {"--set": set_path, "--classifier": classifier, "--vae": vae, "--substitute": substitute})
    result = evaluate(mode.value, Request(
        set_path, out, classifier=classifier, vae=vae, params=param or [], quick=quick, preset=preset.value,
        substitute=substitute, substitute_arch=substitute_arch.value, figure=figure, defense_name=defense_name,
        samples=samples, batch_size=batch_size, device=device.value, limit=limit, seed=seed, progress=progress,
        eps_grid=None if eps_grid is None else _numbers("--eps-grid", eps_grid),
        given=frozenset({"param": "params"}.get(name, name) for name in given_options(ctx))))
    transfer = (" (transfer: the set was crafted on another classifier, source_classifier_sha256)"
                if result.get("transfer") else "")
    typer.echo(f"{out}: {result['kind']} {result['attack']} n={result['n']} defense={result['defense']['name']}"
               f"{transfer}: " + _summary(result["metrics"]))


def _numbers(option: str, text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"{option} {text!r} is not a comma-separated list of numbers") from None


def _summary(metrics: dict) -> str:
    from madvae.results import metric_text

    return "; ".join(metric_text(group, values, "acc", "agr") for group, values in metrics.items())


app.command(cls=Command)(embed)
app.command(cls=Command)(report)


@app.command(cls=Command)
def version():
    """Print the madvae version."""
    typer.echo(__version__)


def main():
    """Entry point. Usage errors become one line too (the parser would print a usage block)."""
    if len(sys.argv) == 1:  # `madvae` alone: the front page, as a request for help (exit 0)
        sys.argv.append("--help")
    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        typer.echo("madvae: aborted", err=True)
        sys.exit(130)
    except Exception as exc:  # the CLI parser's usage errors carry format_message() and exit_code
        if not hasattr(exc, "format_message"):
            raise
        typer.echo(f"madvae: error: {exc.format_message()} (see madvae --help)", err=True)
        sys.exit(getattr(exc, "exit_code", 2) or 2)
    code = code if isinstance(code, int) else 0
    if code != 0:
        _exit_now(code)
    sys.exit(code)


def _exit_now(code: int):
    """After a failed write (disk full) HDF5 holds handles it cannot release, and the interpreter's teardown then
    crashes (SIGSEGV, seen in tests/reliability/test_disk_full.py). Every output is already closed, discarded or renamed when a
    command returns, so a failed command flushes its streams and leaves without that teardown."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
