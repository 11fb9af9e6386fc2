"""One site's bad event never stops the read models (issue 14 item 6).

Events are published straight to the LEDGER stream, around the writer — as an older writer or
someone with stream access would: dates in year 1 and 9999, an awareness instant past the end
of the calendar, a NUL character PostgreSQL cannot store. The projector derives what it can,
parks what it cannot with its reason and an error-level alert, and goes on with that patient's
and every other patient's later events; a rebuild and its comparison end; a database that is
briefly away is waited for, never blamed on an event.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from typing import Any

import pytest
import structlog
from fastapi.testclient import TestClient
from nats.js import JetStreamContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from events import seal_stored
from events.subjects import ledger_subject
from services.api.app import create_app as create_api
from services.config.settings import Settings
from services.db.migrate import make_engine, migrate
from services.db.projection_health import parked_events, projection_status
from services.ledger.connection import connect
from services.ledger.histories import Decoded, PatientHistories
from services.ledger.io import ensure_streams, ledger_head
from services.projector.app import all_projections
from services.projector.app import create_app as create_projector
from services.projector.failures import GaveUp
from services.projector.patient_view import CoreProjection
from services.projector.rebuild import compare, rebuild
from services.projector.runner import Applier, Message
from services.runtime.embedded import EmbeddedNats, EmbeddedPostgres
from tests.integration.helpers import event, parameters, unique_trial

pytestmark = pytest.mark.integration

SERIOUS = {"serious": True, "seriousness": ["hospitalisation"], "grade": 3}


@pytest.fixture
async def servers(own_nats: EmbeddedNats, own_postgres: EmbeddedPostgres) -> Settings:
    return Settings(nats_url=own_nats.url, database_url=own_postgres.url)


class RawLedger:
    """Publishes stored events to LEDGER directly, each chained to its patient's previous."""

    def __init__(self, js: JetStreamContext) -> None:
        self.js = js
        self.heads: dict[tuple[str, str, str], str] = {}

    async def publish(self, raw: dict[str, Any]) -> int:
        key = (raw["trial_id"], raw["site_id"], raw["patient_id"])
        stored = seal_stored(raw, recorded_at="2025-06-01T10:00:00Z", prev_hash=self.heads.get(key))
        self.heads[key] = stored["hash"]
        ack = await self.js.publish(
            ledger_subject(*key, raw["type"]),
            json.dumps(stored, ensure_ascii=False).encode(),
            headers={"Nats-Msg-Id": raw["event_id"]},
        )
        return int(ack.seq)


async def poisoned_trial(js: JetStreamContext) -> dict[str, Any]:
    """Two sites; at site01, P1's course holds every kind of bad event, each followed by
    normal ones; P2 at site02 is a normal patient recorded after them."""
    await ensure_streams(js)
    ledger = RawLedger(js)
    trial = unique_trial()
    seqs: dict[str, int] = {}
    await ledger.publish(parameters(trial))

    async def put(name: str, raw: dict[str, Any]) -> None:
        seqs[name] = await ledger.publish(raw)

    def p1(kind: str, **changes: Any) -> dict[str, Any]:
        return event(kind, trial, "site01", "P1", **changes)

    await put("p1_enrolled", p1("enrolled", occurred_on="2025-02-03"))
    await put("p1_baseline", p1("scan_read", occurred_on="2025-01-28"))
    await put("p1_infusion_year_1", p1("infusion_given", occurred_on="0001-01-01"))
    await put(
        "p1_scan_year_9999",
        p1("scan_read", occurred_on="9999-12-31", data={"timepoint": "follow_up"}),
    )
    await put(
        "p1_sae_aware_past_the_calendar",
        p1("ae_reported", data={**SERIOUS, "site_aware_at": "9999-12-31T23:00:00-05:00"}),
    )
    await put("p1_nul_text", p1("ae_reported", data={"verbatim": "nausea\u0000 and vomiting"}))
    # unreadable, and even its id cannot be stored as it is
    unreadable = p1("follow_up_contact", occurred_on="2025-06-01")
    unreadable["event_id"] = "not-a-uuid\u0000"
    await put("p1_unreadable_nul_id", unreadable)
    await put("p1_infusion", p1("infusion_given", occurred_on="2025-02-05"))
    await put("p1_ae", p1("ae_reported", occurred_on="2025-02-20", data=SERIOUS))
    await put("p1_follow_up", p1("follow_up_contact", occurred_on="2025-10-01"))
    await put(
        "p3_enrolled_year_1", event("enrolled", trial, "site01", "P3", occurred_on="0001-01-01")
    )
    await put("p2_enrolled", event("enrolled", trial, "site02", "P2"))
    await put("p2_infusion", event("infusion_given", trial, "site02", "P2"))
    return {"trial": trial, "seqs": seqs}


async def wait_for_head(
    engine: Any, schema: str, js: JetStreamContext, timeout: float = 120
) -> None:
    names = {p.name for p in all_projections()}
    deadline = asyncio.get_running_loop().time() + timeout
    found: dict[str, int] = {}
    head = await ledger_head(js)
    while asyncio.get_running_loop().time() < deadline:
        async with engine.connect() as conn:
            found = dict(
                (
                    await conn.execute(
                        text(f'SELECT projection, last_seq FROM "{schema}".projection_checkpoint')
                    )
                ).all()
            )
        if names <= set(found) and all(found[name] == head for name in names):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"projections did not reach head {head}: {found}")


async def rows(conn: AsyncConnection, sql: str, **params: Any) -> list[Any]:
    return list((await conn.execute(text(sql), params)).all())


async def test_a_poisoned_event_is_parked_with_an_alert_and_every_later_event_is_applied(
    servers: Settings,
) -> None:
    nc = await connect(servers.nats_url or "")
    js = nc.jetstream()
    engine = make_engine(servers.database_url or "")
    try:
        trial = await poisoned_trial(js)
        seqs = trial["seqs"]
        with structlog.testing.capture_logs() as logs:
            projector = await create_projector(servers, schema="poisoned")
            await projector.start()
            try:
                await wait_for_head(engine, "poisoned", js)
            finally:
                await asyncio.wait_for(projector.stop(), 30)

        async with engine.connect() as conn:
            parked = await rows(
                conn,
                "SELECT projection, seq, event_id, reason, parked_at FROM poisoned.parked_event",
            )
            # only the NUL text is beyond PostgreSQL; impossible dates are derived around
            bad = {seqs["p1_nul_text"], seqs["p1_unreadable_nul_id"]}
            assert {row.seq for row in parked} == bad
            assert not any("nausea" in row.reason for row in parked)  # no clinical text
            assert all(
                "SQLSTATE 22" in row.reason or "control character" in row.reason
                for row in parked
                if row.seq == seqs["p1_nul_text"]
            )
            assert all(row.parked_at is not None for row in parked)
            # P1's later events, P3's year-1 enrollment and P2 are all applied, in every read model
            indexed = {r.seq for r in await rows(conn, "SELECT seq FROM poisoned.event_index")}
            assert set(seqs.values()) - bad <= indexed
            last = await rows(
                conn,
                "SELECT patient_id, last_seq FROM poisoned.patient_state WHERE trial_id = :t",
                t=trial["trial"],
            )
            assert dict(last) == {
                "P1": seqs["p1_follow_up"],
                "P2": seqs["p2_infusion"],
                "P3": seqs["p3_enrolled_year_1"],
            }
            clinical = await rows(
                conn,
                "SELECT patient_id, at_seq FROM poisoned.clinical_patient WHERE trial_id = :t",
                t=trial["trial"],
            )
            assert dict(clinical)["P1"] >= seqs["p1_follow_up"]
            assert dict(clinical)["P2"] >= seqs["p2_infusion"]
            episodes = {
                r.ae_event_id
                for r in await rows(
                    conn,
                    "SELECT ae_event_id FROM poisoned.ae_episode WHERE trial_id = :t",
                    t=trial["trial"],
                )
            }
            assert len(episodes) == 2  # the SAE aware past the calendar, the later SAE
        alerts = [entry for entry in logs if entry["event"] == "event_parked"]
        assert {a["seq"] for a in alerts} == bad
        assert all(a["log_level"] == "error" and a["patient_id"] == "P1" for a in alerts)
        assert all("nausea" not in json.dumps(a, default=str) for a in alerts)  # no free text
        # what an operator queries: the projections' status and the trial's parked events
        status = await projection_status(engine, js, "poisoned")
        assert sum(row["parked"] for row in status) == len(parked)
        visible = await parked_events(engine, "poisoned", trial["trial"])
        assert {row["seq"] for row in visible} == bad
        assert await parked_events(engine, "poisoned", trial["trial"], "site02") == []
    finally:
        await engine.dispose()
        await nc.close()


async def test_a_rebuild_and_its_comparison_end_on_a_poisoned_ledger_and_an_operator_sees_the_parked(
    servers: Settings,
) -> None:
    nc = await connect(servers.nats_url or "")
    js = nc.jetstream()
    engine = make_engine(servers.database_url or "")
    try:
        trial = await poisoned_trial(js)
        projector = await create_projector(servers, schema="live")
        await projector.start()
        try:
            await wait_for_head(engine, "live", js)
        finally:
            await asyncio.wait_for(projector.stop(), 30)
        # the operator sees it over HTTP; a site only its own parked events
        api = create_api(servers, tokens={"admin": "admin-token", "site:site02": "site02-token"})
        with TestClient(api) as client:
            url = f"/api/trials/{trial['trial']}/projections"
            seen_by_admin = client.get(url, headers={"Authorization": "Bearer admin-token"})
            seen_by_site02 = client.get(url, headers={"Authorization": "Bearer site02-token"})
            # and every view of the trial answers, impossible dates and all
            admin = {"Authorization": "Bearer admin-token"}
            base = f"/api/trials/{trial['trial']}"
            views = [
                "/patients",
                "/patients/P1",
                "/patients/P1/events",
                "/patients/P3",
                "/endpoints",
                "/endpoints/OS",
                "/responses",
                "/safety/aes",
                "/safety/alerts",
                "/safety/incidence",
                "/export/adsl.csv",
                "/export/adtte.csv",
                "/export/adrs.csv",
                "/export/adae.csv",
            ]
            answers = {view: client.get(base + view, headers=admin).status_code for view in views}
            # an as-of view is built aside: 202 until it is ready (within a deadline)
            as_of_url = f"{base}/patients?as_of=2025-06-02T00:00:00Z"
            as_of_view = client.get(as_of_url, headers=admin)
            deadline = time.monotonic() + 120
            while as_of_view.status_code == 202 and time.monotonic() < deadline:
                time.sleep(0.1)  # noqa: ASYNC251 (TestClient serves from its own thread)
                as_of_view = client.get(as_of_url, headers=admin)
        assert answers == dict.fromkeys(views, 200)
        assert as_of_view.status_code == 200  # an as-of view is built, not hung
        assert seen_by_admin.status_code == seen_by_site02.status_code == 200
        assert trial["seqs"]["p1_nul_text"] in {
            row["seq"] for row in seen_by_admin.json()["parked_events"]
        }
        assert sum(row["parked"] for row in seen_by_admin.json()["projections"]) >= 1
        assert seen_by_site02.json()["parked_events"] == []
        report = await asyncio.wait_for(rebuild(js, engine, "replayed", all_projections()), 120)
        assert report.digests["parked_event"]["rows"] >= 1
        differences = await asyncio.wait_for(compare(engine, "live", "replayed"), 60)
        assert {table: found for table, found in differences.items() if found} == {}
        as_of = dt.datetime(2025, 6, 2, tzinfo=dt.UTC)  # after every recorded_at above
        seen = await asyncio.wait_for(
            rebuild(js, engine, "as_of", all_projections(), as_of=as_of), 120
        )
        assert seen.digests == report.digests
        assert trial["seqs"]["p1_nul_text"] in {
            row["seq"] for row in await parked_events(engine, "as_of", trial["trial"])
        }
    finally:
        await engine.dispose()
        await nc.close()


class FailingFirst:
    """The core projection, after a database failure on its first `failures` attempts."""

    name = "core"

    def __init__(self, failures: int, cause: str) -> None:
        self.inner = CoreProjection()
        self.failures = failures
        self.cause = cause
        self.attempts = 0

    async def apply(
        self, conn: AsyncConnection, batch: list[Decoded], histories: PatientHistories
    ) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            if self.cause == "connection lost":
                # the server ends this very session, as a restart or a network cut would
                await conn.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
            else:  # what PostgreSQL answers when two transactions collide
                await conn.execute(
                    text(
                        "DO $$ BEGIN RAISE EXCEPTION 'collided' "
                        "USING ERRCODE = 'serialization_failure'; END $$"
                    )
                )
        await self.inner.apply(conn, batch, histories)


async def ledger_messages(js: JetStreamContext, trial_id: str) -> list[Message]:
    sub = await js.subscribe(f"ledger.{trial_id}.>", ordered_consumer=True)
    messages = []
    head = await ledger_head(js)
    while not messages or messages[-1].seq < head:
        msg = await sub.next_msg(timeout=10)
        messages.append(Message(msg.metadata.sequence.stream, msg.subject, msg.data))
    await sub.unsubscribe()
    return messages


@pytest.mark.parametrize("cause", ["connection lost", "serialization failure"])
async def test_a_transient_database_failure_is_retried_a_bounded_number_of_times_never_parked(
    servers: Settings, cause: str
) -> None:
    nc = await connect(servers.nats_url or "")
    js = nc.jetstream()
    engine = make_engine(servers.database_url or "")
    try:
        trial_id = unique_trial()
        await ensure_streams(js)
        ledger = RawLedger(js)
        await ledger.publish(parameters(trial_id))
        await ledger.publish(event("enrolled", trial_id))
        messages = await ledger_messages(js, trial_id)
        await migrate(engine, "transient")

        recovering = FailingFirst(2, cause)
        applier = Applier(engine, "transient", recovering, PatientHistories(js))
        assert await applier.apply_resilient(messages) == messages[-1].seq
        assert recovering.attempts == 3

        await migrate(engine, "outage")
        away = FailingFirst(10_000, cause)
        stuck = Applier(engine, "outage", away, PatientHistories(js))
        with pytest.raises(GaveUp):
            await asyncio.wait_for(stuck.apply_resilient(messages), 120)
        assert 1 < away.attempts <= 10  # bounded: given up, not retried for ever
        async with engine.connect() as conn:
            for schema in ("transient", "outage"):
                parked = await rows(conn, f"SELECT seq FROM {schema}.parked_event")
                assert parked == []
            # nothing applied, nothing skipped: the events wait for the database
            applied = await rows(
                conn, "SELECT coalesce(max(last_seq), 0) FROM outage.projection_checkpoint"
            )
            assert applied == [(0,)]
    finally:
        await engine.dispose()
        await nc.close()


async def test_a_database_outage_beyond_the_retries_is_reported_then_caught_up_and_stop_still_stops(
    servers: Settings, own_postgres: EmbeddedPostgres
) -> None:
    nc = await connect(servers.nats_url or "")
    js = nc.jetstream()
    engine = make_engine(servers.database_url or "")
    trial_id = unique_trial()
    await ensure_streams(js)
    ledger = RawLedger(js)
    await ledger.publish(parameters(trial_id))
    await ledger.publish(event("enrolled", trial_id))
    projector = await create_projector(servers, schema="outage")
    await projector.start()
    try:
        await wait_for_head(engine, "outage", js)
        with structlog.testing.capture_logs() as logs:
            own_postgres.stop()
            await ledger.publish(event("infusion_given", trial_id))
            deadline = asyncio.get_running_loop().time() + 180
            while not any(entry["event"] == "projection_stalled" for entry in logs):
                assert asyncio.get_running_loop().time() < deadline, "no stall was reported"
                await asyncio.sleep(0.2)
            own_postgres.start()
            await wait_for_head(engine, "outage", js)
        stalled = [entry for entry in logs if entry["event"] == "projection_stalled"]
        assert all(entry["log_level"] == "error" for entry in stalled)
        assert not any(entry["event"] == "event_parked" for entry in logs)  # not the event's fault
    finally:
        runners = list(projector.tasks)
        await asyncio.wait_for(projector.stop(), 60)
        await engine.dispose()
        await nc.close()
    # each projection ended on the stop request, none had to be cancelled
    assert runners and all(task.done() and not task.cancelled() for task in runners)
