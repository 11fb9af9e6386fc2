"""Safety on real servers: one alert per serious AE and none otherwise, exactly once under
SIGKILL and beyond the duplicate window, offline safety officers catching up, AE intake
errors, and the safety view's open → acknowledged → overdue."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from nats.js import api as js_api
from nats.js.errors import NotFoundError
from rich.console import Console
from sqlalchemy import text

from events import ProtocolParametersSet, decode
from events.subjects import ALERTS_STREAM, LEDGER_STREAM
from projections.fold.history import Recorded, effective_history
from projections.safety.episodes import patient_safety
from projections.safety.sae_alerts import alert_log
from services.alerter.app import DURABLE, AlerterApp
from services.alerter.app import create_app as create_alerter
from services.api.app import create_app as create_api
from services.api.reading import Builds
from services.client.follow import Follower, follow_alerts, run_follow
from services.client.site import SiteClient
from services.config.settings import Settings
from services.db.migrate import make_engine, migrate_all
from services.ledger.connection import connect
from services.ledger.io import alerts_config, ensure_streams, ledger_head, read_stream
from services.projector.app import ProjectorApp
from services.projector.app import create_app as create_projector
from services.projector.rebuild import digests, rebuild
from services.projector.safety_view import SafetyProjection
from services.runtime.embedded import EmbeddedNats, EmbeddedPostgres, die_with_parent, free_port
from services.simulator.trial import generate_trial, submit_trial
from services.writer.app import WriterApp
from services.writer.app import create_app as create_writer
from services.writer.intake import SAFETY_INTAKE
from tests.integration.helpers import (
    SIMULATED_TODAY,
    event,
    forgotten_by_jetstream,
    parameters,
    unique_trial,
)

pytestmark = pytest.mark.integration

SAFETY_TABLES = ["safety_parameters", "safety_patient", "ae_episode", "sae_clock"]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def servers(own_nats: EmbeddedNats, own_postgres: EmbeddedPostgres) -> Settings:
    return Settings(nats_url=own_nats.url, database_url=own_postgres.url)


@pytest.fixture
def nats_only(own_nats: EmbeddedNats) -> Settings:
    return Settings(nats_url=own_nats.url)


@pytest.fixture
async def writer(own_nats: EmbeddedNats) -> AsyncIterator[WriterApp]:
    app = await create_writer(Settings(nats_url=own_nats.url))
    await app.start()
    yield app
    await app.stop()


@pytest.fixture
async def alerter(writer: WriterApp, own_nats: EmbeddedNats) -> AsyncIterator[AlerterApp]:
    app = await create_alerter(Settings(nats_url=own_nats.url))
    await app.start()
    yield app
    await app.stop()


# -- helpers ------------------------------------------------------------------------------


async def simulate(settings: Settings, *, patients: int, seed: int) -> str:
    trial = generate_trial(seed=seed, sites=3, patients=patients, today=SIMULATED_TODAY)
    nc = await connect(settings.nats_url or "")
    try:
        report = await submit_trial(
            trial, lambda site: SiteClient(nc, trial.trial_id, site), batch_size=50
        )
    finally:
        await nc.close()
    assert report.accepted > 0
    return trial.trial_id


async def alerts_in_stream(settings: Settings, trial_id: str) -> list[dict[str, Any]]:
    """Every message ALERTS holds for the trial, duplicates included, in stream order."""
    nc = await connect(settings.nats_url or "")
    try:
        return [
            m.json()
            async for m in read_stream(
                nc.jetstream(), f"alerts.sae.{trial_id}.>", stream=ALERTS_STREAM
            )
        ]
    finally:
        await nc.close()


async def expected_from_ledger(
    settings: Settings, trial_id: str
) -> tuple[set[str], set[str], set[str]]:
    """Independently of the alerter: (serious AE ids, non-serious AE ids, alert ids)."""
    nc = await connect(settings.nats_url or "")
    try:
        entries = [
            Recorded(m.seq, decode(m.json()))
            async for m in read_stream(nc.jetstream(), f"ledger.{trial_id}.>")
        ]
    finally:
        await nc.close()
    params = next(
        r.event.data.parameters for r in entries if isinstance(r.event, ProtocolParametersSet)
    )
    by_patient: dict[tuple[str, str, str], list[Recorded]] = {}
    for entry in entries:
        if entry.event.site_id != "_sponsor":
            by_patient.setdefault(entry.event.patient_key, []).append(entry)
    serious: set[str] = set()
    other: set[str] = set()
    alert_ids: set[str] = set()
    for recorded in by_patient.values():
        events = effective_history(recorded).events
        safety = patient_safety(events, params)
        for episode in safety.episodes:
            (serious if episode.serious else other).add(episode.ae_event_id)
        alert_ids |= {alert.alert_id for alert in alert_log(recorded, lambda _seq: params)}
    return serious, other, alert_ids


async def assert_one_alert_per_serious_ae(
    settings: Settings, trial_id: str
) -> list[dict[str, Any]]:
    serious, non_serious, alert_ids = await expected_from_ledger(settings, trial_id)
    published = await alerts_in_stream(settings, trial_id)
    by_ae = [alert["ae_event_id"] for alert in published if alert["kind"] == "initial"]
    assert serious and non_serious, "the simulated trial should have both kinds of AE"
    assert sorted(by_ae) == sorted(serious), "exactly one initial alert per serious AE"
    assert not {alert["ae_event_id"] for alert in published} & non_serious
    ids = [alert["alert_id"] for alert in published]
    assert len(ids) == len(set(ids)) and set(ids) == alert_ids, "every escalation once"
    return published


async def wait_alerter(settings: Settings, durable: str = DURABLE, timeout: float = 60) -> None:
    """Until the alerter's durable consumer has settled every ledger entry. A restarted
    alerter re-creates its consumer at its ack floor (and a slow machine may take a while to
    start it at all), so "not found" is waited out too, within the same deadline."""
    nc = await connect(settings.nats_url or "")
    js = nc.jetstream()
    pending = "no consumer yet"
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            with contextlib.suppress(NotFoundError):
                info = await js.consumer_info(LEDGER_STREAM, durable)
                if info.num_pending == 0 and info.num_ack_pending == 0:
                    return
                pending = f"{info.num_pending} pending"
            await asyncio.sleep(0.1)
        raise AssertionError(f"alerter not caught up: {pending}")
    finally:
        await nc.close()


def serious_ae(trial: str, patient: str, **data: Any) -> dict[str, Any]:
    base = {
        "term": "Hypertension",
        "grade": 3,
        "serious": True,
        "seriousness": ["hospitalisation"],
        "attribution": {"lenvatinib": "probable"},
        "expected": False,
        "site_aware_at": "2025-02-20T09:30:00Z",
    }
    return event("ae_reported", trial, patient_id=patient, data={**base, **data})


async def enrolled_trial(nc: Any, patients: list[str]) -> str:
    trial = unique_trial()
    assert (await SiteClient(nc, trial, "_sponsor").submit(parameters(trial)))[
        "status"
    ] == "accepted"
    site = SiteClient(nc, trial, "site01")
    replies = await site.submit_batch([event("enrolled", trial, patient_id=p) for p in patients])
    assert {reply["status"] for reply in replies} == {"accepted"}
    return trial


# -- one alert per serious AE -------------------------------------------------------------


async def test_every_serious_ae_of_the_simulated_trial_raises_exactly_one_alert_and_no_other_ae_does(
    servers: Settings,
    alerter: AlerterApp,
) -> None:
    projector: ProjectorApp = await create_projector(servers)
    await projector.start()
    try:
        trial_id = await simulate(servers, patients=40, seed=5)
        await alerter.wait_caught_up(60)
        await projector.wait_caught_up(120)
    finally:
        await projector.stop()
    published = await assert_one_alert_per_serious_ae(servers, trial_id)
    assert all(
        alert["report_due"] is None for alert in published if alert["expedited_days"] is None
    )
    engine = make_engine(servers.database_url or "")
    nc = await connect(servers.nats_url or "")
    try:
        async with engine.connect() as conn:
            viewed = {
                row[0]
                for row in await conn.execute(
                    text("SELECT alert_id FROM live.sae_clock WHERE trial_id = :t"), {"t": trial_id}
                )
            }
        assert viewed == {alert["alert_id"] for alert in published}
        report = await rebuild(nc.jetstream(), engine, "safety_replay", [SafetyProjection()])
        live = await digests(engine, "live", SAFETY_TABLES)
        assert live == {table: report.digests[table] for table in SAFETY_TABLES}
    finally:
        await engine.dispose()
        await nc.close()


def _alerter_process(settings: Settings, data_dir: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "LEDGER_NATS_URL": settings.nats_url or "",
        "LEDGER_DATA_DIR": str(data_dir),
    }
    log = open(data_dir / "alerter.log", "ab")  # noqa: SIM115 - the child owns it
    return subprocess.Popen(
        [sys.executable, "-m", "services.alerter"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        preexec_fn=die_with_parent(signal.SIGTERM),  # no orphan if the run dies
    )


@pytest.mark.fault
async def test_sigkill_of_the_alerter_during_ingest_neither_loses_nor_duplicates_an_alert(
    nats_only: Settings,
    writer: WriterApp,
    tmp_path: Path,
) -> None:
    rng = random.Random(11)
    ingesting = asyncio.create_task(simulate(nats_only, patients=150, seed=12))
    process = _alerter_process(nats_only, tmp_path)
    kills = 0
    try:
        while not ingesting.done() or kills < 6:
            await asyncio.sleep(rng.uniform(0.3, 1.0))
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            kills += 1
            process = _alerter_process(nats_only, tmp_path)
        trial_id = await ingesting
        await wait_alerter(nats_only, timeout=120)
    finally:
        process.terminate()
        process.wait(20)
    assert kills >= 6
    await assert_one_alert_per_serious_ae(nats_only, trial_id)


async def test_an_alerter_rereading_the_ledger_after_the_duplicate_window_raises_nothing_twice(
    nats_only: Settings,
    writer: WriterApp,
) -> None:
    nc = await connect(nats_only.nats_url or "")
    js = nc.jetstream()
    # ALERTS with a one-second duplicate window: JetStream alone would let a re-send through.
    await js.update_stream(alerts_config().evolve(duplicate_window=1.0))
    first = await create_alerter(nats_only, durable="first_alerter")
    await first.start()
    try:
        trial = await enrolled_trial(nc, ["P1", "P2", "P3"])
        site = SiteClient(nc, trial, "site01")
        for patient in ("P1", "P2", "P3"):
            assert (await site.submit(serious_ae(trial, patient)))["status"] == "accepted"
        await first.wait_caught_up(30)
        assert first.raised == 3
    finally:
        await first.stop()
    async for alert in read_stream(js, f"alerts.sae.{trial}.>", stream=ALERTS_STREAM):
        await forgotten_by_jetstream(js, ALERTS_STREAM, alert.json()["alert_id"], alert.seq)
    second = await create_alerter(nats_only, durable="second_alerter")
    await second.start()
    try:
        await second.wait_caught_up(30)
        assert second.raised == 0
    finally:
        await second.stop()
        await nc.close()
    assert len(await alerts_in_stream(nats_only, trial)) == 3


# -- the safety officer's durable subscription --------------------------------------------


async def test_an_officer_offline_during_100_saes_receives_all_100_on_return_each_once(
    nats_only: Settings,
    alerter: AlerterApp,
) -> None:
    nc = await connect(nats_only.nats_url or "")
    js = nc.jetstream()
    console = Console(file=io.StringIO(), width=200)
    received: list[dict[str, Any]] = []

    async def record(alert: dict[str, Any]) -> None:
        received.append(alert)

    try:
        # Catch up on whatever other trials left in ALERTS, then go offline.
        await follow_alerts(js, "officer_offline", record, once=True)
        received.clear()
        patients = [f"P{n:03d}" for n in range(10)]
        trial = await enrolled_trial(nc, patients)
        events = [serious_ae(trial, patient) for patient in patients for _ in range(10)]
        replies = await SiteClient(nc, trial, "site01").submit_batch(events)
        assert [reply["status"] for reply in replies] == ["accepted"] * 100
        await alerter.wait_caught_up(60)
        back = Follower(console, "officer.one")
        await follow_alerts(js, "officer_offline", back, once=True)
        again = await follow_alerts(js, "officer_offline", record, once=True)
    finally:
        await nc.close()
    mine = [alert for alert in back.seen if alert["trial_id"] == trial]
    assert sorted(alert["ae_event_id"] for alert in mine) == sorted(e["event_id"] for e in events)
    assert len({alert["alert_id"] for alert in mine}) == 100
    assert again == 0 and received == []


# -- bad AE input -------------------------------------------------------------------------


async def test_bad_ae_inputs_are_rejected_by_the_intake_with_clear_errors(
    writer: WriterApp, own_nats: EmbeddedNats
) -> None:
    nc = await connect(own_nats.url)
    try:
        trial = await enrolled_trial(nc, ["P1"])
        site = SiteClient(nc, trial, "site01")
        unknown = await site.submit(serious_ae(trial, "P1", term="Hypertensionn"))
        too_high = await site.submit(serious_ae(trial, "P1", term="Fatigue", grade=4))
        fatal = await site.submit(serious_ae(trial, "P1", grade=5, seriousness=["death"]))
        acknowledged_by_site = await site.submit(event("sae_acknowledged", trial, patient_id="P1"))
        head = await ledger_head(nc.jetstream())
    finally:
        await nc.close()
    for reply in (unknown, too_high, fatal, acknowledged_by_site):
        assert reply["status"] == "rejected"
    assert unknown["errors"][0]["field"] == "data.term"
    assert "not a CTCAE v5.0 term" in unknown["errors"][0]["message"]
    assert "Did you mean 'Hypertension'" in unknown["errors"][0]["message"]
    assert too_high["errors"] == [
        {
            "field": "data.grade",
            "message": "'Fatigue' has no grade 4 in CTCAE v5.0; its grades are 1, 2 and 3.",
        }
    ]
    assert any("needs the patient's death recorded first" in e["message"] for e in fatal["errors"])
    assert SAFETY_INTAKE in acknowledged_by_site["errors"][0]["message"]
    assert head == 2  # parameters and the enrollment: nothing else reached the ledger


# -- the safety view ----------------------------------------------------------------------


def api_for(settings: Settings, engine: Any, tokens: dict[str, str]) -> httpx.AsyncClient:
    app = create_api(settings, tokens=tokens)
    app.state.engine = engine
    app.state.builds = Builds(engine)
    app.state.nc = None
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


async def test_the_safety_view_shows_an_alert_open_then_overdue_then_acknowledged(
    servers: Settings,
    alerter: AlerterApp,
) -> None:
    projector: ProjectorApp = await create_projector(servers)
    await projector.start()
    engine = make_engine(servers.database_url or "")
    nc = await connect(servers.nats_url or "")
    tokens = {"admin": "admin-token", "site:site02": "site02-token"}
    admin = {"Authorization": "Bearer admin-token"}
    try:
        trial = await enrolled_trial(nc, ["P1"])
        site = SiteClient(nc, trial, "site01")
        sae = serious_ae(trial, "P1")
        mild = event(
            "ae_reported",
            trial,
            patient_id="P1",
            data={"term": "Fatigue", "grade": 1, "serious": False, "seriousness": []},
        )
        infusion = event("infusion_given", trial, patient_id="P1")
        for item in (infusion, sae, mild):
            assert (await site.submit(item))["status"] == "accepted"
        await alerter.wait_caught_up(30)
        await projector.wait_caught_up(60)
        async with api_for(servers, engine, tokens) as http:
            url = f"/api/trials/{trial}/safety"
            [alert] = (await http.get(f"{url}/alerts", headers=admin)).raise_for_status().json()
            awareness = dt.datetime.fromisoformat(alert["awareness_at"])
            in_three_days = (awareness + dt.timedelta(days=3)).isoformat()
            overdue = (
                await http.get(f"{url}/alerts", headers=admin, params={"at": in_three_days})
            ).json()
            hidden = (
                await http.get(f"{url}/alerts", headers={"Authorization": "Bearer site02-token"})
            ).json()

            shown = io.StringIO()
            code = await run_follow(
                servers,
                durable="officer_view",
                ack=True,
                officer="sponsor.safety_officer",
                once=True,
                console=Console(file=shown, width=300),
            )
            await projector.wait_caught_up(60)
            acknowledged = (
                await http.get(f"{url}/alerts", headers=admin, params={"at": in_three_days})
            ).json()
            report_late = (
                await http.get(
                    f"{url}/alerts",
                    headers=admin,
                    params={"at": (awareness + dt.timedelta(days=16)).isoformat()},
                )
            ).json()
            aes = (await http.get(f"{url}/aes", headers=admin)).json()
            incidence = (await http.get(f"{url}/incidence", headers=admin)).json()
    finally:
        await projector.stop()
        await engine.dispose()
        await nc.close()
    assert alert["alert_id"] == f"sae-{sae['event_id']}"
    assert (alert["status"], alert["susar"], alert["expedited_days"]) == ("open", True, 15)
    assert alert["report_due"] == (awareness.date() + dt.timedelta(days=15)).isoformat()
    assert alert["late_entry"] is True  # site aware on 2025-02-20, entered today
    assert overdue[0]["status"] == "overdue" and overdue[0]["acknowledgement_overdue"]
    assert hidden == []
    assert code == 0
    assert (
        alert["alert_id"] in shown.getvalue()
        and "acknowledged as sponsor.safety_officer" in shown.getvalue()
    )
    assert (
        acknowledged[0]["status"] == "acknowledged"
        and len(acknowledged[0]["acknowledgement_seqs"]) == 1
    )
    assert report_late[0]["status"] == "overdue" and report_late[0]["report_overdue"]
    assert [(a["term"], a["serious"], a["susar"]) for a in aes] == [
        ("Hypertension", True, True),
        ("Fatigue", False, False),
    ]
    assert incidence["n_treated"] == 1
    assert incidence["overall"]["any_grade"]["patients"] == 1
    assert incidence["overall"]["by_worst_grade"]["3"]["patients"] == 1
    assert incidence["serious"]["seqs"] == [aes[0]["seq"]]


async def test_alerts_follow_once_in_a_fresh_durable_sees_only_alerts_and_acks_each(
    nats_only: Settings,
) -> None:
    nc = await connect(nats_only.nats_url or "")
    js = nc.jetstream()
    try:
        await ensure_streams(js)
        body = {
            "alert_id": "sae-x",
            "trial_id": "T",
            "site_id": "s",
            "patient_id": "p",
            "ae_event_id": "x",
            "seq": 1,
            "term": "Hypertension",
            "grade": 3,
            "seriousness": ["hospitalisation"],
            "expedited_days": None,
            "report_due": None,
            "raised_at": "2025-01-01T00:00:00Z",
        }
        await js.publish(
            "alerts.sae.T.s", json.dumps(body).encode(), headers={"Nats-Msg-Id": "sae-x"}
        )
        seen: list[dict[str, Any]] = []

        async def record(alert: dict[str, Any]) -> None:
            seen.append(alert)

        assert await follow_alerts(js, "fresh_officer", record, once=True) == 1
        info = await js.consumer_info(ALERTS_STREAM, "fresh_officer")
        assert (info.num_pending, info.num_ack_pending) == (0, 0)
        assert info.config.ack_policy == js_api.AckPolicy.EXPLICIT
    finally:
        await nc.close()
    assert seen == [body]


async def test_the_alert_stream_pushes_a_new_sae_to_a_connected_dashboard_live(
    servers: Settings,
    alerter: AlerterApp,
) -> None:
    port = free_port()
    await migrate_all(servers.database_url or "")  # the API only reads: migrated beforehand
    api = create_api(servers, tokens={"safety": "safety-token"})
    server = uvicorn.Server(
        uvicorn.Config(api, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    serving = asyncio.create_task(server.serve())
    nc = await connect(servers.nats_url or "")
    try:
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.02)
        trial = await enrolled_trial(nc, ["P1"])
        sae = serious_ae(trial, "P1")
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http,
            http.stream(
                "GET",
                f"/api/trials/{trial}/safety/alerts/stream",
                headers={"Authorization": "Bearer safety-token"},
            ) as response,
        ):
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = response.aiter_lines()
            assert await anext(lines) == ": connected"
            assert (await SiteClient(nc, trial, "site01").submit(sae))["status"] == "accepted"
            received = [await asyncio.wait_for(anext(lines), 10) for _ in range(3)]
    finally:
        server.should_exit = True
        await serving
        await nc.close()
    event_line, data_line = [line for line in received if line][:2]
    assert event_line == "event: sae_alert"
    assert json.loads(data_line.removeprefix("data: "))["alert_id"] == f"sae-{sae['event_id']}"
