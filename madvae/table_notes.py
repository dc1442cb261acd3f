"""What made a table's numbers, read from its result files: the settings of every row's attack and of every
column's purifier that differ from the paper's (or, for attacks beyond the paper, from their full settings).

A table built from quick presets, a one-epoch purifier or a 500-digit CW set says so in its caption; nothing
here is typed in: every line compares a value recorded in a result JSON with the registry's reference value.
"""
from __future__ import annotations

import json

from madvae.attacks import ADAPTIVE_ATTACKS, OVERPOWERED_PRESETS, STORED_ATTACKS, SUBSTITUTE_TRAINING
from madvae.errors import MadvaeError
from madvae.registry import DEFAULT_EPOCHS, SUBSTITUTES

# the original code's training (../shared/reference/original-code.md): epochs per variant at batch 512, and the
# nine adversarial training sets (FGSM, R-FGSM, CW at the three settings)
PAPER_VAE_EPOCHS = DEFAULT_EPOCHS
PAPER_VAE_BATCH = 512
PAPER_TRAIN_DIGITS = 60_000  # MNIST's training file: identity's pairs
PAPER_PAIRS = 9 * PAPER_TRAIN_DIGITS  # 3 attacks x 3 settings
PAPER_TRAINING_GRID = [(attack, preset) for attack, spec in STORED_ATTACKS.items() for preset in spec.presets
                       if preset.startswith("train-")]
PAPER_CLASSIFIER_EPOCHS = {"magnet": 50, **{arch: 29 for arch in SUBSTITUTES}}  # MagNet: "up to 50"
# Defense-GAN's setting: the substitute training's full settings (FGSM's eps is compared with the attack's)
TRANSFER_FULL = {key: value for key, value in SUBSTITUTE_TRAINING.presets["test"].items() if key != "eps"}
# recorded with an attack's parameters but not parameters of the attack itself
_BOOKKEEPING = {"attack", "preset", "quick", "library", "library_version", "batch_size", "device", "torch_version",
                "seed"}


def _dict(value) -> dict:
    """A recorded mapping, or {} when the field is absent or not a mapping (older or foreign results)."""
    return value if isinstance(value, dict) else {}


def _value(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def differences(params: dict, reference: dict) -> list[str]:
    """'name ours (reference)' for every reference parameter the result ran with another value."""
    return [f"{name} {_value(params[name])} (paper {_value(ref)})" for name, ref in reference.items()
            if name in params and params[name] != ref]


def attack_reference(kind: str, result: dict) -> tuple[str, dict]:
    """(what the reference is called, its parameters) for the attack of one result."""
    attack = result.get("attack")
    if kind == "adaptive" and attack in ADAPTIVE_ATTACKS:
        return "full", ADAPTIVE_ATTACKS[attack].presets["test"]
    if kind == "overpowered":
        paper = OVERPOWERED_PRESETS["paper"]
        return "paper", {key: (list(value) if isinstance(value, tuple) else value)
                         for key, value in paper.items() if key != "n"}
    if kind == "blackbox-transfer":
        return "Defense-GAN", TRANSFER_FULL
    if attack in STORED_ATTACKS:
        return "paper", STORED_ATTACKS[attack].presets["test"]
    return "paper", {}


def settings_label(kind: str, result: dict) -> str:
    """One word or two for a row label: the preset when it is not the reference one."""
    params = _dict(result.get("params"))
    quick = bool(params.get("quick") or result.get("quick"))
    preset = params.get("preset")
    if quick:
        return "quick"
    if kind == "overpowered" and preset and preset != "paper":
        return f"{preset} preset"
    if preset and preset not in ("test", "paper"):
        return f"{preset} preset"
    return ""


def preset_name(result: dict) -> str:
    """The attack preset a result ran, as its file records it: 'test', 'paper', 'quick', 'test (quick)'."""
    params = _dict(result.get("params"))
    name = str(params.get("preset") or "unrecorded")
    quick = bool(params.get("quick") or result.get("quick"))
    return f"{name} (quick)" if quick and name != "quick" else name


def attack_settings_note(kind: str, label: str, result: dict) -> str | None:
    """'CW: quick preset — max_iterations 100 (paper 1500), ...' or None when the row ran the reference."""
    params = _dict(result.get("params"))
    name, reference = attack_reference(kind, result)
    diffs = [d.replace("(paper ", f"({name} ") for d in differences(params, reference)]
    if kind == "overpowered" and result.get("n") != OVERPOWERED_PRESETS["paper"]["n"]:
        diffs.append(f"n {result.get('n')} (paper the first {OVERPOWERED_PRESETS['paper']['n']} test images)")
    if kind == "blackbox-paper":
        diffs += substitute_notes(result)
    tag = settings_label(kind, result)
    if not diffs and not tag:
        return None
    return f"{label}: {tag + ' — ' if tag else ''}{', '.join(diffs) or 'settings as the reference'}."


def substitute_notes(result: dict) -> list[str]:
    training = _dict(result.get("classifier_training"))
    arch, epochs = training.get("arch"), training.get("epochs")
    paper = PAPER_CLASSIFIER_EPOCHS.get(arch) if isinstance(arch, str) else None
    if arch in SUBSTITUTES and paper and epochs is not None and epochs != paper:
        return [f"substitute {arch} trained {epochs} epochs (paper {paper})"]
    return []


def signature(result: dict) -> str:
    """The attack's settings of a result as one comparable string (its params and quick flag)."""
    params = {k: v for k, v in _dict(result.get("params")).items() if k not in ("device", "torch_version")}
    return json.dumps({"params": params, "quick": bool(result.get("quick"))}, sort_keys=True, default=str)


def same_settings(group: dict, what: str) -> None:
    """Results in one row (or one table) must have run the same attack settings: a quick number next to a full
    one would read as one experiment."""
    groups: dict = {}
    for path, result in group.items():
        groups.setdefault(signature(result), []).append(path)
    if len(groups) > 1:
        (first, a), (second, b) = list(groups.items())[:2]
        old, new = json.loads(first), json.loads(second)
        keys = sorted(k for k in set(old["params"]) | set(new["params"])
                      if old["params"].get(k) != new["params"].get(k))
        detail = ", ".join(f"{k} {old['params'].get(k)!r} vs {new['params'].get(k)!r}" for k in keys[:3])
        if old["quick"] != new["quick"]:
            detail = ", ".join(filter(None, [f"quick {old['quick']} vs {new['quick']}", detail]))
        raise MadvaeError(f"{what} results with different attack settings cannot share one row ({detail}: "
                          f"{a[0]} vs {b[0]})", hint="re-run them with the same settings, or make two tables")


def defense_notes(columns: list[str], by_column: dict) -> list[str]:
    """Per purifier column: its training against the paper's (epochs, batch), then its training sets."""
    lines, set_lines = [], {}
    for column in columns:
        training = _dict(_dict(_dict(by_column.get(column)).get("defense")).get("training"))
        if not training:
            continue
        loss, reduced = training.get("loss"), []
        epochs, paper_epochs = training.get("epochs"), PAPER_VAE_EPOCHS.get(training.get("loss"))
        if paper_epochs and epochs is not None and epochs != paper_epochs:
            reduced.append(f"{epochs} epoch{'s' if epochs != 1 else ''} (paper {paper_epochs})")
        if training.get("batch_size") not in (None, PAPER_VAE_BATCH):
            reduced.append(f"batch {training['batch_size']} (paper {PAPER_VAE_BATCH})")
        per_epoch, n_train = training.get("pairs_per_epoch"), training.get("n_train")
        if isinstance(per_epoch, int) and isinstance(n_train, int) and per_epoch < n_train:
            reduced.append(f"each epoch a random {per_epoch:,} of the {n_train:,} pairs")
        seen, batch = training.get("pairs_seen"), training.get("batch_size")
        if reduced and isinstance(seen, int) and isinstance(batch, int) and paper_epochs:
            steps = (epochs or 0) * -(-(per_epoch or n_train or 0) // batch)
            pairs = PAPER_TRAIN_DIGITS if loss == "identity" else PAPER_PAIRS
            reduced.append(f"{seen:,} pairs seen in {steps:,} steps (paper {paper_epochs * pairs:,} in "
                           f"{paper_epochs * -(-pairs // PAPER_VAE_BATCH):,})")
        if reduced:
            lines.append(f"Purifier {column}: {', '.join(reduced)}, {training.get('n_train')} training pairs.")
        if loss != "identity" and isinstance(training.get("sets"), list):
            text = training_sets_note(training["sets"])
            if text:
                set_lines.setdefault(text, []).append(column)
    for text, names in set_lines.items():
        lines.append(f"Training sets of {', '.join(names)}: {text}")
    return lines


def training_sets_note(sets: list[dict]) -> str | None:
    """Which of the paper's nine training settings are missing, and which sets a CPU cut made smaller."""
    sets = [entry for entry in sets if isinstance(entry, dict)]
    largest = max((s["n"] for s in sets if isinstance(s.get("n"), int)), default=0)
    notes = []
    for entry in sets:
        cut = []
        if entry.get("quick"):
            cut.append("quick preset")
        if isinstance(entry.get("n"), int) and entry["n"] < largest:
            cut.append(f"{entry['n']} of {largest} digits")
        if cut:
            notes.append(f"{entry.get('name')} {' on '.join(cut)}")
    present = {(s.get("attack"), s.get("preset")) for s in sets}
    missing = [f"{a} {p}" for a, p in PAPER_TRAINING_GRID if (a, p) not in present]
    if missing:
        notes.append(f"not trained on the paper's {', '.join(missing)}")
    return "; ".join(notes) + "." if notes else None


def classifier_note(results) -> str | None:
    """The target classifier's training, when shorter than the paper's."""
    for result in results:
        training = _dict(result.get("classifier_training"))
        arch, epochs = training.get("arch"), training.get("epochs")
        paper = PAPER_CLASSIFIER_EPOCHS.get(arch) if isinstance(arch, str) else None
        if arch == "magnet" and epochs is not None and paper and epochs < paper:
            return (f"Classifier: MagNet trained {epochs} epochs on {training.get('n_train')} images (paper: up to "
                    f"{paper} epochs on 60,000).")
    return None
