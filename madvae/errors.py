"""One exception type for every problem a user can fix; the CLI prints it as one line."""


class MadvaeError(Exception):
    """A user-facing error: the message names the file (if any), the problem, and what to do."""

    def __init__(self, message: str, path=None, hint: str | None = None):
        self.path = str(path) if path is not None else None
        self.problem = message
        self.hint = hint
        text = f"{self.path}: {message}" if self.path else message
        if hint:
            text += f" ({hint})"
        super().__init__(text)


class UsageError(MadvaeError):
    """The command line asks for something that cannot be (an option the mode does not read, a missing one):
    exit code 2, as the parser's own usage errors, apart from bad input files."""


class Interrupted(MadvaeError):
    """A job stopped on request (SIGTERM: SLURM's timeout or preemption) after saving what it needs to resume.
    The CLI exits with EXIT_CODE, which the workflow's retry (and SLURM's RequeueExit) treat as "run again"."""

    EXIT_CODE = 75  # EX_TEMPFAIL in sysexits.h: a temporary failure, to be retried
