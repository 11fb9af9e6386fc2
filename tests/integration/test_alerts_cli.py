"""A safety officer's single-alert work through the real CLI against `trial-ledger up`:
`alerts list [--open|--overdue] [--json]`, `alerts ack ALERT_ID [--note]`, recording the
expedited report's date, the case history in the safety view, "not yet assessed" in the
view and the ADAE export."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.client.site import SiteClient
from services.ledger.connection import connect
from tests.integration.helpers import event, parameters
from tests.integration.test_cli import cli

pytestmark = pytest.mark.integration
SUSPECTED = {"expected": False, "attribution": {"lenvatinib": "probable"}}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def system(tmp_path: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """`trial-ledger up` in its own process; its runtime.json."""
    data_dir = tmp_path / "ledger"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    up = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "up", "--data-dir", str(data_dir)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        runtime = data_dir / "runtime.json"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert up.poll() is None, "trial-ledger up stopped"
            if runtime.exists():
                info = json.loads(runtime.read_text())
                if info.get("api_url"):
                    break
            time.sleep(0.2)
        yield data_dir, json.loads(runtime.read_text())
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(60)


def listed(data_dir: Path, *flags: str) -> list[dict[str, Any]]:
    done = cli("alerts", "list", "--json", *flags, data_dir=data_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    alerts: list[dict[str, Any]] = json.loads(done.stdout)
    return alerts


def until(
    data_dir: Path, check: Callable[[list[dict[str, Any]]], bool], timeout: float = 90
) -> list[dict[str, Any]]:
    """`alerts list --json` again until `check` holds (the view follows the ledger)."""
    deadline = time.monotonic() + timeout
    while True:
        alerts = listed(data_dir)
        if check(alerts) or time.monotonic() > deadline:
            return alerts
        time.sleep(0.3)


async def submit(
    runtime: dict[str, Any], trial: str, site: str, *events: dict[str, Any]
) -> list[str]:
    role = "safety" if site == "_safety" else f"site:{site}"
    nc = await connect(runtime["nats_url"], runtime["credentials"].get(role))
    try:
        client = SiteClient(nc, trial, site)
        return [(await client.submit(item))["status"] for item in events]
    finally:
        await nc.close()


def test_one_alert_is_acknowledged_at_a_time_and_its_report_date_recorded_through_the_cli(
    system: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    data_dir, runtime = system
    trial = f"CLI-{uuid.uuid4().hex[:8]}"
    sponsor = tmp_path / "sponsor.jsonl"
    sponsor.write_text(json.dumps(parameters(trial)) + "\n")
    done = cli("submit", str(sponsor), "--trial", trial, "--site", "_sponsor", data_dir=data_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    sae = event(
        "ae_reported",
        trial,
        data={"expected": False, "attribution": {"lenvatinib": "probable"}},
    )
    unassessed = event("ae_reported", trial)
    unassessed["data"] = {"term": "Pneumonitis", "grade": 4}
    mild = event(
        "ae_reported",
        trial,
        data={"term": "Fatigue", "grade": 1, "serious": False, "seriousness": []},
    )
    worse = event("ae_updated", trial, data={"ae_event_id": sae["event_id"], "grade": 4})
    odd = event(
        "ae_reported", trial, data={"site_aware_at": "0001-01-01T00:00:00+05:00", **SUSPECTED}
    )
    statuses = asyncio.run(
        submit(runtime, trial, "site01", event("enrolled", trial), sae, unassessed, mild, odd)
    )
    assert statuses[:4] == ["accepted"] * 4
    odd_accepted = statuses[4] == "accepted"  # an intake date window may refuse it instead

    def mine(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [alert for alert in alerts if alert["trial_id"] == trial]

    raised = 2 + odd_accepted
    assert len(mine(until(data_dir, lambda alerts: len(mine(alerts)) == raised))) == raised
    assert asyncio.run(submit(runtime, trial, "site01", worse)) == ["accepted"]
    alerts = mine(until(data_dir, lambda alerts: len(mine(alerts)) == raised + 1))
    by_kind = {(a["ae_event_id"], a["kind"]): a for a in alerts}
    initial = by_kind[(sae["event_id"], "initial")]
    follow_up = by_kind[(sae["event_id"], "follow_up")]
    pneumonitis = by_kind[(unassessed["event_id"], "initial")]
    assert (initial["expedited_days"], follow_up["expedited_days"]) == (15, 7)
    assert follow_up["follows"] == initial["alert_id"]
    assert pneumonitis["not_yet_assessed"] == ["causality", "expectedness"]
    assert pneumonitis["expedited_days"] == 7
    if odd_accepted:  # alerted, its awareness flagged, the view not stalled by it
        odd_alert = by_kind[(odd["event_id"], "initial")]
        assert odd_alert["data_quality"] == ["site_aware_at_unusable"]
        assert odd_alert["report_due"] is not None

    acked = cli("alerts", "ack", follow_up["alert_id"], "--note", "seen", data_dir=data_dir)
    assert acked.returncode == 0, acked.stdout + acked.stderr
    alerts = mine(
        until(
            data_dir,
            lambda alerts: any(
                a["alert_id"] == follow_up["alert_id"] and a["acknowledged_at"]
                for a in mine(alerts)
            ),
        )
    )
    still_open = {a["alert_id"] for a in mine(listed(data_dir, "--open"))}
    assert still_open - {a["alert_id"] for a in alerts if a["ae_event_id"] == odd["event_id"]} == {
        initial["alert_id"],
        pneumonitis["alert_id"],
    }  # one acknowledged only

    today = dt.datetime.now(dt.UTC).date().isoformat()
    reported = cli("alerts", "ack", initial["alert_id"], "--reported-on", today, data_dir=data_dir)
    assert reported.returncode == 0, reported.stdout + reported.stderr
    alerts = mine(
        until(
            data_dir,
            lambda alerts: any(
                a["alert_id"] == initial["alert_id"] and a["report_submitted_on"] == today
                for a in mine(alerts)
            ),
        )
    )
    [now_initial] = [a for a in alerts if a["alert_id"] == initial["alert_id"]]
    assert now_initial["report_submitted_on"] == today and now_initial["acknowledged_at"]
    assert mine(listed(data_dir, "--overdue")) == []

    never = cli("alerts", "ack", f"sae-{uuid.uuid4()}", data_dir=data_dir)
    assert never.returncode == 1 and "no alert" in never.stdout
    bad_date = cli("alerts", "ack", initial["alert_id"], "--reported-on", "soon", data_dir=data_dir)
    assert bad_date.returncode == 2

    forged = event("sae_acknowledged", trial)
    forged["data"] = {"alert_id": f"sae-{mild['event_id']}", "ae_event_id": mild["event_id"]}
    assert asyncio.run(submit(runtime, trial, "_safety", forged)) == ["rejected"]

    headers = {"Authorization": f"Bearer {runtime['api_tokens']['safety']}"}
    with httpx.Client(base_url=runtime["api_url"], headers=headers, timeout=30) as http:
        aes = http.get(f"/api/trials/{trial}/safety/aes").raise_for_status().json()
        adae = http.get(f"/api/trials/{trial}/export/adae.csv").raise_for_status().text
    history = {ae["ae_event_id"]: ae for ae in aes}
    assert [a["kind"] for a in history[sae["event_id"]]["alert_history"]] == [
        "initial",
        "follow_up",
    ]
    assert history[unassessed["event_id"]]["not_yet_assessed"] == ["causality", "expectedness"]
    assert "NOT YET ASSESSED" in adae
