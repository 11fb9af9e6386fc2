"""Building blocks for integration tests: a trial of one's own, events, ledger read-back."""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from typing import Any

from nats.js import JetStreamContext

from events import event_hash
from events.examples import EXAMPLES
from services.ledger.io import read_stream

# The simulated trials' "today": a fixed day, so the data never depends on the day the tests
# run. It is the simulator's horizon (2024-01-08 + 730 days): the same trial every run since,
# and in the past (the writer refuses events dated after its own today).
SIMULATED_TODAY = dt.date(2026, 1, 7)


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
