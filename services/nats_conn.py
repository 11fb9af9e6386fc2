"""Connecting to NATS as one role (credentials from runtime.json or the environment)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client

from services.security.nats_auth import inbox_prefix

JWT_CREDS_MARKER = "BEGIN NATS USER JWT"


def connect_options(creds: str | None) -> dict[str, Any]:
    """A role's credential is a file: `user:password` (embedded runtime) or a NATS .creds file.

    A `user:password` identity also names its inbox prefix (`_INBOX_<user>`): the server
    lets each user subscribe only to its own prefix, so nobody else reads its replies.
    """
    if not creds:
        return {}
    path = Path(creds)
    text = path.read_text().strip()
    if JWT_CREDS_MARKER in text:
        return {"user_credentials": str(path)}
    user, _, password = text.partition(":")
    return {"user": user, "password": password, "inbox_prefix": inbox_prefix(user)}


def broker_options(creds: str | None) -> dict[str, Any]:
    """The same identity, spelt for a FastStream NatsBroker (`security=` + inbox prefix)."""
    from faststream.nats import NatsCredentials, NatsUserPassword

    options = connect_options(creds)
    if "user_credentials" in options:
        return {"security": NatsCredentials(credentials=options["user_credentials"])}
    if "user" in options:
        return {
            "security": NatsUserPassword(username=options["user"], password=options["password"]),
            "inbox_prefix": options["inbox_prefix"],
        }
    return {}


def server_urls(url: str) -> list[str]:
    """`LEDGER_NATS_URL` names one server or every node of a cluster, comma-separated."""
    return [u.strip() for u in url.split(",") if u.strip()]


async def connect(
    url: str, creds: str | None = None, name: str = "trial-ledger", **extra: Any
) -> Client:
    options: dict[str, Any] = {
        "servers": server_urls(url),
        "name": name,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.25,
        "connect_timeout": 5,
        **connect_options(creds),
        **extra,
    }
    return await nats.connect(**options)
