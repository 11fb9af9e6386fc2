"""Connecting to NATS as one role (credentials from runtime.json or the environment)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client

from services.security.nats_auth import inbox_prefix

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
