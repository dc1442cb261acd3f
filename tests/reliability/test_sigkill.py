"""SIGKILL at a random point of gen, classifier, train, attack and embed (what the OOM killer or a cluster's hard
timeout does): nothing under the final name unless it is complete, a rerun finishes, removes the killed job's
temporaries, and produces what an uninterrupted run produces (train through --resume, as the workflow calls it)."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from madvae.checkpoint import load_checkpoint, save_checkpoint
from madvae.generate import make_clean_set
from madvae.models import DefenseVAE
from madvae.store import open_set

SEED = int(os.environ.get("MADVAE_KILL_SEED", "0")) or random.SystemRandom().randrange(1, 10**6)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, random_classifier):
    folder = tmp_path_factory.mktemp("kill_inputs")
    make_clean_set(folder / "clean.h5", dataset="mnist-5k", split="train", limit=768)
    torch.manual_seed(0)
    save_checkpoint(folder / "vae.pt", kind="vae", arch="defense-vae", model=DefenseVAE(), config={"loss": "vanilla"})
    subprocess.run([sys.executable, "-m", "madvae", "gen", "--attack", "fgsm", "--input", folder / "clean.h5",
                    "--classifier", random_classifier, "--out", folder / "adv.h5", "--device", "cpu",
                    "--no-progress"], check=True, capture_output=True)
    return {"clean": folder / "clean.h5", "adv": folder / "adv.h5", "vae": folder / "vae.pt",
            "classifier": random_classifier}


def _sets_equal(a, b):
    with open_set(a) as left, open_set(b) as right:
        assert len(left) == len(right)
        names = ["x_clean", "x_adv", "y"] if left.has_adv else ["x_clean", "y"]
        return all(np.array_equal(left.read(0, len(left), [n])[n], right.read(0, len(right), [n])[n])
                   for n in names)


def _checkpoints_equal(a, b):
    left, right = load_checkpoint(a), load_checkpoint(b)
    return all(torch.equal(left.state_dict[k], right.state_dict[k]) for k in left.state_dict)


def _results_equal(a, b):
    strip = ("created", "wall_s", "out", "images_per_s")
    load = lambda p: {k: v for k, v in json.loads(Path(p).read_text()).items() if k not in strip}  # noqa: E731
    return load(a)["metrics"] == load(b)["metrics"] if "metrics" in load(a) else load(a) == load(b)


def _csv_equal(a, b):
    return Path(a).read_text() == Path(b).read_text()


# name -> (argv given the inputs and the output path, outputs to check, how to compare with the reference)
COMMANDS = {
    "gen": (lambda i, out: ["gen", "--attack", "pgd", "--param", "nb_iter=10", "--input", i["clean"],
                            "--classifier", i["classifier"], "--out", out, "--batch-size", "64", "--limit", "320"],
            lambda out: [out], _sets_equal),
    "classifier": (lambda i, out: ["classifier", "--train", i["clean"], "--epochs", "2", "--out", out],
                   lambda out: [out], _checkpoints_equal),
    "train": (lambda i, out: ["train", i["adv"], "--loss", "vanilla", "--epochs", "2", "--batch-size", "32",
                              "--limit", "320", "--resume", "--out", out],
              lambda out: [out], _checkpoints_equal),
    "attack": (lambda i, out: ["attack", "--mode", "pgd-e2e", "--quick", "--set", i["clean"], "--classifier",
                               i["classifier"], "--vae", i["vae"], "--limit", "128", "--out", out],
               lambda out: [out], _results_equal),
    "embed": (lambda i, out: ["embed", i["adv"], "--n", "300", "--out", out.with_suffix("")],
              lambda out: [out.with_suffix(".csv"), out.with_suffix(".png")], _csv_equal),
}
SUFFIX = {"gen": ".h5", "classifier": ".pt", "train": ".pt", "attack": ".json", "embed": ".csv"}


def _run(argv):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread: the same float summation order in every run
    cmd = [sys.executable, "-m", "madvae", *map(str, argv), "--no-progress", "--device", "cpu"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _finish(proc, timeout=300):
    assert proc.wait(timeout=timeout) == 0, proc.stderr.read()[-2000:]


def _complete_or_absent(path: Path):
    """What a reader finds under the final name after the kill: nothing, or a complete, valid file."""
    if not path.exists():
        return "absent"
    if path.suffix == ".h5":
        open_set(path).close()
    elif path.suffix == ".pt":
        load_checkpoint(path)
    elif path.suffix == ".json":
        json.loads(path.read_text())
    elif path.suffix == ".csv":
        assert path.read_text().count("\n") == 301  # header + every sample
    return "complete"


@pytest.mark.parametrize("name", list(COMMANDS))
def test_sigkill_at_a_random_point_then_rerun(name, inputs, tmp_path):
    argv, outputs, same = COMMANDS[name]
    rng = random.Random(f"{SEED}-{name}")
    reference = tmp_path / "reference" / f"out{SUFFIX[name]}"
    started = time.monotonic()
    _finish(_run(argv(inputs, reference)))
    duration = time.monotonic() - started

    out = tmp_path / "killed" / f"out{SUFFIX[name]}"
    for attempt in range(4):  # a run can outpace the reference: kill earlier until the kill lands
        delay = rng.uniform(0.3, 0.9) * duration / 2 ** attempt  # mostly past interpreter start-up, mid-work
        proc = _run(argv(inputs, out))
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        if proc.wait() == -signal.SIGKILL:
            break
        for path in outputs(out):
            path.unlink(missing_ok=True)
    assert proc.returncode == -signal.SIGKILL, f"{name} always finished before the kill"
    found = [_complete_or_absent(path) for path in outputs(out)]
    where = f"{name} killed after {delay:.1f} s of {duration:.1f} s (MADVAE_KILL_SEED={SEED}): {found}"

    _finish(_run(argv(inputs, out)))
    leftovers = sorted(p.name for p in out.parent.iterdir() if p.name.endswith((".tmp", ".tmp.lock")))
    assert leftovers == [], where  # the rerun removed the killed job's temporaries and lock files
    assert all(path.exists() for path in outputs(out)), where
    assert same(outputs(out)[0], outputs(reference)[0]), where  # the main output, byte for byte or value for value
    print(where)


def test_stale_temporary_of_a_live_writer_is_kept(tmp_path):
    """Only a dead writer's temporary is removed: a live one (this process) keeps its file."""
    from madvae.util import prepare_output, temp_path_for

    out = tmp_path / "set.h5"
    live = temp_path_for(out)
    live.write_bytes(b"in progress")
    dead = live.with_name(live.name.replace(f".{os.getpid()}.", ".999999999."))
    dead.write_bytes(b"killed")
    other_host = tmp_path / ".set.h5.some-other-node.12.tmp"
    other_host.write_bytes(b"other node")
    prepare_output(out)
    assert live.exists() and other_host.exists() and not dead.exists()


def test_nothing_under_the_final_name_until_the_last_byte(tmp_path):
    """What makes a kill harmless: writers fill a temporary, and the final name appears only at the end."""
    from madvae.store import SetWriter
    from madvae.util import atomic_output
    from conftest import images_and_labels

    x, y = images_and_labels(8)
    path = tmp_path / "set.h5"
    with SetWriter(path, 8, dataset="mnist-5k", split="test") as writer:
        writer.write(x, y)
        assert not path.exists() and len(list(tmp_path.glob(".set.h5.*.tmp"))) == 1
    assert path.exists() and not list(tmp_path.glob("*.tmp"))
    result = tmp_path / "result.json"
    with atomic_output(result) as tmp:
        Path(tmp).write_text("{}")
        assert not result.exists()
    assert result.read_text() == "{}"


def _hold_flock(path):
    """Another process holding flock() on ``path``, as a live writer in another container does."""
    code = ("import fcntl, sys, time\nf = open(sys.argv[1], 'a')\nfcntl.flock(f, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\ntime.sleep(120)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "held\n"
    return holder


def _lock_is_free(path):
    """Whether another process (a cleaner) can take the flock() on ``path`` now."""
    code = ("import fcntl, os, sys\nfd = os.open(sys.argv[1], os.O_RDONLY)\ntry:\n"
            "    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept BlockingIOError:\n    sys.exit(1)")
    return subprocess.run([sys.executable, "-c", code, str(path)]).returncode == 0


def test_a_live_writer_whose_pid_is_not_visible_keeps_its_temporary(tmp_path):
    """Containers sharing a host name see each other's files but not each other's PIDs: the writer's lock on
    its temporary's lock file tells a live one from a killed one."""
    from madvae.util import _HOST, discard_output, prepare_output

    def temporary(pid, lock_file=True):
        tmp = tmp_path / f".set.h5.{_HOST}.{pid}.tmp"  # PIDs that no process here has
        tmp.write_bytes(b"in progress")
        if lock_file:
            tmp.with_name(tmp.name + ".lock").touch()
        return tmp

    live, killed, old_style = temporary(999999991), temporary(999999992), temporary(999999993, lock_file=False)
    orphan_lock = tmp_path / f".set.h5.{_HOST}.999999994.tmp.lock"  # killed before its first byte
    orphan_lock.touch()
    holder = _hold_flock(live.with_name(live.name + ".lock"))
    try:
        discard_output(prepare_output(tmp_path / "set.h5"))
    finally:
        holder.kill()
        holder.wait()
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, live.name + ".lock"]


def test_a_second_writer_under_the_same_temporary_name_is_refused(tmp_path):
    """Two containers with one host name and the same PID writing one output would share a temporary."""
    from madvae.errors import MadvaeError
    from madvae.util import prepare_output, temp_path_for

    out = tmp_path / "set.h5"
    lock = temp_path_for(out).with_name(temp_path_for(out).name + ".lock")
    lock.touch()
    holder = _hold_flock(lock)
    try:
        with pytest.raises(MadvaeError, match="another process is writing this output"):
            prepare_output(out)
    finally:
        holder.kill()
        holder.wait()


def test_a_writer_holds_its_lock_past_hdf5s_close_until_commit_or_discard(tmp_path):
    """The lock is flock() on a file of its own: HDF5 opening, locking and closing the temporary leaves it held,
    and it goes, lock file and all, with the temporary on commit and on failure."""
    import h5py
    from madvae.util import atomic_output

    with atomic_output(tmp_path / "set.h5") as tmp:
        with h5py.File(tmp, "w") as handle:
            handle["x"] = [1.0]
        lock = tmp.with_name(tmp.name + ".lock")
        assert lock.exists() and not _lock_is_free(lock)
    with pytest.raises(RuntimeError, match="the job failed"):
        with atomic_output(tmp_path / "other.h5") as tmp:
            Path(tmp).write_bytes(b"partial")
            raise RuntimeError("the job failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set.h5"]
