"""The API only reads (issue 15 item 7): it creates no table at start (it refuses to start
until `python -m services.db.migrate` has run), and an as-of view is built by a process of its
own, in the background: 202 with progress until it is ready, then served, the same rows as a
replay as of the same instant; builds are capped, views kept in a bounded cache whose evicted
schemas are dropped, and a failed build is a JSON status, never a 500."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from services.api.app import create_app as create_api
from services.api.asof import AsOfBuilds, AsOfPending, schema_name
from services.config.settings import Settings
from services.db.migrate import make_engine, migrate_all
from services.db.read_models import ReadModelsMissing, check_read_models
from services.ledger.connection import connect
from services.projector.app import ProjectorApp, all_projections
from services.projector.rebuild import digests, rebuild
from services.runtime.embedded import EmbeddedNats, EmbeddedPostgres
from tests.integration.test_projections import ingest

pytestmark = pytest.mark.integration

TOKENS = {"admin": "admin-token"}
ADMIN = {"Authorization": "Bearer admin-token"}
DEADLINE_S = 120.0


async def schemas(database_url: str) -> set[str]:
    engine = make_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT schema_name FROM information_schema.schemata"))
            return {name for (name,) in rows if not name.startswith(("pg_", "information_"))}
    finally:
        await engine.dispose()


# -- no DDL at start ----------------------------------------------------------------------


async def test_the_api_refuses_to_start_on_an_empty_database_and_creates_nothing(
    own_postgres: EmbeddedPostgres,
) -> None:
    before = await schemas(own_postgres.url)
    app = create_api(Settings(database_url=own_postgres.url), tokens=TOKENS)
    with pytest.raises(ReadModelsMissing, match=r"python -m services\.db\.migrate"):
        async with app.router.lifespan_context(app):
            pass
    assert await schemas(own_postgres.url) == before  # not a schema, not a table
    # the migration is its own step; after it the same check passes
    assert await migrate_all(own_postgres.url) == "live"
    engine = make_engine(own_postgres.url, pool_size=1)
    try:
        assert await check_read_models(engine) == "live"
    finally:
        await engine.dispose()


def test_serve_api_on_an_empty_database_says_so_on_one_line_with_exit_code_6(
    own_nats: EmbeddedNats, own_postgres: EmbeddedPostgres, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "LEDGER_NATS_URL": own_nats.url,
        "LEDGER_DATABASE_URL": own_postgres.url,
        "LEDGER_API_TOKENS": '{"admin": "x"}',
        "LEDGER_DATA_DIR": str(tmp_path / "data"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "services.cli.commands", "serve", "api", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 6, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "python -m services.db.migrate" in lines[0], done.stderr
    migrated = subprocess.run(
        [sys.executable, "-m", "services.db.migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert migrated.returncode == 0, migrated.stderr


# -- as-of views, built aside -------------------------------------------------------------


@pytest.fixture
async def ledger(servers: Settings, projector: ProjectorApp) -> Settings:
    await ingest(servers, patients=8)
    await projector.wait_caught_up(60)
    return servers


@pytest.fixture
async def api(ledger: Settings) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    app = create_api(ledger, tokens=TOKENS)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api", timeout=60
        ) as client,
    ):
        yield app, client


async def trial_of(client: httpx.AsyncClient) -> str:
    (trial,) = (await client.get("/api/trials", headers=ADMIN)).json()
    return str(trial["trial_id"])


async def until_served(client: httpx.AsyncClient, url: str, **headers: str) -> httpx.Response:
    """Ask again while the view is being built (202), within a deadline."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        answer = await client.get(url, headers={**ADMIN, **headers})
        if answer.status_code != 202 or time.monotonic() > deadline:
            return answer
        await asyncio.sleep(0.1)


async def until(condition: Callable[[], bool], within: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        await asyncio.sleep(0.02)


def instant(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


async def test_an_as_of_view_is_202_with_progress_then_the_rows_of_a_replay_as_of(
    ledger: Settings, api: tuple[Any, httpx.AsyncClient]
) -> None:
    app, client = api
    trial = await trial_of(client)
    as_of = dt.datetime.now(dt.UTC)
    url = f"/api/trials/{trial}/patients?as_of={instant(as_of)}"
    first = await client.get(url, headers=ADMIN)
    assert first.status_code == 202, first.text  # answered at once, not after the build
    assert first.json()["status"] == "building"
    assert set(first.json()["progress"]) == {"done", "total"}
    # the API answers other requests while the view is built
    other = await client.get("/api/trials", headers=ADMIN)
    assert other.status_code == 200
    assert app.state.asof.building  # ... and the build was still under way then
    served = await until_served(client, url)
    assert served.status_code == 200, served.text
    live = (await client.get(f"/api/trials/{trial}/patients", headers=ADMIN)).json()
    assert served.json() == live  # nothing recorded since
    # the same rows as a replay as of the same instant
    nc = await connect(ledger.nats_url or "")
    engine = make_engine(ledger.database_url or "")
    try:
        replayed = await rebuild(
            nc.jetstream(), engine, "asof_replayed", all_projections(), as_of=as_of
        )
        (view,) = app.state.asof.ready.values()
        assert await digests(engine, view.schema) == replayed.digests
    finally:
        await engine.dispose()
        await nc.close()


async def test_a_page_of_a_past_view_says_it_is_being_prepared_and_refreshes(
    api: tuple[Any, httpx.AsyncClient],
) -> None:
    _, client = api
    trial = await trial_of(client)
    url = f"/trials/{trial}/patients?as_of={instant(dt.datetime.now(dt.UTC))}"
    page = await client.get(url, headers=ADMIN)
    assert page.status_code == 202, page.text[:300]
    assert page.headers["content-type"].startswith("text/html")
    assert 'http-equiv="refresh"' in page.text and "being prepared" in page.text
    served = await until_served(client, url)
    assert served.status_code == 200 and 'http-equiv="refresh"' not in served.text


async def test_evicted_views_are_dropped_and_a_failed_build_is_a_json_status(
    ledger: Settings, api: tuple[Any, httpx.AsyncClient]
) -> None:
    app, client = api
    trial = await trial_of(client)
    app.state.asof.ready.max_keys = 1
    now = dt.datetime.now(dt.UTC)
    first = f"/api/trials/{trial}/patients?as_of={instant(now)}"
    second = f"/api/trials/{trial}/patients?as_of={instant(now - dt.timedelta(days=1))}"
    assert (await until_served(client, first)).status_code == 200
    (old,) = [view.schema for view in app.state.asof.ready.values()]
    assert old in await schemas(ledger.database_url or "")
    assert (await until_served(client, second)).status_code == 200
    await until(lambda: app.state.asof.dropped == [old])  # dropped by its own process
    assert old not in await schemas(ledger.database_url or "")
    assert len(app.state.asof.ready) == 1
    # a builder that fails: the caller hears why, as JSON, not a 500
    app.state.asof.command = (sys.executable, "-c", FAILING_BUILDER)
    failing = f"/api/trials/{trial}/patients?as_of={instant(now - dt.timedelta(days=2))}"
    answer = await until_served(client, failing)
    assert answer.status_code == 503, answer.text
    assert answer.json()["status"] == "failed"
    assert "the ledger is on fire" in answer.json()["error"]
    assert answer.headers["retry-after"]


FAILING_BUILDER = """
import sys
if "--drop" in sys.argv:
    sys.exit(0)
print('{"total": 10}', flush=True)
print("RuntimeError: the ledger is on fire", file=sys.stderr)
sys.exit(1)
"""

# A builder that reports progress, then waits for its gate file (a condition with a deadline).
GATED_BUILDER = """
import json, os, sys, time
if "--drop" in sys.argv:
    open(os.environ["DROPS"], "a").write(sys.argv[-1] + "\\n")
    sys.exit(0)
print(json.dumps({"total": 10}), flush=True)
print(json.dumps({"done": 3}), flush=True)
deadline = time.monotonic() + 60
while not os.path.exists(os.environ["GATE"]) and time.monotonic() < deadline:
    time.sleep(0.01)
print(json.dumps({"ready": True, "events": 10}), flush=True)
"""


async def pending(builds: AsOfBuilds, moment: dt.datetime) -> AsOfPending:
    with pytest.raises(AsOfPending) as caught:
        await builds.schema_for(moment)
    return caught.value


async def ready_schema(builds: AsOfBuilds, moment: dt.datetime) -> str:
    deadline = time.monotonic() + 30
    while True:
        try:
            return await builds.schema_for(moment)
        except AsOfPending:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.02)


async def test_at_most_two_builds_at_once_and_the_oldest_view_is_dropped(tmp_path: Path) -> None:
    gate, drops = tmp_path / "gate", tmp_path / "drops"
    builds = AsOfBuilds(
        {"GATE": str(gate), "DROPS": str(drops)},
        keep=2,
        command=(sys.executable, "-c", GATED_BUILDER),
    )
    moments = [dt.datetime(2025, 1, day, tzinfo=dt.UTC) for day in (1, 2, 3)]
    try:
        assert (await pending(builds, moments[0])).status_code == 202
        assert (await pending(builds, moments[1])).status_code == 202
        busy = await pending(builds, moments[2])
        assert busy.status_code == 503 and busy.body["status"] == "busy"
        assert busy.retry_after >= 1
        # progress as the builder reports it
        await until(lambda: builds.building[moments[0].isoformat()].done == 3, 30)
        assert (await pending(builds, moments[0])).body["progress"] == {"done": 3, "total": 10}
        gate.touch()
        first = await ready_schema(builds, moments[0])
        await ready_schema(builds, moments[1])
        await ready_schema(builds, moments[0])  # now the most recently used
        third = await ready_schema(builds, moments[2])  # a build slot is free again
        assert first != third
        await until(lambda: drops.exists() and bool(drops.read_text().split()), 30)
        evicted = drops.read_text().split()
        # the least recently used (day 2) went, and only it
        assert evicted == [schema_name(moments[1], builds.owner)]
        assert len(builds.ready) == 2
    finally:
        await builds.close()
