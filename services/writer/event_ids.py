"""Every event_id in the ledger and the seq that holds it, complete and compact.

An id must be stored at most once, ever, whatever patient the resubmission names: JetStream's
`Nats-Msg-Id` window covers only the last minutes, and a patient's own history only that
patient. So the writer knows every id, built from the ledger's headers at start and kept up to
date by its own appends and those it sees from other writers. Kept as sorted 64-bit words
(24 bytes an event; a million events ≈ 24 MB, in numpy) with a small dict for the newest,
merged when it grows by a quarter: memory proportionate to the ledger, not to Python's
objects.
"""

from __future__ import annotations

import uuid

import numpy as np

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
        # sorted by (high, low) 64-bit halves of the UUID; searched and merged in numpy
        self._high = np.empty(0, dtype=np.uint64)
        self._low = np.empty(0, dtype=np.uint64)
        self._seq = np.empty(0, dtype=np.uint64)
        self._recent: dict[int, int] = {}

    def add(self, event_id: str, seq: int) -> None:
        """Remember `event_id` at `seq` unless it is known already (the first entry stands)."""
        key = _key(event_id)
        if key is None:
            return
        self._recent.setdefault(key, seq)  # a later sighting is dropped by `_merge`
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
        high, low = np.uint64(key >> 64), np.uint64(key & _LOW)
        # the run of equal high halves, then the low half within it: logarithmic even when
        # a submitter chooses ids that share their high half
        start = int(np.searchsorted(self._high, high, side="left"))
        end = int(np.searchsorted(self._high, high, side="right"))
        at = start + int(np.searchsorted(self._low[start:end], low))
        if at < end and self._low[at] == low:
            return int(self._seq[at])  # older than anything in `_recent`
        return self._recent.get(key)

    def _merge(self) -> None:
        keys = list(self._recent)
        high = np.fromiter((k >> 64 for k in keys), dtype=np.uint64, count=len(keys))
        low = np.fromiter((k & _LOW for k in keys), dtype=np.uint64, count=len(keys))
        seqs = np.fromiter(self._recent.values(), dtype=np.uint64, count=len(keys))
        high = np.concatenate([self._high, high])
        low = np.concatenate([self._low, low])
        seqs = np.concatenate([self._seq, seqs])
        order = np.lexsort((seqs, low, high))
        high, low, seqs = high[order], low[order], seqs[order]
        first = np.ones(len(seqs), dtype=bool)  # an id seen twice keeps its first seq
        first[1:] = (high[1:] != high[:-1]) | (low[1:] != low[:-1])
        self._high, self._low, self._seq = high[first], low[first], seqs[first]
        self._recent.clear()
