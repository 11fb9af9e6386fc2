"""Settings: LEDGER_* variables over the running system's runtime.json, checked per service
before it starts; an API with no one to check callers against refuses to start."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.api.app import create_app
from services.config.settings import Settings, SettingsError, write_runtime
from services.writer.app import create_app as create_writer

pytestmark = pytest.mark.unit

DB = "postgresql+asyncpg://ledger@127.0.0.1:1/ledger"


@pytest.fixture
def running_system(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data dir with the runtime.json `trial-ledger up` leaves, and no LEDGER_* overrides."""
    for name in ("LEDGER_NATS_URL", "LEDGER_DATABASE_URL", "LEDGER_CREDS_WRITER"):
        monkeypatch.delenv(name, raising=False)
    data_dir = tmp_path / "system"
    write_runtime(
        data_dir,
        {
            "nats_url": "nats://127.0.0.1:4222",
            "database_url": DB,
            "credentials": {"writer": "/creds/writer.nk", "site:site-01": "/creds/site01.nk"},
            "api_tokens": {"admin": "admin-token"},
            "api_url": "http://127.0.0.1:8000",
        },
    )
    return data_dir


def test_the_environment_overrides_the_running_systems_runtime_json(
    running_system: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEDGER_NATS_URL", "nats://elsewhere:4222")
    monkeypatch.setenv("LEDGER_CREDS_SITE_SITE_01", "/other/site01.nk")
    settings = Settings.from_env(running_system)
    assert settings.nats_url == "nats://elsewhere:4222"
    assert settings.database_url == DB
    assert settings.creds_for("site:site-01") == "/other/site01.nk"
    assert settings.creds_for("writer") == "/creds/writer.nk"
    assert settings.api_tokens == {"admin": "admin-token"}
    assert settings.data_dir == running_system


def test_an_empty_variable_does_not_hide_the_runtime_json(
    running_system: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEDGER_DATABASE_URL", "")
    assert Settings.from_env(running_system).database_url == DB


def test_the_data_dir_variable_chooses_the_runtime_json(
    running_system: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEDGER_DATA_DIR", str(running_system))
    assert Settings.from_env().nats_url == "nats://127.0.0.1:4222"


def test_settings_built_in_code_hold_only_what_they_are_given(
    running_system: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEDGER_DATA_DIR", str(running_system))
    monkeypatch.setenv("LEDGER_DATABASE_URL", "postgresql+asyncpg://not-this/one")
    settings = Settings(nats_url="nats://mine:4222")
    assert settings.database_url is None
    assert settings.api_tokens == {}


def test_a_malformed_setting_is_refused_at_start(
    running_system: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEDGER_API_TOKENS", json.dumps(["admin-token"]))
    with pytest.raises(ValueError, match="api_tokens"):
        Settings.from_env(running_system)


@pytest.mark.parametrize(
    ("service", "named"),
    [
        ("writer", "LEDGER_NATS_URL"),
        ("projector", "LEDGER_NATS_URL"),
        ("alerter", "LEDGER_NATS_URL"),
        ("api", "LEDGER_DATABASE_URL"),
    ],
)
def test_a_service_without_its_servers_refuses_to_start_naming_the_variable(
    service: str, named: str
) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings().require(service)


async def test_a_writer_with_no_nats_url_refuses_to_start() -> None:
    with pytest.raises(SettingsError, match="LEDGER_NATS_URL"):
        await create_writer(Settings())


@pytest.mark.parametrize("tokens", [{}, None])
def test_an_api_with_no_tokens_configured_refuses_to_start(
    tokens: dict[str, str] | None,
) -> None:
    """Fail closed: with no tokens the API used to let every caller in as admin."""
    with pytest.raises(SettingsError, match="api_tokens"):
        create_app(Settings(database_url=DB), tokens=tokens)


async def test_an_api_with_tokens_answers_only_their_holders() -> None:
    import httpx

    app = create_app(Settings(database_url=DB), tokens={"admin": "admin-token"})
    # no lifespan (no database here): the token check comes before any read
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        assert (await http.get("/api/trials")).status_code == 401
        wrong = await http.get("/api/trials", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
