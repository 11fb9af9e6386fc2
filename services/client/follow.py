"""`trial-ledger alerts follow`: a safety officer's durable subscription to ALERTS.

The durable consumer remembers what the officer has seen: after being offline it delivers
every alert raised meanwhile, each once (an alert is acked only after it was shown and, with
`--ack`, acknowledged through the intake). Acknowledgements are `sae_acknowledged` events on
`intake.<trial>._safety`; their event_id is derived from (alert, officer), so a retry after a
crash is answered "duplicate" by the writer instead of recording a second acknowledgement.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import re
import signal
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import NotFoundError
from rich.console import Console

from events.alert_message import NotAnAlert, read_alert
from events.subjects import ALERTS_STREAM, ALERTS_SUBJECTS, SAFETY_SITE
from services.client.site import SiteClient
from services.config.settings import Settings
from services.ledger.connection import connect
from services.ledger.io import ensure_streams

DURABLE_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ACK_NAMESPACE = uuid.UUID("6f1c3c55-6b0e-4d55-9a57-2b8f5a7c1e01")

Submit = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


def acknowledgement(
    alert: dict[str, Any],
    officer: str,
    today: dt.date,
    *,
    note: str | None = None,
    reported_on: dt.date | None = None,
) -> dict[str, Any]:
    """The `sae_acknowledged` event an officer submits for one alert (DESIGN.md, DOMAIN.md);
    with `reported_on`, the date its expedited report was submitted. The event_id is derived
    from (alert, officer[, report date]): a retry is answered "duplicate", and acknowledging
    by `alerts follow --ack` or `alerts ack` is the same event."""
    name = f"{alert['alert_id']}|{officer}"
    data: dict[str, Any] = {"alert_id": alert["alert_id"], "ae_event_id": alert["ae_event_id"]}
    if reported_on is not None:
        name += f"|report|{reported_on.isoformat()}"
        data["expedited_report_submitted_on"] = reported_on.isoformat()
    if note:
        data["note"] = note
    return {
        "event_id": str(uuid.uuid5(ACK_NAMESPACE, name)),
        "type": "sae_acknowledged",
        "schema_version": 1,
        "trial_id": alert["trial_id"],
        "site_id": alert["site_id"],
        "patient_id": alert["patient_id"],
        "occurred_on": today.isoformat(),
        "recorded_by": officer,
        "data": data,
    }


def describe(alert: dict[str, Any]) -> str:
    """One line per alert for the terminal (no clinical free text: term and grade only)."""
    clock = (
        f"expedited report due {alert.get('report_due') or 'UNKNOWN'} ({alert['expedited_days']} d)"
        if alert.get("expedited_days")
        else "no expedited report"
    )
    late = " [bold red]LATE ENTRY[/bold red]" if alert.get("late_entry") else ""
    susar = " [bold]SUSAR[/bold]" if alert.get("susar") else ""
    kind = "SAE"
    if alert.get("kind") == "follow_up":
        kind = f"SAE FOLLOW-UP ({', '.join(alert.get('reasons') or [])}) of {alert.get('follows')}"
    notes = [f"{item} not yet assessed" for item in alert.get("not_yet_assessed") or []]
    notes += [f"data quality: {flag}" for flag in alert.get("data_quality") or []]
    flagged = f" [yellow]{'; '.join(notes)}[/yellow]" if notes else ""
    return (
        f"[bold red]{kind}[/bold red] {alert['alert_id']} {alert['trial_id']}/{alert['site_id']}/"
        f"{alert['patient_id']} {alert['term']} grade {alert['grade']} "
        f"({', '.join(alert.get('seriousness') or []) or '-'}){susar} — {clock}; "
        f"ledger seq {alert['seq']}{late}{flagged}"
    )


@dataclass
class Follower:
    """Shows each alert once and, if asked, acknowledges it; no terminal needed."""

    console: Console
    officer: str
    submit: Submit | None = None
    today: Callable[[], dt.date] = lambda: dt.datetime.now(dt.UTC).date()
    seen: list[dict[str, Any]] = field(default_factory=list)

    async def __call__(self, alert: dict[str, Any]) -> None:
        self.console.print(describe(alert))
        if self.submit is not None:
            reply = await self.submit(
                alert["trial_id"], acknowledgement(alert, self.officer, self.today())
            )
            status = reply.get("status")
            if status not in ("accepted", "duplicate"):
                raise RuntimeError(
                    f"acknowledgement of {alert['alert_id']} refused: {json.dumps(reply)}"
                )
            self.console.print(f"  acknowledged as {self.officer} (ledger seq {reply.get('seq')})")
        self.seen.append(alert)


async def ensure_durable(js: JetStreamContext, durable: str) -> None:
    if not DURABLE_RE.match(durable):
        raise ValueError(f"not a durable name: {durable!r} (letters, digits, _ and -)")
    try:
        await js.consumer_info(ALERTS_STREAM, durable)
    except NotFoundError:
        await js.add_consumer(
            ALERTS_STREAM,
            js_api.ConsumerConfig(
                durable_name=durable,
                filter_subject=ALERTS_SUBJECTS,
                ack_policy=js_api.AckPolicy.EXPLICIT,
                deliver_policy=js_api.DeliverPolicy.ALL,
                ack_wait=60.0,
                max_ack_pending=1000,
            ),
        )


async def follow_alerts(
    js: JetStreamContext,
    durable: str,
    on_alert: Callable[[dict[str, Any]], Awaitable[None]],
    *,
    once: bool = False,
    stop: asyncio.Event | None = None,
    poll: float = 1.0,
) -> int:
    """Deliver every alert the durable has not acked yet to `on_alert`, in order; ack each
    after `on_alert` returns. `once`: stop when nothing is pending. Returns alerts handled."""
    await ensure_durable(js, durable)
    sub = await js.pull_subscribe_bind(durable, stream=ALERTS_STREAM)
    handled = 0
    try:
        while stop is None or not stop.is_set():
            try:
                msgs = await sub.fetch(100, timeout=poll)
            except TimeoutError:  # nats-py raises its own subclass or asyncio's
                if once and await _drained(js, durable):
                    break
                continue
            for msg in msgs:
                try:
                    alert = read_alert(msg.data).as_sent()
                except NotAnAlert:
                    await msg.term()  # not an alert at all: showing it again would not help
                    continue
                await on_alert(alert)
                await msg.ack_sync()
                handled += 1
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    return handled


async def _drained(js: JetStreamContext, durable: str) -> bool:
    info = await js.consumer_info(ALERTS_STREAM, durable)
    return int(info.num_pending) == 0 and int(info.num_ack_pending) == 0


async def run_follow(
    settings: Settings, *, durable: str, ack: bool, officer: str, once: bool, console: Console
) -> int:
    """The CLI command: follow until Ctrl-C (or, with `once`, until nothing is pending)."""
    if not settings.nats_url:
        console.print(
            "[red]no running system found[/red]: start `trial-ledger up` or set LEDGER_NATS_URL"
        )
        return 2
    nc = await connect(settings.nats_url, settings.creds_for("safety"), name=f"alerts-{durable}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)

    async def submit(trial_id: str, event: dict[str, Any]) -> dict[str, Any]:
        return await SiteClient(nc, trial_id, SAFETY_SITE).submit(event)

    follower = Follower(console, officer, submit if ack else None)
    try:
        js = nc.jetstream()
        await ensure_streams(js)
        if not once:
            console.print(
                f"following SAE alerts as durable [bold]{durable}[/bold] (Ctrl-C to stop)"
            )
        count = await follow_alerts(js, durable, follower, once=once, stop=stop)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        return 2
    except RuntimeError as exc:  # an acknowledgement refused: the alert stays pending
        console.print(f"[red]{exc}[/red]")
        return 1
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        await nc.close()
    console.print(f"{count} alert(s) shown")
    return 0
