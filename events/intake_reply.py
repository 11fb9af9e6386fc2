"""The writer's reply on `intake.<trial>.<site>` (DESIGN.md, "Contracts").

One `EventVerdict` per event: `{"event_id", "status", "seq"?, "hash"?, "errors"?,
"warnings"?}` for a single event, `{"results": [...]}` (same order) for a batch. A submission
refused as a whole (unreadable body, bad batch, bad subject) is one rejected verdict whose
`event_id` is null. The writer builds its replies through these models and the clients read
them through the same models, so both sides hold one definition of the reply.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

Status = Literal["accepted", "duplicate", "rejected"]


class FieldProblem(BaseModel):
    """One problem with one field, named by its dotted path in the event JSON."""

    # extra="ignore": a newer writer may say more, an older client still reads the reply
    model_config = ConfigDict(frozen=True, extra="ignore")

    field: str
    message: str


class EventVerdict(BaseModel):
    """The verdict on one submitted event."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    # null when the submission named no usable id (the writer never echoes a megabyte)
    event_id: str | None
    status: Status
    seq: int | None = None  # the ledger seq: of the new entry, or of the original duplicate
    hash: str | None = None  # the stored event's hash (accepted only)
    errors: list[FieldProblem] | None = None  # why it was rejected
    warnings: list[FieldProblem] | None = None  # accepted, but worth a look

    def wire(self) -> dict[str, Any]:
        """The reply as JSON: `event_id` always (null when unknown), absent fields left out."""
        return {"event_id": self.event_id, **self.model_dump(mode="json", exclude_none=True)}


class BatchReply(BaseModel):
    """The reply to `{"events": [...]}`: one verdict per event, in the submitted order."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    results: list[EventVerdict]

    def wire(self) -> dict[str, Any]:
        return {"results": [verdict.wire() for verdict in self.results]}


IntakeReply = EventVerdict | BatchReply


class NotAReply(ValueError):
    """What the intake answered is not a reply of the contract."""


def read_reply(data: bytes | str) -> IntakeReply:
    """An intake reply from its JSON text; NotAReply (a ValueError) for anything else."""
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise NotAReply(f"the intake answered something that is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise NotAReply("the intake answered something that is not a JSON object")
    try:
        if "results" in value:
            return BatchReply.model_validate(value)
        return EventVerdict.model_validate(value)
    except ValidationError as exc:
        raise NotAReply(f"the intake answered something that is not a reply: {exc}") from None
