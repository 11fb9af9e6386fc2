"""Connecting to NATS as one role (credentials from runtime.json or the environment)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import structlog
from nats.aio.client import Client

log = structlog.get_logger("nats")


def inbox_prefix(user: str) -> str:
    """The reply-inbox prefix of a NATS user (its permissions allow only its own inboxes)."""
    return f"_INBOX_{user}"


# The first connection must succeed within this: nats-py would otherwise retry for ever
# (max_reconnect_attempts=-1), and a command against a system that is down would hang.
FIRST_CONNECT_WITHIN_S = 10.0

JWT_CREDS_MARKER = "BEGIN NATS USER JWT"


def connect_options(creds: str | None) -> dict[str, Any]:
    """A role's credential is a standard NATS file: an nkey seed (`<user>.nk`, what the
    embedded runtime and deploy_secrets issue) or a decentralised-auth `.creds` file.

    A seed file is named after its NATS user, which also names the user's inbox prefix
    (`_INBOX_<user>`): the server lets each user subscribe only to its own prefix, so nobody
    else reads its replies (runtime.json lists the prefixes for other clients).
    """
    if not creds:
        return {}
    path = Path(creds)
    if JWT_CREDS_MARKER in path.read_text():
        return {"user_credentials": str(path)}
    return {"nkeys_seed": str(path), "inbox_prefix": credential_inbox_prefix(path)}


def credential_inbox_prefix(seed_file: str | Path) -> str:
    """The inbox prefix of the identity whose seed file is `<user>.nk`: `_INBOX_<user>`."""
    return inbox_prefix(Path(seed_file).stem)


def broker_options(creds: str | None) -> dict[str, Any]:
    """The same identity, spelt for a FastStream NatsBroker (`security=` + inbox prefix)."""
    from faststream.nats import NatsCredentials

    options = connect_options(creds)
    if "user_credentials" in options:
        return {"security": NatsCredentials(credentials=options["user_credentials"])}
    if "nkeys_seed" in options:
        # FastStream passes connection keywords through to nats-py's connect.
        return {"nkeys_seed": options["nkeys_seed"], "inbox_prefix": options["inbox_prefix"]}
    return {}


def server_urls(url: str) -> list[str]:
    """`LEDGER_NATS_URL` names one server or every node of a cluster, comma-separated."""
    return [u.strip() for u in url.split(",") if u.strip()]


class NatsUnreachable(ConnectionError):
    """No server of the URL accepted a first connection in time."""


async def _one_line_error(exc: Exception) -> None:
    """nats-py's default logs a traceback per failed attempt (megabytes while a server is
    down); one line each says the same."""
    log.warning("nats_error", error=f"{type(exc).__name__}: {exc}")


async def connect(
    url: str,
    creds: str | None = None,
    name: str = "trial-ledger",
    *,
    within: float = FIRST_CONNECT_WITHIN_S,
    **extra: Any,
) -> Client:
    """Connect as one role. Once connected, a lost server is reconnected to for ever; the
    first connection must succeed `within` seconds, else NatsUnreachable."""
    options: dict[str, Any] = {
        "servers": server_urls(url),
        "name": name,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.25,
        "connect_timeout": min(5.0, within),
        "error_cb": _one_line_error,
        **connect_options(creds),
        **extra,
    }
    client = Client()
    try:
        await asyncio.wait_for(client.connect(**options), within)
    except TimeoutError as exc:
        with contextlib.suppress(Exception):
            await client.close()
        raise NatsUnreachable(
            f"no NATS server at {url} accepted a connection within {within:g}s"
        ) from exc
    return client
