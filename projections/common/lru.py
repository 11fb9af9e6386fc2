"""The one bounded cache of the code base: least recently used first out, bounded by a number
of keys and, optionally, by a total weight (events cached, entries covered).

Pure and synchronous (projections/ rules: standard library only). The caller learns what was
evicted, so that a cache of resources can release them."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Lru(Generic[K, V]):
    """At most `max_keys` keys and, with a `weight`, at most `max_weight` in all.

    `pinned(key)` keys are never evicted (a batch being applied needs them); the
    `min_keys` most recent keys stay whatever they weigh (the one just loaded)."""

    def __init__(
        self,
        max_keys: int,
        *,
        max_weight: int | None = None,
        weight: Callable[[V], int] | None = None,
        pinned: Callable[[K], bool] | None = None,
        min_keys: int = 0,
    ) -> None:
        self.max_keys = max_keys
        self.max_weight = max_weight
        self._weigh = weight
        self._pinned = pinned
        self.min_keys = min_keys
        self._items: OrderedDict[K, V] = OrderedDict()
        self.weight = 0  # the sum of the values' weights, kept as they come, go and grow

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[K]:
        return iter(self._items)

    def values(self) -> Iterator[V]:
        return iter(self._items.values())

    def peek(self, key: K) -> V | None:
        """The value, without making it recent."""
        return self._items.get(key)

    def get(self, key: K) -> V | None:
        """The value, now the most recently used."""
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V, *, evict: bool = True) -> list[tuple[K, V]]:
        """Store `value` as the most recent; returns what that evicted, oldest first
        (nothing with `evict=False`: the caller evicts at a point of its choosing)."""
        old = self._items.pop(key, None)
        if old is not None:
            self.weight -= self._weight_of(old)
        self._items[key] = value
        self.weight += self._weight_of(value)
        return self.evict() if evict else []

    def grow(self, key: K, by: int) -> None:
        """`key`'s value grew in place by `by` (no eviction until the next `put`/`evict`)."""
        if key in self._items:
            self.weight += by

    def recount(self) -> None:
        """Weigh every value again (values that grew where the cache could not see it)."""
        self.weight = sum(self._weight_of(value) for value in self._items.values())

    def pop(self, key: K) -> V | None:
        value = self._items.pop(key, None)
        if value is not None:
            self.weight -= self._weight_of(value)
        return value

    def clear(self) -> None:
        self._items.clear()
        self.weight = 0

    def evict(self) -> list[tuple[K, V]]:
        """Least recently used first until within bounds (pinned and newest kept)."""
        evicted: list[tuple[K, V]] = []
        if not self._over():
            return evicted
        for key in list(self._items)[: max(0, len(self._items) - self.min_keys)]:
            if not self._over():
                break
            if self._pinned is not None and self._pinned(key):
                continue
            value = self._items.pop(key)
            self.weight -= self._weight_of(value)
            evicted.append((key, value))
        return evicted

    def _over(self) -> bool:
        return len(self._items) > self.max_keys or (
            self.max_weight is not None and self.weight > self.max_weight
        )

    def _weight_of(self, value: V) -> int:
        return self._weigh(value) if self._weigh is not None else 0
