"""Patient histories for projections: a bounded cache in front of the ledger itself.

A projection re-derives a touched patient from its whole effective history (corrections
apply backwards in time). The ledger is the source: a patient missing from the cache is
read back from JetStream up to the projection's checkpoint, so a restart, an eviction or a
replay "as of" an instant all see exactly the events the read model has applied.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from nats.js import JetStreamContext
from pydantic import ValidationError

from events import NewerSchemaVersion, UnknownEventType, decode
from events.subjects import patient_wildcard
from projections.common.lru import Lru
from projections.fold.history import Recorded
from services.ledger.io import read_stream

log = structlog.get_logger("projector")

PatientKey = tuple[str, str, str]
Include = Callable[[dict[str, Any]], bool]


@dataclass(frozen=True, slots=True)
class Decoded:
    """One ledger message, decoded: the projection's unit of work."""

    seq: int
    subject: str
    stored: dict[str, Any]
    recorded: Recorded
    body: bytes = b""  # the ledger's JSON as stored (the event index keeps it as it is)
    key: PatientKey = field(init=False)  # (trial, site, patient), looked up for every grouping

    def __post_init__(self) -> None:
        event = self.recorded.event
        object.__setattr__(self, "key", (event.trial_id, event.site_id, event.patient_id))


class Undecodable(ValueError):
    """An event this code cannot read: parked, reported, never silently skipped."""


def decode_stored(seq: int, stored: dict[str, Any]) -> Recorded:
    try:
        return Recorded(seq, decode(stored))
    except ValidationError as exc:
        raise Undecodable(validation_summary(exc)) from exc
    except (NewerSchemaVersion, UnknownEventType) as exc:
        raise Undecodable(str(exc)) from exc


def validation_summary(exc: ValidationError) -> str:
    """Where and why an event does not decode, never the values it holds: a parked reason
    and a log line may not carry clinical free text (STYLE.md, logging)."""
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
        for error in exc.errors(include_input=False, include_url=False)
    )


# A live projection's cache of recently active patients' histories. A patient outside it is
# read back from the ledger, so the bound trades memory for those reads, never correctness.
CACHE_PATIENTS = 2000
CACHE_EVENTS = 40_000


class PatientHistories:
    def __init__(
        self,
        js: JetStreamContext | None,
        capacity: int = CACHE_PATIENTS,
        include: Include | None = None,
        *,
        from_start: bool = False,
        max_events: int = CACHE_EVENTS,
    ) -> None:
        self.js = js
        self.include = include
        # Fed from seq 1 (a rebuild, a new build): a patient never seen has no earlier events,
        # so only an evicted patient needs reading back from the ledger.
        self.from_start = from_start
        self._seen: set[PatientKey] = set()
        # seqs the projection parked: never part of a patient's history it derives from
        self.parked: set[int] = set()
        self.pinned: set[PatientKey] = set()
        # set by the Applier when it runs one partition of the patients
        self.partition: Any = None
        self.position: str = ""
        # Bounded by patients and by cached events, so memory does not grow with the ledger;
        # the patients of the batch being applied are never evicted.
        self._cache: Lru[PatientKey, list[Recorded]] = Lru(
            capacity, max_weight=max_events, weight=len, pinned=lambda key: key in self.pinned
        )
        self.loads = 0

    async def ensure(self, key: PatientKey, upto_seq: int) -> None:
        """Have `key`'s history up to `upto_seq` in the cache (read from the ledger if not)."""
        if self._cache.get(key) is not None:  # now the most recently used
            return
        entries: list[Recorded] = []
        known_empty = self.from_start and key not in self._seen
        self._seen.add(key)
        if upto_seq > 0 and self.js is not None and not known_empty:
            self.loads += 1
            async for msg in read_stream(self.js, patient_wildcard(*key), stop_seq=upto_seq):
                if msg.seq in self.parked:
                    continue
                stored = msg.json()
                if self.include is not None and not self.include(stored):
                    continue
                try:
                    entries.append(decode_stored(msg.seq, stored))
                except Undecodable:
                    continue  # parked when it was first seen
        self._cache.put(key, entries)

    def owns(self, key: PatientKey) -> bool:
        """Whether this partition applies `key`'s rows (always, when not partitioned)."""
        return self.partition is None or bool(self.partition.owns(key))

    def append(self, item: Decoded) -> None:
        entries = self._cache.peek(item.key)
        if entries is None:
            entries = []
            self._cache.put(item.key, entries, evict=False)  # evicted at the next load
        entries.append(item.recorded)
        self._cache.grow(item.key, 1)

    def get(self, key: PatientKey) -> list[Recorded]:
        return self._cache.peek(key) or []

    def forget(self, keys: set[PatientKey]) -> None:
        """After a failed transaction: what the cache appended never reached the database."""
        for key in keys:
            self._cache.pop(key)

    def clear(self) -> None:
        self._cache.clear()
