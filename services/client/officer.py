"""`trial-ledger alerts list` and `alerts ack`: a safety officer's work on single alerts.

`list` reads the safety view (the active read-model build, like `export`): every alert with
its status at this instant, deadlines and data-quality flags. `ack` acknowledges ONE alert
— and, with `--reported-on`, records the date its expedited report was submitted — as a
`sae_acknowledged` event on `intake.<trial>._safety`; the alert is looked up in ALERTS (the
record of what was raised), and the writer checks again that the ledger called for it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from events.alert_message import NotAnAlert, read_alert
from events.subjects import ALERTS_STREAM, ALERTS_SUBJECTS, SAFETY_SITE
from services.client.follow import acknowledgement
from services.client.site import SiteClient
from services.config.settings import Settings
from services.db.migrate import active_build, make_engine
from services.db.safety_tables import clock_from_row, sae_clock
from services.ledger.connection import connect
from services.ledger.io import ensure_streams, read_stream

LIST_FIELDS = (
    "alert_id",
    "kind",
    "follows",
    "reasons",
    "trial_id",
    "site_id",
    "patient_id",
    "ae_event_id",
    "term",
    "grade",
    "susar",
    "expedited_days",
    "acknowledgement_due",
    "report_due",
    "status",
    "acknowledged_at",
    "report_submitted_on",
    "clock_unknown",
    "data_quality",
    "not_yet_assessed",
)


def _listed(row: Any, now: dt.datetime) -> dict[str, Any]:
    clock = clock_from_row(row)
    values = {
        "alert_id": row.alert_id,
        "kind": row.kind,
        "follows": row.follows,
        "reasons": list(row.reasons),
        "trial_id": row.trial_id,
        "site_id": row.site_id,
        "patient_id": row.patient_id,
        "ae_event_id": row.ae_event_id,
        "term": row.term,
        "grade": row.grade,
        "susar": row.susar,
        "expedited_days": row.expedited_days,
        "acknowledgement_due": clock.acknowledgement_due,
        "report_due": clock.report_due,
        "status": clock.status(now),
        "acknowledged_at": clock.acknowledged_at,
        "report_submitted_on": clock.report_submitted_on,
        "clock_unknown": clock.clock_unknown,
        "data_quality": list(clock.data_quality),
        "not_yet_assessed": list(clock.not_yet_assessed),
    }
    return {
        key: value.isoformat() if isinstance(value, dt.date | dt.datetime) else value
        for key, value in values.items()
    }


async def run_list(
    settings: Settings,
    *,
    trial: str | None,
    only_open: bool,
    only_overdue: bool,
    as_json: bool,
    console: Console,
    now: dt.datetime | None = None,
) -> int:
    """Every alert of the safety view (one trial or all), filtered; the exit code."""
    if not settings.database_url:
        console.print(
            "[red]no database found[/red]: start `trial-ledger up` or set LEDGER_DATABASE_URL"
        )
        return 2
    moment = now or dt.datetime.now(dt.UTC)
    engine = make_engine(settings.database_url, pool_size=1)
    try:
        build = await active_build(engine)
        async with engine.connect() as raw:
            conn = await raw.execution_options(schema_translate_map={None: build})
            query = select(sae_clock).order_by(sae_clock.c.trigger_seq)
            if trial:
                query = query.where(sae_clock.c.trial_id == trial)
            rows = (await conn.execute(query)).all()
    finally:
        await engine.dispose()
    alerts = [_listed(row, moment) for row in rows]
    if only_open:  # open = not acknowledged yet, whether or not it is overdue
        alerts = [alert for alert in alerts if alert["acknowledged_at"] is None]
    if only_overdue:
        alerts = [alert for alert in alerts if alert["status"] == "overdue"]
    if as_json:
        console.file.write(json.dumps(alerts, indent=2) + "\n")  # machine-readable as is
        return 0
    table = Table(title=f"SAE alerts ({len(alerts)})")
    for column in ("alert", "kind", "patient", "term", "gr", "due", "status", "flags"):
        table.add_column(column)
    for alert in alerts:
        due = alert["report_due"] or alert["acknowledgement_due"] or "unknown"
        flags = [*alert["reasons"], *alert["data_quality"]]
        flags += [f"{item} not yet assessed" for item in alert["not_yet_assessed"]]
        table.add_row(
            alert["alert_id"],
            alert["kind"],
            f"{alert['trial_id']}/{alert['site_id']}/{alert['patient_id']}",
            alert["term"],
            str(alert["grade"]),
            due,
            alert["status"],
            ", ".join(flags),
        )
    console.print(table)
    return 0


async def _in_view(settings: Settings, alert_id: str) -> dict[str, Any] | None:
    """The alert as the safety view holds it (what `alerts list` showed)."""
    if not settings.database_url:
        return None
    engine = make_engine(settings.database_url, pool_size=1)
    try:
        build = await active_build(engine)
        async with engine.connect() as raw:
            conn = await raw.execution_options(schema_translate_map={None: build})
            row = (
                await conn.execute(
                    select(sae_clock).where(sae_clock.c.alert_id == alert_id.lower())
                )
            ).first()
    finally:
        await engine.dispose()
    return None if row is None else dict(row._mapping)


async def _in_alerts(js: Any, alert_id: str) -> dict[str, Any] | None:
    """The alert as published to ALERTS (raised, perhaps not projected yet)."""
    wanted = alert_id.lower()
    async for msg in read_stream(js, ALERTS_SUBJECTS, stream=ALERTS_STREAM):
        if str((msg.headers or {}).get("Nats-Msg-Id", "")).lower() == wanted:
            with contextlib.suppress(NotAnAlert):  # a message that is no alert acknowledges nothing
                return read_alert(msg.body).as_sent()
    return None


async def run_ack(
    settings: Settings,
    alert_id: str,
    *,
    officer: str,
    note: str | None,
    reported_on: dt.date | None,
    console: Console,
    today: dt.date | None = None,
) -> int:
    """Acknowledge one alert (and record its expedited report's date); the exit code."""
    if not settings.nats_url:
        console.print(
            "[red]no running system found[/red]: start `trial-ledger up` or set LEDGER_NATS_URL"
        )
        return 2
    nc = await connect(settings.nats_url, settings.creds_for("safety"), name="alerts-ack")
    try:
        js = nc.jetstream()
        await ensure_streams(js)
        alert = await _in_view(settings, alert_id) or await _in_alerts(js, alert_id)
        if alert is None:
            console.print(f"[red]no alert {alert_id} was raised[/red] (not in {ALERTS_STREAM})")
            return 1
        event = acknowledgement(
            alert,
            officer,
            today or dt.datetime.now(dt.UTC).date(),
            note=note,
            reported_on=reported_on,
        )
        reply = await SiteClient(nc, alert["trial_id"], SAFETY_SITE).submit(event)
    finally:
        await nc.close()
    status = reply.get("status")
    if status not in ("accepted", "duplicate"):
        console.print(f"[red]acknowledgement of {alert_id} refused[/red]: {json.dumps(reply)}")
        return 1
    what = "expedited report recorded" if reported_on else "acknowledged"
    console.print(f"{alert_id} {what} as {officer} ({status}, ledger seq {reply.get('seq')})")
    return 0
