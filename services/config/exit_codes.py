"""The exit codes every command and `python -m` entry point documents (README, `--help`), and
the one-line failure that carries one: shared by the CLI and the services' own entry points."""

from __future__ import annotations

OK = 0
REFUSED = 1  # the command ran and its answer is no: events rejected, a check failed, not found
USAGE = 2  # a bad option or argument value
LEDGER_WENT_BACKWARDS = 3  # the ledger is behind the writer's high-water mark
UNREACHABLE = 4  # a server the command needs is not running or does not answer
START_FAILED = 5  # `up`/`demo` could not start the embedded servers
NOT_MIGRATED = 6  # a reader (the API) found no read models, or old ones: migrate first
INTERNAL = 70  # a defect: a one-line summary, the traceback only with LEDGER_DEBUG=1


class CommandFailed(Exception):
    """A failure explained in one line, with its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code
