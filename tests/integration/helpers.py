"""Building blocks for integration tests: a trial of one's own, events, ledger read-back."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import APIError

from events import event_hash
from events.examples import EXAMPLES
from services.ledger.io import read_stream

# The simulated trials' "today": a fixed day, so the data never depends on the day the tests
# run. It is the simulator's horizon (2024-01-08 + 730 days): the same trial every run since,
# and in the past (the writer refuses events dated after its own today).
SIMULATED_TODAY = dt.date(2026, 1, 7)


def wait_until(check: Callable[[], bool], timeout: float, what: str, every: float = 0.2) -> None:
    """Return once `check()` holds; fail naming `what` if it still does not after `timeout` s.

    The deadline is a hang guard, not a speed claim: give it room for a loaded machine."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        time.sleep(every)


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float, what: str, every: float = 0.1
) -> None:
    """`wait_until` for a coroutine check, yielding to the event loop between tries."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        await asyncio.sleep(every)


WRONG_LAST_SEQUENCE = 10071  # JetStream: a Nats-Expected-Last-Subject-Sequence not met


async def forgotten_by_jetstream(
    js: JetStreamContext, stream: str, msg_id: str, seq: int, timeout: float = 60
) -> None:
    """Wait until `stream`'s duplicate window no longer holds `msg_id` (stored at `seq`).

    The window ends on the server's own timer, late on a loaded machine: a fixed sleep may end
    before it, and JetStream, not the code under test, then answers "duplicate". Each probe
    re-sends the id on the stored message's subject, expecting a subject sequence that cannot
    be, so nothing is ever stored: JetStream answers a duplicate while it still knows the id
    (its duplicate check comes first) and refuses the expectation once it has forgotten it."""
    subject = (await js.get_msg(stream, seq)).subject or ""
    headers = {"Nats-Msg-Id": msg_id, "Nats-Expected-Last-Subject-Sequence": str(2**62)}

    async def forgotten() -> bool:
        try:
            ack = await js.publish(subject, b"{}", headers=headers, timeout=30)
        except APIError as exc:
            if exc.err_code != WRONG_LAST_SEQUENCE:
                raise
            return True
        assert ack.duplicate and ack.seq == seq, ack
        return False

    await eventually(forgotten, timeout, f"{stream}'s duplicate window over for {msg_id}")


def unique_trial(prefix: str = "T") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def event(
    kind: str, trial_id: str, site_id: str = "site01", patient_id: str = "P0001", **changes: Any
) -> dict[str, Any]:
    """The catalogue's example of `kind`, moved to this trial/site/patient, with a fresh id."""
    raw = copy.deepcopy(EXAMPLES[kind])
    raw.update(event_id=str(uuid.uuid4()), trial_id=trial_id)
    if raw["site_id"] != "_sponsor":
        raw.update(site_id=site_id, patient_id=patient_id)
    data = changes.pop("data", None)
    if data is not None:
        raw["data"] = {**raw["data"], **data}
    raw.update(changes)
    return raw


def parameters(
    trial_id: str, sites: tuple[str, ...] = ("site01", "site02"), version: int = 1
) -> dict[str, Any]:
    return event(
        "protocol_parameters_set",
        trial_id,
        data={"version": version, "parameters": {"sites": list(sites)}},
    )


async def ledger_of(js: JetStreamContext, trial_id: str) -> list[tuple[int, dict[str, Any]]]:
    return [(m.seq, m.json()) async for m in read_stream(js, f"ledger.{trial_id}.>")]


async def submitted_of(js: JetStreamContext, trial_id: str) -> list[tuple[int, dict[str, Any]]]:
    """The trial's ledger without the writer's own seals (which it appends on a timer)."""
    return [entry for entry in await ledger_of(js, trial_id) if entry[1]["type"] != "ledger_sealed"]


def chains_intact(entries: list[tuple[int, dict[str, Any]]]) -> list[str]:
    """Every stored hash right and every prev_hash naming the patient's previous event."""
    problems: list[str] = []
    heads: dict[tuple[str, str], str] = {}
    for seq, stored in entries:
        key = (stored["site_id"], stored["patient_id"])
        if event_hash(stored) != stored["hash"]:
            problems.append(f"seq {seq}: hash does not match the body")
        if stored["prev_hash"] != heads.get(key, "0" * 64):
            problems.append(f"seq {seq}: prev_hash does not link to the patient's previous event")
        heads[key] = stored["hash"]
    return problems
