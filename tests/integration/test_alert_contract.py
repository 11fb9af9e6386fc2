"""What a safety officer's `alerts follow` reads from ALERTS goes through the message model:
a message that is not an alert is set aside, never shown half and never a crash that stops
every alert behind it."""

from __future__ import annotations

import io
import json
import uuid

import pytest
from rich.console import Console

from events.subjects import alert_subject
from services.client.follow import Follower, follow_alerts
from services.ledger.connection import connect
from services.ledger.io import ensure_streams

pytestmark = pytest.mark.integration


def _alert(trial: str, alert_id: str) -> dict[str, object]:
    """An alert with only the fields DESIGN.md names (what the first alerters published)."""
    return {
        "alert_id": alert_id,
        "trial_id": trial,
        "site_id": "site01",
        "patient_id": "P0001",
        "ae_event_id": alert_id.removeprefix("sae-"),
        "seq": 1,
        "term": "Hypertension",
        "grade": 3,
        "seriousness": ["hospitalisation"],
        "expedited_days": 15,
        "report_due": "2025-03-08",
        "raised_at": "2025-02-21T08:00:01Z",
    }


async def test_a_message_in_alerts_that_is_not_an_alert_does_not_stop_the_officers_feed(
    nats_url: str,
) -> None:
    trial = f"CONTRACT-{uuid.uuid4().hex[:8]}"
    nc = await connect(nats_url)
    js = nc.jetstream()
    out = io.StringIO()
    durable = f"officer_{uuid.uuid4().hex[:8]}"
    try:
        await ensure_streams(js)
        subject = alert_subject(trial, "site01")
        before = f"sae-{uuid.uuid4()}"
        after = f"sae-{uuid.uuid4()}"
        for body, msg_id in (
            (_alert(trial, before), before),
            ({"alert_id": "sae-not-an-alert", "trial_id": trial}, "sae-not-an-alert-" + trial),
            (_alert(trial, after), after),
        ):
            await js.publish(subject, json.dumps(body).encode(), headers={"Nats-Msg-Id": msg_id})
        follower = Follower(Console(file=out, width=300), "officer.one")
        await follow_alerts(js, durable, follower, once=True, poll=0.5)
        info = await js.consumer_info("ALERTS", durable)
    finally:
        await nc.close()
    mine = [alert["alert_id"] for alert in follower.seen if alert["trial_id"] == trial]
    assert mine == [before, after]
    assert "sae-not-an-alert" not in out.getvalue()
    assert (info.num_pending, info.num_ack_pending) == (0, 0)
