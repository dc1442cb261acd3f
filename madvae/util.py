"""Small shared helpers: hashing, atomic output paths, devices, seeds, time stamps."""
from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import glob
import hashlib
import os
import random
import re
import socket
import stat
from pathlib import Path

import numpy as np
import torch

from madvae.errors import MadvaeError, UsageError, WriteError
from madvae.schemas import parse_json


def refuse_special_file(path) -> None:
    """A FIFO, device or socket given as an input is refused: opening a FIFO with no writer blocks forever and a
    device never ends. Missing files and folders are left to the caller's own message."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise MadvaeError("not a regular file (a FIFO, device or socket); madvae reads inputs from regular files",
                          path)


def refuse_output_over_inputs(outputs, inputs) -> None:
    """Refuse, before any work, an output that is one of the command's inputs: the same path, also through a
    symlink or a relative path, or the same file under another name (a hard link). Writing it would destroy the
    input. ``outputs``/``inputs``: {what: path or None}."""
    def identity(path):
        try:
            info = os.stat(path)
            return ("inode", info.st_dev, info.st_ino)
        except OSError:
            return ("path", os.path.realpath(path))

    given = {what: path for what, path in inputs.items() if path is not None}
    for out_what, out in outputs.items():
        if out is None:
            continue
        for in_what, path in given.items():
            if os.path.realpath(out) == os.path.realpath(path) or identity(out) == identity(path):
                raise UsageError(f"{out_what} {out} is the {in_what} {path}: writing it would destroy the input",
                                  out, "write the output to another file")


def sha256_file(path, block: int = 1 << 20) -> str:
    refuse_special_file(path)
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(block):
                digest.update(chunk)
    except OSError as exc:
        raise MadvaeError(f"cannot read: {exc.strerror or exc}", path) from exc
    return digest.hexdigest()


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


_HOST = socket.gethostname().replace(".", "_")  # temporaries' names split on dots
_LOCKS: dict[Path, int] = {}  # this process's temporaries -> the descriptor holding each one's lock


def temp_path_for(path: Path) -> Path:
    """A hidden sibling of ``path``: same filesystem, so the final rename is atomic. Host and PID in the name
    tell a killed job's leftover from a live writer's file."""
    return path.with_name(f".{path.name}.{_HOST}.{os.getpid()}.tmp")


def lock_path_for(tmp: Path) -> Path:
    """The lock file its writer holds flock() on for the life of the temporary ``tmp``.

    A file of its own, not the temporary: HDF5 takes its own locks on the file it writes, and flock() because it
    belongs to this open file (fcntl locks belong to the process and go when any descriptor of the file closes,
    as HDF5's does)."""
    return tmp.with_name(tmp.name + ".lock")


def _still_named(fd: int, path: Path) -> bool:
    """Whether ``path`` is still the file open as ``fd`` (not removed, or removed and made again, meanwhile)."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return False


def _hold_lock(lock: Path) -> int | None:
    """Create ``lock`` and hold its flock(): the descriptor, or None where the filesystem has no locks (the PID
    then tells). BlockingIOError: a live process holds it, under our own host name and PID (another container)."""
    while True:
        fd = os.open(lock, os.O_RDONLY | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise
        except OSError:  # ENOLCK, EOPNOTSUPP: a filesystem without locks
            os.close(fd)
            with contextlib.suppress(OSError):
                lock.unlink()
            return None
        if _still_named(fd, lock):
            return fd
        os.close(fd)  # a cleaner removed a dead writer's lock file between our open and our lock: make it anew


def _release_lock(tmp: Path) -> None:
    """Remove the lock file while still holding it, then let go: no one takes a free lock on a live temporary."""
    fd = _LOCKS.pop(Path(tmp), None)
    if fd is not None:
        with contextlib.suppress(OSError):
            lock_path_for(Path(tmp)).unlink()
        os.close(fd)


def _lock_if_free(lock: Path) -> int | None:
    """The descriptor now holding ``lock`` if its writer is gone (killed: the kernel freed its lock), else None
    (held by a live writer, or not ours to judge). FileNotFoundError if there is no lock file."""
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while its writer lives, whatever its PID namespace
        if _still_named(fd, lock):
            return fd
    except OSError:  # held, or no locks on this filesystem
        pass
    os.close(fd)
    return None


def _pid_is_gone(pid: str) -> bool:
    if not pid.isdigit():
        return False  # not a name of ours
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # alive, owned by another user
    return False


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Delete the temporaries of ``path``, and their lock files, whose writers on this host are gone (SIGKILL,
    OOM).

    A writer holds its temporary's lock from prepare_output until commit or discard, so a lock this process can
    take means a dead writer, also one whose PID it cannot see (a container's PID namespace). A temporary without
    a lock file (an older madvae's, or a filesystem without locks) is judged by its PID. Another host's are left
    alone: on a shared filesystem its lock may not reach this one (NFS without lockd) and its PID means nothing."""
    removed = []
    pattern = f".{glob.escape(path.name)}.*.tmp"
    names = {p.name for p in path.parent.glob(pattern)}
    names |= {p.name[:-len(".lock")] for p in path.parent.glob(pattern + ".lock")}  # a lock left without its file
    for name in sorted(names):
        host, _, pid = name[len(path.name) + 2:-len(".tmp")].rpartition(".")
        if host != _HOST:
            continue
        tmp = path.parent / name
        try:
            fd = _lock_if_free(lock_path_for(tmp))
        except FileNotFoundError:
            fd = None
            stale = [tmp] if _pid_is_gone(pid) else []
        except OSError:  # another user's lock file: not ours to judge
            continue
        else:
            stale = [] if fd is None else [tmp, lock_path_for(tmp)]  # the lock file last, while held
        for leftover in stale:
            with contextlib.suppress(OSError):
                leftover.unlink()
                removed.append(leftover)
        if fd is not None:
            os.close(fd)
    return removed


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def prepare_output(path) -> Path:
    """Create the output's folder; return the temporary sibling to write into."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(f"cannot create folder: {exc.strerror or exc}", path.parent) from exc
    remove_stale_temporaries(path)
    tmp = temp_path_for(path)
    try:
        fd = _hold_lock(lock_path_for(tmp))
    except BlockingIOError:
        raise WriteError("another process is writing this output under the same temporary name (same host name "
                          "and PID: another container?)", path, "write each output from one job") from None
    except OSError as exc:
        raise write_error(exc, path) from exc
    if fd is not None:
        _LOCKS[tmp] = fd
    return tmp


def commit_output(tmp: Path, path) -> None:
    """fsync the finished temporary file and rename it to its final name."""
    path = Path(path)
    try:
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        discard_output(tmp)
        raise write_error(exc, path) from exc
    _release_lock(tmp)
    _fsync_dir(path.parent)


def discard_output(tmp: Path) -> None:
    with contextlib.suppress(OSError):
        Path(tmp).unlink()
    _release_lock(tmp)


_QUOTED_ERRNO = re.compile(r"\berrno = (\d+)")  # as HDF5's low-level I/O errors quote the system's


def system_errno(exc: BaseException) -> int | None:
    """The system's errno behind a failed write: an OSError's own, else the one HDF5 quotes in its message (h5py
    raises some write failures, a failed flush for one, as RuntimeError with no errno)."""
    if isinstance(exc, OSError) and exc.errno:
        return exc.errno
    found = _QUOTED_ERRNO.search(str(exc))
    return int(found.group(1)) if found else None


def write_error(exc: Exception, path) -> MadvaeError:
    """One line whatever the library: the system's words for the errno (HDF5's own message spans lines and
    names the hidden temporary file)."""
    code = system_errno(exc)
    reason = os.strerror(code) if code else " ".join(str(getattr(exc, "strerror", None) or exc).split())
    return WriteError(f"cannot write: {reason}", path, "check free space and permissions; nothing was written")


@contextlib.contextmanager
def atomic_output(path):
    """Yield a temporary path; on success fsync it and rename it to ``path``, on failure delete it.

    A reader never sees a half-written file under the final name."""
    tmp = prepare_output(path)
    try:
        yield tmp
    except OSError as exc:
        discard_output(tmp)
        raise write_error(exc, path) from exc
    except BaseException:
        discard_output(tmp)
        raise
    commit_output(tmp, path)


NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # as the config schema's names


def named_paths(items, option: str = "--vae") -> dict[str, str]:
    """``[NAME=]PATH`` command-line items as {name: path}; NAME defaults to the file stem."""
    named = {}
    for item in items:
        name, _, path = item.rpartition("=") if "=" in item else ("", "", item)
        name = name or Path(path).stem
        if not name or not path:
            raise UsageError(f"{option} {item!r}: expected PATH or NAME=PATH")
        if not NAME_PATTERN.fullmatch(name):  # names become file names: '../x' or 'a/b' would leave the folder
            raise UsageError(f"{option} name {name!r} must be letters, digits, '.', '_' or '-', starting with a "
                              "letter or digit", hint="name it NAME=PATH")
        if name in named:
            raise UsageError(f"{option} name {name!r} is given twice; name them NAME=PATH")
        named[name] = path
    return named


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda asked for, but torch sees no CUDA device", hint="use --device cpu or auto")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise UsageError(f"unknown device {name!r}", hint="use auto, cpu, cuda or cuda:N")
    return torch.device(name)


def read_json_file(path: Path, what: str):
    """The parsed contents of a JSON file; a missing or unreadable one is one MadvaeError naming the file."""
    refuse_special_file(path)
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise MadvaeError(f"no such {what} file", path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MadvaeError(f"not a readable JSON file ({exc})", path) from None
    return parse_json(text, path)


def to_device(array: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """A batch read from HDF5 onto ``device``. On CUDA through page-locked memory with an asynchronous copy, so
    the transfer overlaps the GPU's work on the previous batch; on the CPU the array's own memory, no copy."""
    tensor = torch.from_numpy(array)
    if torch.device(device).type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
