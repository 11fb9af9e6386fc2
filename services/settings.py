"""Configuration by environment (DESIGN.md, "Configuration by environment")."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit


def default_data_dir() -> Path:
    return Path(os.environ.get("LEDGER_DATA_DIR") or "./.ledger").resolve()


@dataclass(frozen=True)
class Settings:
    """Where the servers are and who we are on them. One instance per process."""

    nats_url: str | None = None
    database_url: str | None = None
    data_dir: Path = field(default_factory=default_data_dir)
    credentials: dict[str, str | None] = field(default_factory=dict)
    api_tokens: dict[str, str] = field(default_factory=dict)
    api_url: str | None = None
    # The writer's Ed25519 private key (PEM path or base64); no key, no signatures or seals.
    writer_key: str | None = None
    # Public keys `verify` trusts (comma-separated base64); else <data dir>/keys/*.pub.
    writer_public_key: str | None = None

    @classmethod
    def from_env(cls, data_dir: Path | None = None) -> Settings:
        """Environment first, then the running system's runtime.json."""
        base = data_dir or default_data_dir()
        runtime = read_runtime(base)
        creds = dict(runtime.get("credentials") or {})
        for role in [
            *list(creds),
            "admin",
            "writer",
            "projector",
            "alerter",
            "api",
            "auditor",
            "safety",
        ]:
            env_name = "LEDGER_CREDS_" + role.upper().replace(":", "_").replace("-", "_")
            if os.environ.get(env_name):
                creds[role] = os.environ[env_name]
        return cls(
            nats_url=os.environ.get("LEDGER_NATS_URL") or runtime.get("nats_url"),
            database_url=os.environ.get("LEDGER_DATABASE_URL") or runtime.get("database_url"),
            data_dir=base,
            credentials=creds,
            api_tokens=dict(runtime.get("api_tokens") or {}),
            api_url=runtime.get("api_url"),
            writer_key=os.environ.get("LEDGER_WRITER_KEY") or runtime.get("writer_key"),
            writer_public_key=os.environ.get("LEDGER_WRITER_PUBLIC_KEY")
            or runtime.get("writer_public_key"),
        )

    def creds_for(self, role: str) -> str | None:
        return self.credentials.get(role)


def runtime_path(data_dir: Path) -> Path:
    return data_dir / "runtime.json"


def read_runtime(data_dir: Path) -> dict[str, Any]:
    path = runtime_path(data_dir)
    if not path.exists():
        return {}
    value = json.loads(path.read_text())
    return value if isinstance(value, dict) else {}


def write_runtime(data_dir: Path, runtime: dict[str, Any]) -> Path:
    """runtime.json holds every role's API token and the database password: 0600 from its
    first byte (written aside, then renamed over the old one)."""
    path = runtime_path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(runtime, indent=2, sort_keys=True) + "\n")
    tmp.chmod(0o600)
    tmp.replace(path)
    return path


def redacted_url(url: str | None) -> str | None:
    """A server URL fit for a log or a console: any password in it replaced by `***`."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
