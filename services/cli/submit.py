"""`trial-ledger submit`: a site's JSON Lines file, recorded once however often it is run.

A line without an `event_id` gets one derived from what it says (UUID v5 of the trial, the
site and the line's RFC 8785 canonical JSON), never a random one: a coordinator who runs the
same file again after a lost connection, or after fixing the lines that were rejected, gets
"duplicate" for everything already recorded and records only what is new or fixed. Two
identical lines are one event (the second is answered duplicate); an edited line is a new
event, because the ledger never changes a recorded one (corrections are `event_corrected`).
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from events import canonical_json
from events.intake_reply import EventVerdict

# Fixed for ever: changing it would give every id-less line of an old file a new id.
SUBMIT_NAMESPACE = uuid.UUID("6f1d3c52-9a0e-5b7e-8c41-2d9e7a0b5f13")


@dataclass(frozen=True)
class FileLine:
    """One non-blank line of the file: the event to submit, or why it cannot be."""

    number: int
    event: dict[str, Any] | None = None
    problem: str | None = None


def derived_event_id(trial_id: str, site_id: str, event: dict[str, Any], line: str) -> str:
    """The id of an id-less line: the same for the same content, whatever its key order or
    spacing; from the raw text when the content has no canonical form (the writer will
    reject such a line anyway)."""
    try:
        content = canonical_json(event).decode()
    except (TypeError, ValueError, OverflowError):
        content = line.strip()
    return str(uuid.uuid5(SUBMIT_NAMESPACE, f"{trial_id}\n{site_id}\n{content}"))


def read_lines(text: str, trial_id: str, site_id: str) -> list[FileLine]:
    lines: list[FileLine] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except (ValueError, RecursionError) as exc:
            lines.append(FileLine(number, problem=f"not valid JSON: {exc}"))
            continue
        if not isinstance(value, dict):
            lines.append(FileLine(number, problem="a line holds one event, a JSON object"))
            continue
        if "event_id" not in value:
            value["event_id"] = derived_event_id(trial_id, site_id, value, line)
        lines.append(FileLine(number, event=value))
    return lines


def verdict(line: FileLine, result: dict[str, Any] | None) -> tuple[str, str]:
    """(status, the line a coordinator reads) for one line of the file."""
    if result is None:
        return "rejected", f"line {line.number}: rejected: {line.problem}"
    reply = EventVerdict.model_validate(result)  # the client read it as one already
    event_id = reply.event_id or (line.event or {}).get("event_id")
    if reply.status == "accepted":
        return reply.status, f"line {line.number}: accepted as seq {reply.seq} ({event_id})"
    if reply.status == "duplicate":
        return reply.status, (
            f"line {line.number}: duplicate: already recorded as seq {reply.seq} ({event_id})"
        )
    errors = "; ".join(f"{e.field}: {e.message}" for e in reply.errors or [])
    return "rejected", f"line {line.number}: rejected ({event_id}): {errors}"


def summary(statuses: Iterable[str]) -> str:
    counts = Counter(statuses)
    total = sum(counts.values())
    return (
        f"{total} lines: {counts['accepted']} accepted, {counts['duplicate']} duplicate, "
        f"{counts['rejected']} rejected"
    )
