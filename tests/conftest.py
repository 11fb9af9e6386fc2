"""Shared fixtures: real servers started by the tests (or the ones the environment names)."""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.runtime.embedded import EmbeddedNats, EmbeddedPostgres, stop_all_started

_own_basetemp: Path | None = None


def pytest_configure(config: pytest.Config) -> None:
    """Each run's temporary files under a base of its own, outside /tmp/pytest-of-<user>.

    Run as root, the embedded PostgreSQL runs as its own system user and must traverse the
    path to its pgdata; a second pytest session starting on the machine resets
    /tmp/pytest-of-root to 0700, which made PostgreSQL fail now and then ("could not access
    pgdata"). Nobody else touches a base made here (0711: traversable, not listable).
    """
    global _own_basetemp
    if config.option.basetemp or hasattr(config, "workerinput"):
        return  # the caller chose one (or an xdist worker inherits its controller's)
    _own_basetemp = Path(tempfile.mkdtemp(prefix="trial-ledger-tests-"))
    _own_basetemp.chmod(0o711)
    config.option.basetemp = str(_own_basetemp / "run")


def pytest_sessionfinish(session: pytest.Session) -> None:
    """No server outlives the run, however its tests ended (the servers are also tied to
    this process: they get a signal when it dies, see services/runtime/embedded.py)."""
    stop_all_started()


def pytest_unconfigure(config: pytest.Config) -> None:
    if _own_basetemp is not None:
        shutil.rmtree(_own_basetemp, ignore_errors=True)


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
