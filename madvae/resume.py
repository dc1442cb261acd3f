"""Resuming a VAE's training: the state saved after every epoch (and on SIGTERM, mid-epoch), the check that a
--resume continues the same run, and the SIGTERM flag. The state holds plain dicts, tensors and strings only, so
it loads with torch.load(weights_only=True): no code runs."""
from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

import torch

from madvae.checkpoint import save_atomically
from madvae.errors import MadvaeError, UsageError

RESUME_FORMAT = "madvae.train-resume"
# options that may change between an interrupted run and its --resume without changing the result
RESUMABLE_CHANGES = ("epochs", "sets", "classifier", "device")


class TerminationRequest:
    """Turns SIGTERM (what SLURM sends before killing a job at its time limit or on preemption) into a flag the
    training loop checks after each batch, so it can save its state first. Only the main thread can install a
    handler; elsewhere the flag stays down and SIGTERM keeps its default effect."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame):
        self.requested = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def resume_path_for(out) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".resume.pt")


def run_fingerprint(config, set_hashes, classifier_hash) -> dict:
    kept = {k: v for k, v in config.items() if k not in RESUMABLE_CHANGES}
    return {**kept, "set_sha256": set_hashes, "classifier_sha256": classifier_hash}


def check_same_run(state_path, saved: dict, current: dict):
    changed = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
    if changed:
        detail = ", ".join(f"{k} differs" if k.endswith("sha256") else f"{k} {saved.get(k)!r} -> {current.get(k)!r}"
                           for k in changed[:3])
        raise UsageError(f"--resume with a different configuration ({detail})", state_path,
                          "rerun with the original options, or delete the resume state to start over")


def save_state(path, *, fingerprint, epoch, history, model, optimizer, scheduler, centres, centre_optims,
                centre_schedulers, dev, batch: int = 0, partial: dict | None = None):
    """Plain dicts, tensors and strings only, so torch.load(weights_only=True) reads it back. ``epoch``: epochs
    finished; ``batch``: batches finished of the next one (a SIGTERM'd run), with their loss sums in ``partial``."""
    state = {"format": RESUME_FORMAT, "fingerprint": json.dumps(fingerprint, sort_keys=True), "epoch": epoch,
             "batch": batch, "partial": json.dumps(partial or {}),
             "history": json.dumps(history), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(),
             "centres": {name: tensor.detach() for name, tensor in centres.items()},
             "centre_optimizers": {name: opt.state_dict() for name, opt in centre_optims.items()},
             "centre_schedulers": {name: sched.state_dict() for name, sched in centre_schedulers.items()},
             "rng": torch.get_rng_state(),
             "cuda_rng": torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None}
    save_atomically(state, path)


def load_state(path, fingerprint) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling refusals and truncation alike: the state is unusable either way
        raise MadvaeError(f"unreadable resume state ({type(exc).__name__})", path,
                          "delete it to start over") from exc
    if not isinstance(state, dict) or state.get("format") != RESUME_FORMAT:
        raise MadvaeError("not a madvae training resume state", path, "delete it to start over")
    check_same_run(path, json.loads(state["fingerprint"]), json.loads(json.dumps(fingerprint)))
    return state
