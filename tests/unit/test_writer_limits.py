"""The writer's size limit: an oversized event is refused, and skipping the per-event
measurement for small payloads never lets one through."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.writer.intake import MAX_EVENT_BYTES, Writer, _may_be_large

pytestmark = pytest.mark.unit

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=20,
)


def _compact(value: Any) -> bytes:
    """`value` as compact UTF-8 JSON (the short exponent forms are the cases below)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_re_encoding_grows_json_at_most_six_fold(value: Any) -> None:
    payload = _compact(value)
    assert len(json.dumps(json.loads(payload))) <= 6 * len(payload)


@pytest.mark.parametrize("text", ["1e15", "[1e15,1e15]", '"😀"', '"é"', '{"a":1E15}', "[1,2,3]"])
def test_the_worst_growths_stay_within_the_bound(text: str) -> None:
    payload = text.encode()
    assert len(json.dumps(json.loads(payload))) <= 6 * len(payload)


async def test_an_oversized_event_is_refused_whether_sent_alone_or_in_a_batch() -> None:
    writer = Writer(None, check_ae=lambda *_: [])  # type: ignore[arg-type]  # refused before any ledger access
    big = {"event_id": "e1", "type": "enrolled", "data": {"note": "x" * MAX_EVENT_BYTES}}
    alone = json.dumps(big).encode()
    assert _may_be_large(alone)
    reply = await writer.handle("intake.T1.site01", alone)
    assert reply["status"] == "rejected" and "at most" in reply["errors"][0]["message"]
    batch = await writer.handle("intake.T1.site01", json.dumps({"events": [big]}).encode())
    assert batch["results"][0]["status"] == "rejected"
    assert "at most" in batch["results"][0]["errors"][0]["message"]


async def test_the_unknown_trials_looked_up_are_remembered_boundedly() -> None:
    writer = Writer(None, check_ae=lambda *_: [])  # type: ignore[arg-type]
    for n in range(10_050):  # not trial ids at all: remembered, never read from the ledger
        await writer._refresh_trial(f"not a trial {n}")
    assert len(writer._trial_misses) == 10_000
    assert "not a trial 10049" in writer._trial_misses
    assert "not a trial 0" not in writer._trial_misses  # the oldest went first
