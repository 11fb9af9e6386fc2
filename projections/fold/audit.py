"""The audit trail of one patient: every ledger entry with who, what, when, why.

21 CFR 11.10(e), ICH E6(R3) §4.2 and ALCOA+ (DOMAIN.md "Audit trail"): changes never obscure
earlier records. Corrections and retractions are entries of their own; the trail shows each
one's field-level old → new values next to who made it, when and why, and marks what became
of every earlier entry (DESIGN.md rule 5).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import JsonValue

from events import LedgerEvent
from projections.fold.history import Change, EffectiveHistory, Recorded

AuditStatus = Literal["effective", "corrected", "retracted", "superseded correction", "rejected"]

RETRACTED = "(retracted)"


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field's old → new value; `field` is a path such as `data.lesions[0].longest_diameter_mm`.
    A value that is absent on one side (a lesion added or removed) reads as `None` there."""

    field: str
    old: JsonValue
    new: JsonValue

    def as_dict(self) -> dict[str, JsonValue]:
        return {"field": self.field, "old": self.old, "new": self.new}


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One ledger entry as the auditor reads it.

    `status`: an original event is `effective`, `corrected` (still in force, with amended
    data) or `retracted`; a correction is `effective` while it is the latest one of a target
    still in force, else `superseded correction`; a retraction is `effective`; a correction
    or retraction whose target the ledger does not hold is `rejected` (the writer prevents
    it, a reader never hides it). `changes` (corrections and retractions only) is the
    old → new diff; `amended_by` (originals only) lists the seqs that changed the entry.
    """

    seq: int
    event_id: str
    type: str
    occurred_on: dt.date
    recorded_at: dt.datetime | None
    recorded_by: str
    reason: str | None
    hash: str | None
    prev_hash: str | None
    status: AuditStatus
    data: Mapping[str, Any]
    target_event_id: str | None = None
    target_seq: int | None = None
    changes: tuple[FieldChange, ...] = ()
    amended_by: tuple[int, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The JSON form the audit-trail API serves."""
        return {
            "seq": self.seq,
            "event_id": self.event_id,
            "type": self.type,
            "occurred_on": self.occurred_on.isoformat(),
            "recorded_at": None if self.recorded_at is None else self.recorded_at.isoformat(),
            "recorded_by": self.recorded_by,
            "reason": self.reason,
            "hash": self.hash,
            "prev_hash": self.prev_hash,
            "status": self.status,
            "data": dict(self.data),
            "target_event_id": self.target_event_id,
            "target_seq": self.target_seq,
            "changes": [change.as_dict() for change in self.changes],
            "amended_by": list(self.amended_by),
        }


def audit_trail(history: EffectiveHistory, recorded: Iterable[Recorded]) -> tuple[AuditRow, ...]:
    """Every ledger entry of one patient in seq order, with its status and, for corrections
    and retractions, the old → new values (21 CFR 11.10(e); DOMAIN.md "Audit trail").

    `history` must be the effective history of the same `recorded` entries.
    """
    changes = {change.seq: change for change in history.changes}
    rejected = frozenset(history.rejected_corrections)
    amended_by: dict[int, list[int]] = {}
    latest_correction: dict[int, int] = {}
    retracted: set[int] = set()
    for amendment in sorted(changes.values(), key=lambda c: c.seq):
        amended_by.setdefault(amendment.target_seq, []).append(amendment.seq)
        if amendment.kind == "retracted":
            retracted.add(amendment.target_seq)
        else:
            latest_correction[amendment.target_seq] = amendment.seq

    rows: list[AuditRow] = []
    for entry in sorted(recorded, key=lambda e: e.seq):
        change = changes.get(entry.seq)
        if change is not None:
            superseded = change.kind == "corrected" and (
                latest_correction[change.target_seq] != entry.seq or change.target_seq in retracted
            )
            status: AuditStatus = "superseded correction" if superseded else "effective"
            rows.append(_row(entry, status, change=change))
        elif entry.seq in rejected:
            rows.append(_row(entry, "rejected"))
        else:
            amendments = tuple(amended_by.get(entry.seq, ()))
            status = (
                "retracted"
                if entry.seq in retracted
                else "corrected"
                if amendments
                else "effective"
            )
            rows.append(_row(entry, status, amended_by=amendments))
    return tuple(rows)


def json_diff(old: JsonValue, new: JsonValue, path: str = "") -> list[FieldChange]:
    """Field-level differences between two JSON values, depth first, in the old value's key
    order (keys only in `new` follow); list items are compared by position."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = [*old, *(key for key in new if key not in old)]
        return [
            change
            for key in keys
            for change in json_diff(old.get(key), new.get(key), f"{path}.{key}" if path else key)
        ]
    if isinstance(old, list) and isinstance(new, list):
        return [
            change
            for index in range(max(len(old), len(new)))
            for change in json_diff(
                old[index] if index < len(old) else None,
                new[index] if index < len(new) else None,
                f"{path}[{index}]",
            )
        ]
    # `True == 1` in Python, not in JSON: a changed type is a change.
    if type(old) is type(new) and old == new:
        return []
    return [FieldChange(path, old, new)]


def _row(
    entry: Recorded,
    status: AuditStatus,
    *,
    change: Change | None = None,
    amended_by: tuple[int, ...] = (),
) -> AuditRow:
    event = entry.event
    data = event.data.model_dump(mode="json")
    target = getattr(event.data, "target_event_id", None)
    return AuditRow(
        seq=entry.seq,
        event_id=str(event.event_id),
        type=event.event_type,
        occurred_on=event.occurred_on,
        recorded_at=event.recorded_at,
        recorded_by=event.recorded_by,
        reason=event.reason,
        hash=event.hash,
        prev_hash=event.prev_hash,
        status=status,
        data=data,
        target_event_id=None if target is None else str(target),
        target_seq=None if change is None else change.target_seq,
        changes=() if change is None else _change_values(change),
        amended_by=amended_by,
    )


def _change_values(change: Change) -> tuple[FieldChange, ...]:
    if change.new is None:
        return (FieldChange("event", _as_recorded(change.old), RETRACTED),)
    old = change.old.model_dump(mode="json")
    new = change.new.model_dump(mode="json")
    return tuple(json_diff(old, new))


def _as_recorded(event: LedgerEvent) -> JsonValue:
    dumped = event.model_dump(mode="json")
    return {key: dumped[key] for key in ("type", "occurred_on", "data")}
