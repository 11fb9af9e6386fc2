"""Shared fixtures: real servers started by the tests (or the ones the environment names)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.runtime import EmbeddedNats, EmbeddedPostgres


@pytest.fixture(autouse=True)
def own_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's default data dir (signing key, the writer's high-water mark) is its own,
    never ./.ledger: a mark left by one test's server would make the next writer refuse."""
    data_dir = tmp_path / "ledger-data"
    monkeypatch.setenv("LEDGER_DATA_DIR", str(data_dir))
    return data_dir


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One nats-server for the session; tests isolate themselves by trial id."""
    if os.environ.get("LEDGER_NATS_URL"):
        yield os.environ["LEDGER_NATS_URL"]
        return
    server = EmbeddedNats(tmp_path_factory.mktemp("nats")).start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if os.environ.get("LEDGER_DATABASE_URL"):
        yield os.environ["LEDGER_DATABASE_URL"]
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = EmbeddedPostgres(tmp_path_factory.mktemp("pg")).start()
    yield server.url
    server.stop()


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[EmbeddedNats]:
    """A private nats-server the test may kill, restart or tamper with."""
    server = EmbeddedNats(tmp_path / "nats").start()
    yield server
    server.stop()


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = EmbeddedPostgres(tmp_path / "pg").start()
    yield server
    server.stop()
