"""A live system on the test's own servers, for the tests that read what it projects.

A test module that needs other settings (its own seal cadence, its own servers) defines a
fixture of the same name, which takes precedence over these.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.config.settings import Settings
from services.projector.app import ProjectorApp
from services.projector.app import create_app as create_projector
from services.runtime.embedded import EmbeddedNats, EmbeddedPostgres
from services.writer.app import WriterApp
from services.writer.app import create_app as create_writer


@pytest.fixture
async def servers(own_nats: EmbeddedNats, own_postgres: EmbeddedPostgres) -> Settings:
    return Settings(nats_url=own_nats.url, database_url=own_postgres.url)


@pytest.fixture
async def writer(servers: Settings) -> AsyncIterator[WriterApp]:
    # seals only at stop: one appended mid-test would race the live-vs-replay comparisons
    app = await create_writer(servers, seal_every_events=10**9, seal_every_seconds=3600)
    await app.start()
    yield app
    await app.stop()


@pytest.fixture
async def projector(servers: Settings, writer: WriterApp) -> AsyncIterator[ProjectorApp]:
    app = await create_projector(servers)
    await app.start()
    yield app
    await app.stop()
