"""A rebuild with helper processes (one partition of the patients each) builds exactly what a
rebuild in one process builds: every table's digest, the checkpoints, the parked events, an
as-of view; a helper that fails fails the rebuild."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from sqlalchemy import text

from events.subjects import ledger_subject
from services.client.site import SiteClient
from services.config.settings import Settings
from services.db.migrate import make_engine
from services.ledger.connection import connect
from services.projector.app import all_projections
from services.projector.rebuild import Helpers, compare, rebuild
from services.projector.safety_view import SafetyProjection
from services.runtime.embedded import EmbeddedNats, EmbeddedPostgres
from services.writer.app import WriterApp
from services.writer.app import create_app as create_writer
from tests.integration.helpers import event, parameters, unique_trial
from tests.integration.test_projections import ingest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def servers(own_nats: EmbeddedNats, own_postgres: EmbeddedPostgres) -> Settings:
    return Settings(nats_url=own_nats.url, database_url=own_postgres.url)


@pytest.fixture
async def ledger(servers: Settings) -> AsyncIterator[dict[str, Any]]:
    """A simulated trial, a correction and a retraction recorded after an instant, and one
    ledger message no projection can read (it is parked, in one process or many)."""
    # seals only at stop: one appended mid-test would race the live-vs-replay comparisons
    writer: WriterApp = await create_writer(
        servers, seal_every_events=10**9, seal_every_seconds=3600
    )
    await writer.start()
    try:
        await ingest(servers, patients=24, seed=11)
        nc = await connect(servers.nats_url or "")
        trial = unique_trial()
        sponsor = SiteClient(nc, trial, "_sponsor")
        assert (await sponsor.submit(parameters(trial)))["status"] == "accepted"
        site = SiteClient(nc, trial, "site01")
        patients = [f"P{n:03d}" for n in range(6)]
        scans = {}
        for patient in patients:
            assert (await site.submit(event("enrolled", trial, patient_id=patient)))[
                "status"
            ] == "accepted"
            scans[patient] = event(
                "scan_read",
                trial,
                patient_id=patient,
                occurred_on="2025-03-20",
                data={"timepoint": "follow_up", "lesions": []},
            )
            assert (await site.submit(scans[patient]))["status"] == "accepted"
        await asyncio.sleep(0.3)
        between = dt.datetime.now(dt.UTC)
        await asyncio.sleep(0.3)
        for patient in patients[:3]:
            correction = event(
                "event_corrected",
                trial,
                patient_id=patient,
                occurred_on="2025-03-20",
                reason="scan date mistyped",
                recorded_by="site01.monitor",
                data={
                    "target_event_id": scans[patient]["event_id"],
                    "occurred_on": "2025-03-18",
                    "data": scans[patient]["data"],
                },
            )
            assert (await site.submit(correction))["status"] == "accepted"
        retraction = event(
            "event_retracted",
            trial,
            patient_id=patients[4],
            occurred_on="2025-03-20",
            reason="entered for the wrong patient",
            recorded_by="site01.monitor",
            data={"target_event_id": scans[patients[4]]["event_id"]},
        )
        assert (await site.submit(retraction))["status"] == "accepted"
        # bypassing the writer: what a projection cannot decode is parked, never dropped
        await nc.jetstream().publish(
            ledger_subject(trial, "site01", "P900", "scan_read"), b"{not json"
        )
        await nc.close()
        yield {"trial": trial, "between": between}
    finally:
        await writer.stop()


async def _checkpoints(engine: Any, schema: str) -> list[tuple[str, int, int]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                f'SELECT projection, last_seq, applied FROM "{schema}".projection_checkpoint '
                "ORDER BY projection"
            )
        )
        return [(r[0], int(r[1]), int(r[2])) for r in rows]


async def test_helper_processes_build_exactly_what_one_process_builds(
    servers: Settings, ledger: dict[str, Any]
) -> None:
    nc = await connect(servers.nats_url or "")
    engine = make_engine(servers.database_url or "")
    js = nc.jetstream()
    try:
        one = await rebuild(js, engine, "one_process", all_projections())
        assert one.digests["parked_event"]["rows"] == 3  # one per projection
        assert one.digests["event_index"]["rows"] == one.events - 1
        for count in (2, 3):
            helpers = Helpers(count, servers.nats_url or "", servers.database_url or "")
            schema = f"parts_{count}"
            many = await rebuild(js, engine, schema, all_projections(), helpers=helpers)
            assert many.digests == one.digests
            assert (many.events, many.last_seq) == (one.events, one.last_seq)
            assert {
                t: r for t, r in (await compare(engine, "one_process", schema)).items() if r
            } == {}
            # one checkpoint per projection, as one process leaves them (no partition rows)
            assert await _checkpoints(engine, schema) == await _checkpoints(engine, "one_process")
        # as of an instant between the scans and their corrections
        helpers = Helpers(2, servers.nats_url or "", servers.database_url or "")
        between = ledger["between"]
        before = await rebuild(js, engine, "asof_one", all_projections(), as_of=between)
        parts = await rebuild(
            js, engine, "asof_parts", all_projections(), as_of=between, helpers=helpers
        )
        assert parts.digests == before.digests
        assert parts.events == before.events < one.events
        async with engine.connect() as conn:
            scans = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM asof_parts.patient_state "
                        "WHERE trial_id = :t AND last_scan_on = '2025-03-20'"
                    ),
                    {"t": ledger["trial"]},
                )
            ).scalar_one()
        assert scans == 6  # none of the corrections yet
    finally:
        await engine.dispose()
        await nc.close()


async def _kill_helpers_as_they_start(stop: asyncio.Event) -> int:
    """SIGKILL every rebuild helper this process starts, until told to stop."""
    killed = 0
    me = psutil.Process()
    while not stop.is_set():
        for child in me.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                if "services.projector.rebuild_part" in child.cmdline():
                    child.send_signal(signal.SIGKILL)
                    killed += 1
        await asyncio.sleep(0.01)
    return killed


async def test_a_helper_killed_mid_work_fails_the_rebuild(
    servers: Settings, ledger: dict[str, Any]
) -> None:
    nc = await connect(servers.nats_url or "")
    engine = make_engine(servers.database_url or "")
    try:
        helpers = Helpers(2, servers.nats_url or "", servers.database_url or "")
        stop = asyncio.Event()
        killer = asyncio.create_task(_kill_helpers_as_they_start(stop))
        # the rebuild says so, instead of reporting a build that lacks that helper's patients
        with pytest.raises(RuntimeError, match="rebuild helper failed \\(exit -9\\)"):
            await rebuild(nc.jetstream(), engine, "broken", all_projections(), helpers=helpers)
        stop.set()
        assert await killer >= 1
        # only the standard projections can be split across helpers
        with pytest.raises(ValueError, match="every standard projection"):
            await rebuild(
                nc.jetstream(), engine, "safety_only", [SafetyProjection()], helpers=helpers
            )
    finally:
        await engine.dispose()
        await nc.close()


async def test_the_replay_command_uses_helper_processes_and_matches_one_process(
    servers: Settings, ledger: dict[str, Any], tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "LEDGER_NATS_URL": servers.nats_url or "",
        "LEDGER_DATABASE_URL": servers.database_url or "",
        "LEDGER_DATA_DIR": str(tmp_path),
    }
    outputs = {}
    for workers in (1, 2):
        done = await asyncio.to_thread(
            subprocess.run,
            [
                *(sys.executable, "-m", "services.cli", "replay", "--json"),
                *("--schema", f"cli_{workers}", "--workers", str(workers)),
            ],
            env=env,
            cwd=ROOT,
            capture_output=True,
            timeout=240,
        )
        assert done.returncode == 0, done.stderr.decode()[-2000:]
        stdout = done.stdout.decode()
        outputs[workers] = json.loads(stdout[stdout.index("{") :])
    assert outputs[2]["workers"] == 2
    assert outputs[2]["digests"] == outputs[1]["digests"]
    assert outputs[2]["events"] == outputs[1]["events"]
