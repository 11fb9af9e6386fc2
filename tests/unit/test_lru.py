"""The one bounded cache: least recently used out first, within keys and weight."""

from __future__ import annotations

import pytest

from projections.common.lru import Lru

pytestmark = pytest.mark.unit


def test_the_least_recently_used_key_is_evicted_and_named() -> None:
    cache: Lru[str, int] = Lru(2)
    cache.put("P1", 1)
    cache.put("P2", 2)
    assert cache.get("P1") == 1  # P1 is now the most recent
    assert cache.put("P3", 3) == [("P2", 2)]
    assert list(cache) == ["P1", "P3"]


def test_reading_without_use_does_not_keep_a_key() -> None:
    cache: Lru[str, int] = Lru(2)
    cache.put("P1", 1)
    cache.put("P2", 2)
    assert cache.peek("P1") == 1
    assert cache.put("P3", 3) == [("P1", 1)]


def test_the_total_weight_is_bounded_as_values_grow() -> None:
    cache: Lru[str, list[int]] = Lru(10, max_weight=5, weight=len)
    cache.put("P1", [1, 2])
    history = [1, 2]
    cache.put("P2", history)
    history.append(3)
    cache.grow("P2", 1)
    assert cache.weight == 5
    assert cache.put("P3", [1]) == [("P1", [1, 2])]
    assert cache.weight == 4


def test_pinned_keys_and_the_newest_stay_whatever_they_weigh() -> None:
    pinned = {"P1"}
    cache: Lru[str, list[int]] = Lru(
        1, max_weight=1, weight=len, pinned=lambda key: key in pinned, min_keys=1
    )
    cache.put("P1", [1, 2])
    assert cache.put("P2", [1, 2, 3]) == []  # P1 pinned, P2 the newest
    pinned.clear()
    assert cache.evict() == [("P1", [1, 2])]
    assert list(cache) == ["P2"]


def test_a_key_put_again_is_weighed_once() -> None:
    cache: Lru[str, list[int]] = Lru(10, max_weight=100, weight=len)
    cache.put("P1", [1, 2])
    cache.put("P1", [1, 2, 3])
    assert (len(cache), cache.weight) == (1, 3)
    cache.pop("P1")
    assert (len(cache), cache.weight) == (0, 0)
