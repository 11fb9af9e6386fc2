"""The prefix memos change what a derivation costs, never what it gives."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, find, given, settings

from events import ProtocolParameters
from projections.common import memo
from projections.endpoints.patient_endpoints import replay_trial
from projections.fold.history import _HISTORIES, Recorded, effective_history
from projections.fold.patient import _FOLDS, fold_ledger
from projections.safety.episodes import patient_safety
from tests.unit.test_endpoints import batches_of, trial_ledger

pytestmark = pytest.mark.unit


@pytest.fixture
def memos_on() -> Iterator[None]:
    memo.configure(keys=64, entries=10_000)
    try:
        yield
    finally:
        memo.configure(keys=0, entries=0)


def _derived_with(on: bool, batches: list[list[Recorded]]) -> object:
    memo.configure(keys=64 if on else 0, entries=10_000 if on else 0)
    try:
        return replay_trial(batches)
    finally:
        memo.configure(keys=0, entries=0)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trial_ledger())
def test_endpoints_with_memos_equal_endpoints_without(
    drawn: tuple[list[Recorded], list[int]],
) -> None:
    entries, cuts = drawn
    batches = batches_of(entries, cuts)
    assert _derived_with(True, batches) == _derived_with(False, batches)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trial_ledger())
def test_state_and_safety_folded_entry_by_entry_equal_a_fresh_fold(
    drawn: tuple[list[Recorded], list[int]],
) -> None:
    entries, _ = drawn
    patients = [e for e in entries if e.event.site_id != "_sponsor"]
    parameters = next(
        e.event.data.parameters for e in entries if e.event.event_type == "protocol_parameters_set"
    )
    memo.configure(keys=64, entries=10_000)
    try:
        grown: dict[object, list[Recorded]] = {}
        remembered = []
        for entry in patients:
            history = grown.setdefault(entry.event.patient_key, [])
            history.append(entry)
            events = effective_history(history).events
            remembered.append(
                (fold_ledger(history), patient_safety(events, parameters) if events else None)
            )
    finally:
        memo.configure(keys=0, entries=0)
    fresh = []
    for n, entry in enumerate(patients):
        history = [e for e in patients[: n + 1] if e.event.patient_key == entry.event.patient_key]
        events = effective_history(history).events
        fresh.append((fold_ledger(history), patient_safety(events, parameters) if events else None))
    assert remembered == fresh


def test_a_grown_history_resumes_and_a_changed_one_starts_again(memos_on: None) -> None:
    entries = _ledger()
    patient = entries[1].event.patient_key
    mine = [e for e in entries if e.event.patient_key == patient]
    hits = _HISTORIES.hits
    for n in range(1, len(mine) + 1):
        effective_history(mine[:n])
    assert _HISTORIES.hits - hits == len(mine) - 1
    fold_ledger(mine)
    misses = _FOLDS.misses
    fold_ledger(mine)
    assert _FOLDS.misses == misses  # the same entries again: remembered
    fold_ledger([Recorded(e.seq, e.event) for e in mine])  # read back afresh: new objects
    assert _FOLDS.misses == misses + 1


def test_memos_are_off_unless_configured() -> None:
    entries = _ledger()
    before = (_HISTORIES.hits, _HISTORIES.misses)
    effective_history(entries[1:3])
    effective_history(entries[1:3])
    assert (_HISTORIES.hits, _HISTORIES.misses) == before


def test_the_memo_is_bounded(memos_on: None) -> None:
    memo.configure(keys=2, entries=10_000)
    entries = _ledger()
    keys = {e.event.patient_key for e in entries if e.event.site_id != "_sponsor"}
    for key in keys:
        effective_history([e for e in entries if e.event.patient_key == key])
    assert len(_HISTORIES._memo) <= 2


def _ledger() -> list[Recorded]:
    """One drawn ledger with a few events per patient."""
    drawn = find(
        trial_ledger(), lambda drawn: sum(e.event.site_id != "_sponsor" for e in drawn[0]) >= 6
    )
    return drawn[0]


def test_overlapping_raised_bounds_end_where_the_base_is() -> None:
    memo.configure(keys=5, entries=50)
    try:
        with memo.configured(keys=100, entries=1000):
            outer = memo.configured(keys=200, entries=2000)
            outer.__enter__()
            assert (_HISTORIES.max_keys, _HISTORIES.max_entries) == (200, 2000)
        # the first block ended while the second still runs: the second's bounds hold
        assert (_HISTORIES.max_keys, _HISTORIES.max_entries) == (200, 2000)
        outer.__exit__(None, None, None)
        assert (_HISTORIES.max_keys, _HISTORIES.max_entries) == (5, 50)
    finally:
        memo.configure(keys=0, entries=0)


def test_an_exact_memo_answers_only_the_same_entries_and_the_same_argument(memos_on: None) -> None:
    exact: memo.ExactMemo[tuple[int, str]] = memo.ExactMemo()
    calls: list[str] = []

    def compute(entries: tuple[object, ...], extra: str) -> tuple[int, str]:
        calls.append(extra)
        return (len(entries), extra)

    a, b, c = object(), object(), object()
    first = (a, b)
    assert exact.get(first, "p1", lambda: compute(first, "p1")) == (2, "p1")
    assert exact.get((a, b), "p1", lambda: compute(first, "p1")) == (
        2,
        "p1",
    )  # the same objects: remembered
    assert calls == ["p1"]
    assert exact.get((a, b), "p2", lambda: compute(first, "p2")) == (2, "p2")  # another argument
    assert exact.get((a, b, c), "p2", lambda: compute((a, b, c), "p2")) == (3, "p2")  # grown
    assert exact.get((a, object()), "p2", lambda: compute((a, b), "p2")) == (
        2,
        "p2",
    )  # an equal-length other
    assert calls == ["p1", "p2", "p2", "p2"]
    assert (exact.hits, exact.misses) == (1, 4)
    memo.configure(keys=0, entries=0)
    exact.get(first, "p1", lambda: compute(first, "p1"))
    assert len(calls) == 5  # off: computed every time


def test_safety_is_derived_once_for_the_same_entries(memos_on: None) -> None:
    entries = _ledger()
    key = next(e.event.patient_key for e in entries if e.event.site_id != "_sponsor")
    history = effective_history([e for e in entries if e.event.patient_key == key])
    first = patient_safety(history.events, ProtocolParameters())
    assert patient_safety(history.events, ProtocolParameters()) is first
    assert patient_safety(history.events, ProtocolParameters(teae_window_days=5)) is not first
