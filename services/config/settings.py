"""Configuration by environment (DESIGN.md, "Configuration by environment").

One typed model, read by pydantic-settings: `LEDGER_*` variables first, then the running
system's runtime.json. Each service declares what it cannot start without
(`Settings.require`), checked before it connects anywhere: a missing setting stops the start
with one line naming it, never a half-configured service (an API with no tokens would let
everyone in as admin)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


def default_data_dir() -> Path:
    return Path(os.environ.get("LEDGER_DATA_DIR") or "./.ledger").resolve()


class SettingsError(ValueError):
    """A service cannot start with these settings (the message names what is missing)."""


# What each service cannot start without, and where an operator sets it.
REQUIRED: dict[str, tuple[str, ...]] = {
    "writer": ("nats_url",),
    "projector": ("nats_url", "database_url"),
    "alerter": ("nats_url",),
    "api": ("database_url", "api_tokens"),
}
HOW_TO_SET = {
    "nats_url": "LEDGER_NATS_URL (or runtime.json from `trial-ledger up`)",
    "database_url": "LEDGER_DATABASE_URL (or runtime.json from `trial-ledger up`)",
    "api_tokens": "api_tokens in runtime.json or LEDGER_API_TOKENS (JSON role -> token)",
}


class Settings(BaseSettings):
    """Where the servers are and who we are on them. One instance per process.

    Built in code (`Settings(nats_url=...)`) it holds exactly what it is given; built by
    `from_env` it reads the environment and runtime.json."""

    model_config = SettingsConfigDict(
        env_prefix="LEDGER_", env_ignore_empty=True, frozen=True, extra="forbid"
    )

    nats_url: str | None = None
    database_url: str | None = None
    data_dir: Path = Field(default_factory=default_data_dir)
    credentials: dict[str, str | None] = Field(default_factory=dict)
    api_tokens: dict[str, str] = Field(default_factory=dict)
    api_url: str | None = None
    # The writer's Ed25519 private key (PEM path or base64); no key, no signatures or seals.
    writer_key: str | None = None
    # Public keys `verify` trusts (comma-separated base64); else <data dir>/keys/*.pub.
    writer_public_key: str | None = None

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, data_dir: Path) -> Path:
        return data_dir.resolve()  # the same directory for a service started elsewhere

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)

    @classmethod
    def from_env(cls, data_dir: Path | None = None) -> Settings:
        """Environment first, then the running system's runtime.json."""
        given: dict[str, Any] = {"data_dir": data_dir} if data_dir is not None else {}
        return _FromEnvironment(**given)

    def creds_for(self, role: str) -> str | None:
        return self.credentials.get(role)

    def require(self, service: str, *names: str) -> Settings:
        """These settings, if `service` can start with them (or has the `names` given); else
        SettingsError naming each missing setting and how to set it."""
        missing = [name for name in names or REQUIRED[service] if not getattr(self, name)]
        if missing:
            raise SettingsError(
                f"the {service} cannot start: "
                + "; ".join(f"{name} is not set ({HOW_TO_SET[name]})" for name in missing)
            )
        return self


class _RuntimeJson(PydanticBaseSettingsSource):
    """The running system's runtime.json, in the data dir the earlier sources chose."""

    FIELDS: ClassVar[tuple[str, ...]] = (
        "nats_url",
        "database_url",
        "credentials",
        "api_tokens",
        "api_url",
        "writer_key",
        "writer_public_key",
    )

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads the whole file at once

    def __call__(self) -> dict[str, Any]:
        base = self.current_state.get("data_dir")
        runtime = read_runtime(Path(base) if base else default_data_dir())
        return {name: runtime[name] for name in self.FIELDS if runtime.get(name)}


class _RoleCredentials(PydanticBaseSettingsSource):
    """`LEDGER_CREDS_<ROLE>` per role (`site:site01` -> LEDGER_CREDS_SITE_SITE01), over the
    runtime.json's paths for the same roles."""

    ROLES: ClassVar[tuple[str, ...]] = (
        "admin",
        "writer",
        "projector",
        "alerter",
        "api",
        "auditor",
        "safety",
    )

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads every role at once

    def __call__(self) -> dict[str, Any]:
        base = self.current_state.get("data_dir")
        runtime = read_runtime(Path(base) if base else default_data_dir())
        roles = [*(runtime.get("credentials") or {}), *self.ROLES]
        named = {role: os.environ.get(creds_variable(role)) for role in roles}
        found = {role: path for role, path in named.items() if path}
        return {"credentials": found} if found else {}


def creds_variable(role: str) -> str:
    """The variable naming a role's credential file: `site:site-01` -> LEDGER_CREDS_SITE_SITE_01."""
    return "LEDGER_CREDS_" + role.upper().replace(":", "_").replace("-", "_")


class _FromEnvironment(Settings):
    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            _RoleCredentials(settings_cls),
            _RuntimeJson(settings_cls),
        )


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
