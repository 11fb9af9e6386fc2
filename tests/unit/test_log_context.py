"""Every log line a handler writes names the message it works on (event_id, seq, trial,
patient), bound per message, never leaking into the next one or a concurrent one."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pytest
import structlog

from services.config.logs import message_context
from services.projector.runner import Applier, Message
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


class _FailingApplier(Applier):
    """An applier whose one projection fails on every batch: its event ends up parked."""

    def __init__(self) -> None:
        self.projection = SimpleNamespace(name="core")  # type: ignore[assignment]
        self.seen: list[dict[str, Any]] = []

    async def _apply_retrying(self, messages: Any, stop: Any) -> int:
        self.seen.append(structlog.contextvars.get_contextvars())
        raise ValueError("the event's own fault")

    async def park(self, message: Message, error: str) -> int:
        self.seen.append(structlog.contextvars.get_contextvars())
        structlog.get_logger("projector").error("event_parked_here", reason=error)
        return message.seq


async def test_the_projector_names_the_message_it_applies_in_its_log_lines() -> None:
    applier = _FailingApplier()
    event = {"event_id": "e-9", "trial_id": "T1", "site_id": "site01", "patient_id": "P0003"}
    message = Message(17, "ledger.T1.site01.P0003.ae_reported", json.dumps(event).encode())
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        assert await applier.apply_resilient([message]) == 17
    named = {"seq": 17, "trial_id": "T1", "site_id": "site01", "patient_id": "P0003"}
    assert applier.seen == [{**named, "event_id": "e-9"}] * 2
    parked = next(line for line in logs if line["event"] == "event_parked_here")
    assert parked.items() >= {**named, "event_id": "e-9"}.items()
    assert structlog.contextvars.get_contextvars() == {}


async def test_a_projector_batch_of_several_messages_names_none_of_them() -> None:
    applier = _FailingApplier()
    messages = [Message(seq, f"ledger.T1.site01.P000{seq}.enrolled", b"{}") for seq in (1, 2)]
    await applier.apply_resilient(messages)
    assert applier.seen[0] == {}  # the batch: no one message's ids
    assert [context["seq"] for context in applier.seen[1:]] == [1, 1, 2, 2]  # each, isolated
