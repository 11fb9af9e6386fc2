"""How a `trial-ledger` command ends: its documented exit codes, a check that the servers it
needs answer before it starts, and one line (never a traceback) for every failure.

A command against a system that is not running must not reconnect for ever nor print pages
of tracebacks: the servers are probed with a short deadline first, and whatever still fails
is reported on one line with the exit code below (README, "Exit codes"; `--help`).
"""

from __future__ import annotations

import errno
import os
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import typer

# The Typer pinned in pyproject.toml carries its own copy of Click and raises that copy's
# exceptions; a Typer without it fails here, at import, rather than mapping no usage errors.
from typer._click import exceptions as click_errors

from services.config.exit_codes import INTERNAL as INTERNAL
from services.config.exit_codes import LEDGER_WENT_BACKWARDS as LEDGER_WENT_BACKWARDS
from services.config.exit_codes import NOT_MIGRATED as NOT_MIGRATED
from services.config.exit_codes import OK as OK
from services.config.exit_codes import REFUSED as REFUSED
from services.config.exit_codes import START_FAILED as START_FAILED
from services.config.exit_codes import UNREACHABLE as UNREACHABLE
from services.config.exit_codes import USAGE as USAGE
from services.config.exit_codes import CommandFailed as CommandFailed
from services.config.settings import Settings, redacted_url
from services.ledger.connection import server_urls

EXIT_CODES_HELP = (
    "Exit codes: 0 done; 1 refused (events rejected, a check failed, nothing by that name); "
    "2 bad option or argument; 3 the ledger went backwards; 4 a server it needs is not running "
    "(start it with `trial-ledger up`); 5 the system could not start; 6 the read models are missing or old (run "
    "`python -m services.db.migrate`); 70 internal error."
)

PROBE_TIMEOUT_S = 2.0
START_HINT = "start the system with `trial-ledger up` (same --data-dir) or set {env}"


@dataclass(frozen=True)
class Server:
    kind: str  # "NATS" or "PostgreSQL"
    env: str  # the variable that names it
    url: str
    host: str
    port: int


def _servers(kind: str, env: str, url: str, default_port: int) -> list[Server]:
    found = []
    for one in server_urls(url) if kind == "NATS" else [url]:
        parts = urlsplit(one)
        shown = redacted_url(one) or one
        found.append(
            Server(kind, env, shown, parts.hostname or "127.0.0.1", parts.port or default_port)
        )
    return found


def _answers(server: Server, deadline: float) -> str | None:
    """None when something listens at the server's address, else why not."""
    timeout = max(0.1, min(PROBE_TIMEOUT_S, deadline - time.monotonic()))
    try:
        with socket.create_connection((server.host, server.port), timeout):
            return None
    except TimeoutError:
        return f"no answer within {timeout:.1f}s"
    except OSError as exc:
        return exc.strerror or str(exc)


def require_servers(settings: Settings, *, nats: bool = False, db: bool = False) -> None:
    """Fail at once, on one line, when a server the command needs is not configured or does
    not answer (a cluster needs one node answering)."""
    wanted: list[tuple[str, str, str | None, int]] = []
    if nats:
        wanted.append(("NATS", "LEDGER_NATS_URL", settings.nats_url, 4222))
    if db:
        wanted.append(("PostgreSQL", "LEDGER_DATABASE_URL", settings.database_url, 5432))
    deadline = time.monotonic() + PROBE_TIMEOUT_S * 2
    for kind, env, url, port in wanted:
        hint = START_HINT.format(env=env)
        if not url:
            raise CommandFailed(
                f"no running system found in {settings.data_dir} (no runtime.json) and {env} "
                f"unset: {hint}",
                UNREACHABLE,
            )
        servers = _servers(kind, env, url, port)
        reasons = [(s, _answers(s, deadline)) for s in servers]
        if all(reason is not None for _, reason in reasons):
            server, reason = reasons[0]
            raise CommandFailed(
                f"cannot reach {kind} at {server.url} ({reason}): {hint}", UNREACHABLE
            )


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, its causes and contexts, and the members of exception groups."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            stack.extend(current.exceptions)
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                stack.append(linked)


def explain(exc: BaseException) -> CommandFailed | None:
    """A failure that reaches the top of a command, as one line and an exit code."""
    from nats.errors import NoServersError

    from services.config.settings import SettingsError
    from services.db.read_models import ReadModelsMissing
    from services.ledger.connection import NatsUnreachable
    from services.runtime.embedded import StartFailed

    for link in _chain(exc):
        if isinstance(link, CommandFailed):
            return link
    for link in _chain(exc):
        if isinstance(link, SettingsError):  # a setting missing or malformed: nothing started
            return CommandFailed(f"not configured: {link}", START_FAILED)
        if isinstance(link, ReadModelsMissing):
            return CommandFailed(f"the API cannot start: {link}", NOT_MIGRATED)
        if isinstance(link, StartFailed):
            return CommandFailed(f"the system could not start: {link}", START_FAILED)
        if isinstance(link, NatsUnreachable):
            return CommandFailed(f"{link}: {START_HINT.format(env='LEDGER_NATS_URL')}", UNREACHABLE)
        if isinstance(link, NoServersError):
            return CommandFailed(
                f"cannot reach NATS: {START_HINT.format(env='LEDGER_NATS_URL')}", UNREACHABLE
            )
        if isinstance(link, ConnectionError) or (
            isinstance(link, OSError)
            and link.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ECONNRESET)
        ):
            return CommandFailed(
                f"a server stopped answering ({link}): is the system still up? "
                "start it with `trial-ledger up`",
                UNREACHABLE,
            )
        if isinstance(link, TimeoutError):
            return CommandFailed(
                f"a server did not answer in time ({type(link).__name__}): is the system up?",
                UNREACHABLE,
            )
    return None


def _say(message: str) -> None:
    print("trial-ledger: " + " ".join(message.split()), file=sys.stderr)  # one line


def run_cli(app: Any) -> int:
    """Run the Typer app; every way it ends becomes one documented exit code."""
    try:
        result = app(standalone_mode=False)
    except click_errors.NoArgsIsHelpError as exc:  # `trial-ledger` alone: its help
        exc.show()
        return USAGE
    except click_errors.UsageError as exc:
        where = f"{exc.ctx.command_path}: " if exc.ctx is not None else ""
        _say(f"{where}{exc.format_message()}")
        return USAGE
    except click_errors.ClickException as exc:
        _say(exc.format_message())
        return exc.exit_code
    except typer.Abort:
        return 130
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or OK
        _say(str(exc.code))
        return REFUSED
    except KeyboardInterrupt:
        return 130
    except BaseException as exc:  # a traceback never reaches a user (unless asked for)
        failure = explain(exc)
        if os.environ.get("LEDGER_DEBUG"):
            raise
        if failure is None:
            _say(f"internal error: {type(exc).__name__}: {exc} (LEDGER_DEBUG=1 for the traceback)")
            return INTERNAL
        _say(str(failure))
        return failure.code
    return result if isinstance(result, int) else OK
