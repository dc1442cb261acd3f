"""One exception type for every problem a user can fix; the CLI prints it as one line and exits with the kind's
code, so that scripts can tell them apart (README, "Exit codes"):

    0   done
    1   a failure madvae did not foresee (a bug, out of memory): Python's traceback
    2   usage: the command line asks for what cannot be (the parser's own errors too)
    65  bad input (EX_DATAERR): a file or value given is missing, malformed, of the wrong kind or inconsistent
    74  cannot write (EX_IOERR): disk full, read-only or not permitted; nothing was written
    75  interrupted (EX_TEMPFAIL): stopped on request after saving its resume state; run it again
"""


class MadvaeError(Exception):
    """A user-facing error: the message names the file (if any), the problem, and what to do. By default the
    input is at fault."""

    EXIT_CODE = 65

    def __init__(self, message: str, path=None, hint: str | None = None):
        self.path = str(path) if path is not None else None
        self.problem = message
        self.hint = hint
        text = f"{self.path}: {message}" if self.path else message
        if hint:
            text += f" ({hint})"
        super().__init__(text)


class UsageError(MadvaeError):
    """The command line asks for something that cannot be (an option the mode does not read, a missing one)."""

    EXIT_CODE = 2


def does_not_apply(options, what: str, hint: str | None = None) -> UsageError:
    """The one wording of a refused option: ``--a, --b does not apply to WHAT``."""
    return UsageError(f"{', '.join(options)} does not apply to {what}", hint=hint)


class WriteError(MadvaeError):
    """An output could not be written (no space, read-only, permissions); the inputs were fine."""

    EXIT_CODE = 74


class Interrupted(MadvaeError):
    """A job stopped on request (SIGTERM: SLURM's timeout or preemption) after saving what it needs to resume.
    The CLI exits with EXIT_CODE, which the workflow's retry (and SLURM's RequeueExit) treat as "run again"."""

    EXIT_CODE = 75  # EX_TEMPFAIL in sysexits.h: a temporary failure, to be retried
