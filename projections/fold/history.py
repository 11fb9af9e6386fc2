"""A patient's effective history: the ledger as it reads after corrections and retractions.

Corrections never delete (DESIGN.md rule 5): an `event_corrected` replaces the target's data
(and clinical date) from then on, an `event_retracted` withdraws it. Every derivation works on
the effective history, and each effective event remembers the seqs that shaped it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pydantic import ValidationError

from events import (
    EVENT_ADAPTER,
    EventCorrected,
    EventRetracted,
    LedgerEvent,
)
from projections.common.memo import PrefixMemo


@dataclass(frozen=True, slots=True)
class Recorded:
    """One event as the ledger holds it: its stream seq and the decoded event."""

    seq: int
    event: LedgerEvent


@dataclass(frozen=True, slots=True)
class Effective:
    """An event as it stands now, with the seq of the original and of each correction."""

    seq: int
    event: LedgerEvent
    correction_seqs: tuple[int, ...] = ()

    @property
    def seqs(self) -> tuple[int, ...]:
        return (self.seq, *self.correction_seqs)


@dataclass(frozen=True, slots=True)
class Change:
    """One correction or retraction, for the audit trail (old → new)."""

    seq: int
    target_event_id: str
    target_seq: int
    kind: str
    old: LedgerEvent
    new: LedgerEvent | None
    recorded_by: str
    reason: str | None
    recorded_at: str | None


@dataclass(frozen=True, slots=True)
class EffectiveHistory:
    events: tuple[Effective, ...]
    changes: tuple[Change, ...] = field(default=())
    rejected_corrections: tuple[int, ...] = field(default=())


def apply_correction(original: LedgerEvent, correction: EventCorrected) -> LedgerEvent:
    """The target event with the corrected data (and clinical date) in place."""
    raw = original.model_dump(mode="json")
    raw["data"] = correction.data.data
    if correction.data.occurred_on is not None:
        raw["occurred_on"] = correction.data.occurred_on.isoformat()
    return EVENT_ADAPTER.validate_python(raw, extra="ignore")


def effective_history(recorded: Iterable[Recorded]) -> EffectiveHistory:
    """Fold one patient's ledger entries (in seq order) into its effective history.

    A correction of a correction is a correction of the same original; a retracted event
    stays retracted. A correction whose data no longer validates is ignored and reported
    (the writer prevents this; a reader must never crash on it). A history that only grew
    since its last fold resumes from it (`projections.common.memo`).
    """
    return _HISTORIES.fold(tuple(recorded), _history_new, _history_more).result()


@dataclass(slots=True)
class _Folding:
    """The effective-history fold after some entries; `result()` is the history so far.
    Never changed once made (a resumed fold makes a new one), so its result is made once:
    every projection deriving the same patient then sees the very same history object."""

    current: dict[str, Effective]
    order: list[str]
    changes: list[Change]
    rejected: list[int]
    _result: EffectiveHistory | None = None

    def result(self) -> EffectiveHistory:
        if self._result is None:
            current = self.current
            events = tuple(current[key] for key in self.order if key in current)
            self._result = EffectiveHistory(events, tuple(self.changes), tuple(self.rejected))
        return self._result


def _history_new(entries: Sequence[Recorded]) -> _Folding:
    return _history_more(_Folding({}, [], [], []), entries)


def _history_more(done: _Folding, entries: Sequence[Recorded]) -> _Folding:
    # a copy: the memo may still hand `done` to another caller
    current, order = dict(done.current), list(done.order)
    changes, rejected = list(done.changes), list(done.rejected)
    for entry in entries:
        event = entry.event
        match event:
            case EventCorrected(data=corr) if corr.target_event_id in current:
                before = current[corr.target_event_id]
                try:
                    after = apply_correction(before.event, event)
                except ValidationError:
                    rejected.append(entry.seq)
                    continue
                current[corr.target_event_id] = Effective(
                    before.seq, after, (*before.correction_seqs, entry.seq)
                )
                changes.append(_change(entry.seq, before, after, event, "corrected"))
            case EventRetracted(data=retr) if retr.target_event_id in current:
                before = current.pop(retr.target_event_id)
                changes.append(_change(entry.seq, before, None, event, "retracted"))
            case EventCorrected() | EventRetracted():
                rejected.append(entry.seq)
            case _:
                key = str(event.event_id)
                current[key] = Effective(entry.seq, event)
                order.append(key)
    return _Folding(current, order, changes, rejected)


_HISTORIES: PrefixMemo[_Folding] = PrefixMemo()


def _change(
    seq: int,
    before: Effective,
    after: LedgerEvent | None,
    by: EventCorrected | EventRetracted,
    kind: str,
) -> Change:
    return Change(
        seq=seq,
        target_event_id=str(before.event.event_id),
        target_seq=before.seq,
        kind=kind,
        old=before.event,
        new=after,
        recorded_by=by.recorded_by,
        reason=by.reason,
        recorded_at=by.recorded_at.isoformat() if by.recorded_at else None,
    )
