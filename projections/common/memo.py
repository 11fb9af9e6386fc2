"""Resume a fold where it last stopped when a patient's history has only grown.

Projections re-derive a touched patient from its whole effective history, which makes each
new event cost O(history). Most batches only append: the history then starts with exactly the
entries folded last time. `PrefixMemo` keeps each patient's last fold and the entries it
covered; when the new history begins with those same (immutable) objects, only the rest is
folded. Anything else (a history read back afresh, a different build) folds from the start. The result is the same either way; only the cost differs.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Generic, TypeVar

from projections.common.lru import Lru

T = TypeVar("T")

_MEMOS: list[_BoundedMemo[Any]] = []


def configure(*, keys: int, entries: int) -> None:
    """Turn the memos on (a long-running projector) or off (keys=0, the default): a process
    that folds a patient once, or must stay small, keeps nothing."""
    _BASE.update(keys=keys, entries=entries)
    _apply_bounds()


@contextlib.contextmanager
def configured(*, keys: int, entries: int) -> Iterator[None]:
    """The memos at least this large while the block runs (a rebuild); overlapping blocks
    (two as-of rebuilds in one API process) each keep theirs until they end."""
    bounds = (keys, entries)
    _RAISED.append(bounds)
    _apply_bounds()
    try:
        yield
    finally:
        _RAISED.remove(bounds)
        _apply_bounds()


def _apply_bounds() -> None:
    keys = max([_BASE["keys"], *(k for k, _ in _RAISED)])
    entries = max([_BASE["entries"], *(e for _, e in _RAISED)])
    _BOUNDS.update(keys=keys, entries=entries)
    for memo in _MEMOS:
        memo.bound(keys, entries)


_BASE = {"keys": 0, "entries": 0}
_BOUNDS = dict(_BASE)
_RAISED: list[tuple[int, int]] = []


class _BoundedMemo(Generic[T]):
    """Per-key memo slots over sequences of frozen entries, bounded by keys and entries.

    Entries are compared by identity: the ledger's decoded events are immutable and each is
    decoded once per process, so the same objects mean the same history. A slot is keyed by
    the first entry itself (held here, so its id stays unique): one patient's history as
    each projection of a process decoded it is a separate slot.
    """

    def __init__(self) -> None:
        # slot: (the entries covered, the value); weighed by the entries it holds
        self._memo: Lru[int, tuple[tuple[Any, ...], Any]] = Lru(
            _BOUNDS["keys"], max_weight=_BOUNDS["entries"], weight=lambda slot: len(slot[0])
        )
        self.hits = 0
        self.misses = 0
        _MEMOS.append(self)

    @property
    def max_keys(self) -> int:
        return self._memo.max_keys

    @property
    def max_entries(self) -> int | None:
        return self._memo.max_weight

    def bound(self, keys: int, entries: int) -> None:
        self._memo.max_keys, self._memo.max_weight = keys, entries
        self._memo.evict()

    def _store(self, events: tuple[Any, ...], value: Any) -> None:
        self._memo.put(id(events[0]), (events, value))

    def clear(self) -> None:
        self._memo.clear()


class PrefixMemo(_BoundedMemo[T]):
    """A bounded per-key memo of folds over growing sequences of frozen entries."""

    def fold(
        self,
        events: Sequence[Any],
        start: Callable[[Sequence[Any]], T],
        resume: Callable[[T, Sequence[Any]], T],
    ) -> T:
        """`start(events)`, or `resume(earlier, rest)` when `events` extends what `earlier` folded."""
        if not self.max_keys or not events:
            return start(events)
        events = tuple(events)
        found = self._memo.pop(id(events[0]))
        value: T
        if found is not None:
            covered, earlier = found
            if len(covered) <= len(events) and all(map(operator.is_, covered, events)):
                self.hits += 1
                rest = events[len(covered) :]
                value = resume(earlier, rest) if rest else earlier
            else:
                self.misses += 1
                value = start(events)
        else:
            self.misses += 1
            value = start(events)
        self._store(events, value)
        return value


class ExactMemo(_BoundedMemo[T]):
    """A bounded memo of results for exactly the same entries (by identity) and the same
    `extra` argument (by equality): projections that share a consumer derive the same
    patient from the same entries, and only the first of them needs to compute."""

    def get(self, events: Sequence[Any], extra: Any, compute: Callable[[], T]) -> T:
        if not self.max_keys or not events:
            return compute()
        events = tuple(events)
        found = self._memo.pop(id(events[0]))
        if found is not None:
            covered, (seen, value) = found
            if (
                len(covered) == len(events)
                and seen == extra
                and all(map(operator.is_, covered, events))
            ):
                self.hits += 1
                self._store(covered, (seen, value))
                return value  # type: ignore[no-any-return]
        self.misses += 1
        value = compute()
        self._store(events, (extra, value))
        return value
