"""Projections on real servers: equal to a replay, exactly once under SIGKILL, PostgreSQL restarts,
as-of replays, the audit trail of a correction."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from services.client.site import SiteClient
from services.config.settings import Settings
from services.db.migrate import make_engine, migrate
from services.ledger.connection import connect
from services.ledger.io import ledger_head
from services.projector.app import ProjectorApp, all_projections
from services.projector.app import create_app as create_projector
from services.projector.rebuild import compare, digests, rebuild
from services.runtime.embedded import EmbeddedNats, EmbeddedPostgres
from services.simulator.trial import generate_trial, submit_trial
from services.writer.app import WriterApp
from services.writer.app import create_app as create_writer
from tests.integration.faults import ACKNOWLEDGED, Answers, RecordingClient, ledger_grows
from tests.integration.helpers import SIMULATED_TODAY, event, parameters, unique_trial

pytestmark = pytest.mark.integration


@pytest.fixture
async def servers(
    own_nats: EmbeddedNats, own_postgres: EmbeddedPostgres
) -> AsyncIterator[Settings]:
    return Settings(nats_url=own_nats.url, database_url=own_postgres.url)


@pytest.fixture
async def writer(servers: Settings) -> AsyncIterator[WriterApp]:
    # seals only at stop: one appended mid-test would race the live-vs-replay comparisons
    app = await create_writer(servers, seal_every_events=10**9, seal_every_seconds=3600)
    await app.start()
    yield app
    await app.stop()


async def ingest(settings: Settings, *, patients: int, seed: int = 3, sites: int = 6) -> int:
    trial = generate_trial(seed=seed, sites=sites, patients=patients, today=SIMULATED_TODAY)
    conns: dict[str, Any] = {}
    for site in ["_sponsor", *trial.site_events]:
        conns[site] = await connect(settings.nats_url or "")
    answers = Answers()
    await submit_trial(
        trial,
        lambda site: RecordingClient(SiteClient(conns[site], trial.trial_id, site), answers),
        batch_size=50,
    )
    for nc in conns.values():
        await nc.close()
    # Distinct events acknowledged: a request retried after a lost answer hears "duplicate"
    # for what its first try recorded, and that event is in the ledger all the same.
    return len(answers.with_status(ACKNOWLEDGED))


async def assert_live_equals_replay(settings: Settings, schema: str = "live") -> dict[str, Any]:
    nc = await connect(settings.nats_url or "")
    engine = make_engine(settings.database_url or "")
    try:
        report = await rebuild(nc.jetstream(), engine, "replay_check", all_projections())
        live = await digests(engine, schema)
        differences = await compare(engine, schema, "replay_check")
        assert {t: rows for t, rows in differences.items() if rows} == {}
        assert live == report.digests
        return live
    finally:
        await engine.dispose()
        await nc.close()


async def wait_caught_up(settings: Settings, timeout: float = 120.0) -> None:
    nc = await connect(settings.nats_url or "")
    engine = make_engine(settings.database_url or "")
    names = [p.name for p in all_projections()]
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            head = await ledger_head(nc.jetstream())
            async with engine.connect() as conn:
                found = dict(
                    (
                        await conn.execute(
                            text("SELECT projection, last_seq FROM live.projection_checkpoint")
                        )
                    ).all()
                )
            if all(found.get(name) == head for name in names):
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"projections did not catch up: head {head}, checkpoints {found}")
    finally:
        await engine.dispose()
        await nc.close()


async def test_live_read_models_equal_a_fresh_replay_after_the_simulated_trial(
    servers: Settings, writer: WriterApp
) -> None:
    projector = await create_projector(servers)
    await projector.start()
    accepted = await ingest(servers, patients=30)
    await projector.wait_caught_up(120)
    await projector.stop()
    live = await assert_live_equals_replay(servers)
    assert live["event_index"]["rows"] == accepted
    assert live["patient_state"]["rows"] == 30
    assert live["parked_event"]["rows"] == 0


def _projector_process(settings: Settings, data_dir: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "LEDGER_NATS_URL": settings.nats_url or "",
        "LEDGER_DATABASE_URL": settings.database_url or "",
        "LEDGER_DATA_DIR": str(data_dir),
    }
    log = open(data_dir / "projector.log", "ab")  # noqa: SIM115 - the child owns it
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli", "serve", "projector"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=Path(__file__).resolve().parents[2],
    )


@pytest.mark.fault
async def test_sigkill_of_the_projector_ten_times_during_ingest_loses_and_repeats_nothing(
    servers: Settings, writer: WriterApp, tmp_path: Path
) -> None:
    engine = make_engine(servers.database_url or "")
    await migrate(engine)
    await migrate(engine, "live")
    await engine.dispose()
    rng = random.Random(20)
    ingesting = asyncio.create_task(ingest(servers, patients=500, seed=9))
    kills = 0
    process = _projector_process(servers, tmp_path)
    try:
        while kills < 10:
            await asyncio.sleep(rng.uniform(0.4, 1.6))
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            kills += 1
            process = _projector_process(servers, tmp_path)
        accepted = await ingesting
        assert accepted >= 15_000
        await wait_caught_up(servers, timeout=240)
    finally:
        process.terminate()
        process.wait(20)
    live = await assert_live_equals_replay(servers)
    assert live["event_index"]["rows"] == accepted
    assert kills == 10


@pytest.mark.fault
async def test_a_postgresql_restart_mid_ingest_is_survived(
    servers: Settings, writer: WriterApp, own_postgres: EmbeddedPostgres
) -> None:
    projector: ProjectorApp = await create_projector(servers)
    await projector.start()
    ingesting = asyncio.create_task(ingest(servers, patients=120, seed=4))
    await ledger_grows(servers.nats_url or "", ingesting, more=200)  # mid-ingest
    own_postgres.stop()
    await ledger_grows(servers.nats_url or "", ingesting, more=200)  # intake goes on without it
    own_postgres.start()
    accepted = await ingesting
    await projector.wait_caught_up(180)
    await projector.stop()
    live = await assert_live_equals_replay(servers)
    assert live["event_index"]["rows"] == accepted


async def test_as_of_replay_shows_the_value_before_and_after_a_correction(
    servers: Settings, writer: WriterApp
) -> None:
    nc = await connect(servers.nats_url or "")
    trial = unique_trial()
    assert (await SiteClient(nc, trial, "_sponsor").submit(parameters(trial)))[
        "status"
    ] == "accepted"
    site = SiteClient(nc, trial, "site01")
    assert (await site.submit(event("enrolled", trial)))["status"] == "accepted"
    scan = event(
        "scan_read", trial, occurred_on="2025-03-20", data={"timepoint": "follow_up", "lesions": []}
    )
    first = await site.submit(scan)
    assert first["status"] == "accepted"
    await asyncio.sleep(0.3)
    between = dt.datetime.now(dt.UTC)
    await asyncio.sleep(0.3)
    correction = event(
        "event_corrected",
        trial,
        occurred_on="2025-03-20",
        reason="scan date mistyped",
        recorded_by="site01.monitor",
        data={
            "target_event_id": scan["event_id"],
            "occurred_on": "2025-03-18",
            "data": scan["data"],
        },
    )
    assert (await site.submit(correction))["status"] == "accepted"
    after = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    engine = make_engine(servers.database_url or "")
    js = nc.jetstream()
    try:
        await rebuild(js, engine, "asof_before", all_projections(), as_of=between)
        await rebuild(js, engine, "asof_after", all_projections(), as_of=after)
        async with engine.connect() as conn:
            before_scan = (
                await conn.execute(
                    text("SELECT last_scan_on FROM asof_before.patient_state WHERE trial_id = :t"),
                    {"t": trial},
                )
            ).scalar()
            after_scan = (
                await conn.execute(
                    text("SELECT last_scan_on FROM asof_after.patient_state WHERE trial_id = :t"),
                    {"t": trial},
                )
            ).scalar()
            trail = (
                await conn.execute(
                    text(
                        "SELECT status, changes, recorded_by, reason FROM asof_after.audit_trail WHERE trial_id = :t ORDER BY seq"
                    ),
                    {"t": trial},
                )
            ).all()
    finally:
        await engine.dispose()
        await nc.close()
    assert before_scan == dt.date(2025, 3, 20)
    assert after_scan == dt.date(2025, 3, 18)
    statuses = [row.status for row in trail]
    assert statuses == ["effective", "corrected", "effective"]
    change = trail[-1]
    assert {"field": "occurred_on", "old": "2025-03-20", "new": "2025-03-18"} in change.changes
    assert (change.recorded_by, change.reason) == ("site01.monitor", "scan date mistyped")
