"""Every log line a handler writes names the message it works on (event_id, seq, trial,
patient), bound per message, never leaking into the next one or a concurrent one."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import structlog

from services.config.logs import message_context
from services.writer.intake import Writer

pytestmark = pytest.mark.unit


def test_a_ledger_message_binds_its_seq_and_ids_and_unbinds_them_after() -> None:
    with message_context(
        seq=42, subject="ledger.T1.site01.P0001.ae_reported", event={"event_id": "e-1"}
    ):
        assert structlog.contextvars.get_contextvars() == {
            "seq": 42,
            "trial_id": "T1",
            "site_id": "site01",
            "patient_id": "P0001",
            "event_id": "e-1",
        }
    assert structlog.contextvars.get_contextvars() == {}


def test_hostile_fields_of_a_submission_are_not_bound() -> None:
    event = {"event_id": ["not", "a", "string"], "patient_id": "P" * 10_000, "trial_id": 7}
    with message_context(trial_id="T1", site_id="site01", event=event):
        assert structlog.contextvars.get_contextvars() == {"trial_id": "T1", "site_id": "site01"}


async def test_each_event_of_a_batch_is_judged_under_its_own_ids() -> None:
    writer = Writer(None, check_ae=lambda *_: [])  # type: ignore[arg-type]
    seen: dict[str, dict[str, Any]] = {}

    async def judged(trial_id: str, site_id: str, raw: Any, measure: bool = True) -> dict[str, Any]:
        await asyncio.sleep(0)  # the other patient's event runs meanwhile
        seen[raw["event_id"]] = structlog.contextvars.get_contextvars()
        return {"event_id": raw["event_id"], "status": "rejected", "errors": []}

    writer._judge_inner = judged  # type: ignore[method-assign]
    batch = {
        "events": [
            {"event_id": "e-1", "trial_id": "T1", "site_id": "site01", "patient_id": "P0001"},
            {"event_id": "e-2", "trial_id": "T1", "site_id": "site01", "patient_id": "P0002"},
        ]
    }
    await writer.handle("intake.T1.site01", json.dumps(batch).encode())
    assert seen == {
        "e-1": {"trial_id": "T1", "site_id": "site01", "event_id": "e-1", "patient_id": "P0001"},
        "e-2": {"trial_id": "T1", "site_id": "site01", "event_id": "e-2", "patient_id": "P0002"},
    }
    assert structlog.contextvars.get_contextvars() == {}
