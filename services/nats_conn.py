"""Connecting to NATS as one role (credentials from runtime.json or the environment)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client


def connect_options(creds: str | None) -> dict[str, Any]:
    """A role's credential is a file: `user:password` (embedded runtime) or a .creds file."""
    if not creds:
        return {}
    path = Path(creds)
    if path.suffix == ".creds":
        return {"user_credentials": str(path)}
    text = path.read_text().strip()
    user, _, password = text.partition(":")
    return {"user": user, "password": password}


async def connect(
    url: str, creds: str | None = None, name: str = "trial-ledger", **extra: Any
) -> Client:
    options: dict[str, Any] = {
        "servers": [u.strip() for u in url.split(",")],
        "name": name,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.25,
        "connect_timeout": 5,
        **connect_options(creds),
        **extra,
    }
    return await nats.connect(**options)
