"""Every event_id in the ledger and the seq that holds it, complete and compact.

An id must be stored at most once, ever, whatever patient the resubmission names: JetStream's
`Nats-Msg-Id` window covers only the last minutes, and a patient's own history only that
patient. So the writer knows every id, built from the ledger's headers at start and kept up to
date by its own appends and those it sees from other writers. Kept as sorted 64-bit words
(24 bytes an event; a million events ≈ 24 MB) with a small dict for the newest, merged in
amortised linear time, so memory stays proportionate to the ledger's size, not to Python's.
"""

from __future__ import annotations

import heapq
import uuid
from array import array
from collections.abc import Iterator

_LOW = (1 << 64) - 1
MIN_MERGE = 50_000


def _key(event_id: str) -> int | None:
    try:
        return uuid.UUID(event_id).int
    except (ValueError, TypeError, AttributeError):
        return None


class EventIdIndex:
    """event_id (any spelling of a UUID) → the seq of its first entry in the ledger."""

    def __init__(self) -> None:
        self._high = array("Q")
        self._low = array("Q")
        self._seq = array("Q")
        self._recent: dict[int, int] = {}

    def add(self, event_id: str, seq: int) -> None:
        """Remember `event_id` at `seq` unless it is known already (the first entry stands)."""
        key = _key(event_id)
        if key is None or self._find(key) is not None:
            return
        self._recent[key] = seq
        if len(self._recent) >= max(MIN_MERGE, len(self._seq) // 4):
            self._merge()

    def get(self, event_id: str) -> int | None:
        key = _key(event_id)
        return None if key is None else self._find(key)

    def __contains__(self, event_id: object) -> bool:
        return isinstance(event_id, str) and self.get(event_id) is not None

    def __len__(self) -> int:
        return len(self._seq) + len(self._recent)

    def clear(self) -> None:
        self.__init__()  # type: ignore[misc]

    def _find(self, key: int) -> int | None:
        seq = self._recent.get(key)
        if seq is not None:
            return seq
        target = (key >> 64, key & _LOW)
        lo, hi = 0, len(self._seq)
        while lo < hi:  # binary search on the whole 128 bits: chosen ids cannot make it slow
            mid = (lo + hi) // 2
            if (self._high[mid], self._low[mid]) < target:
                lo = mid + 1
            else:
                hi = mid
        if lo < len(self._seq) and (self._high[lo], self._low[lo]) == target:
            return self._seq[lo]
        return None

    def _sorted(self) -> Iterator[tuple[int, int, int]]:
        return zip(self._high, self._low, self._seq, strict=True)

    def _merge(self) -> None:
        recent = sorted((key >> 64, key & _LOW, seq) for key, seq in self._recent.items())
        high, low, seqs = array("Q"), array("Q"), array("Q")
        for h, lo, seq in heapq.merge(self._sorted(), recent):
            high.append(h)
            low.append(lo)
            seqs.append(seq)
        self._high, self._low, self._seq = high, low, seqs
        self._recent.clear()
