"""One reading of instants everywhere: ISO 8601, and a naive instant is UTC (the audit-trail
rule, DOMAIN.md) — for `replay --as-of`, the API's `?as_of=` and the ledger's own stamps."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi import HTTPException

from projections.common.calendar import parse_instant
from services.api.asof import parse_as_of
from services.cli import replay as rebuild_cli

pytestmark = pytest.mark.unit

NOON_UTC = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "text",
    ["2025-03-01T12:00:00Z", "2025-03-01T12:00:00+00:00", "2025-03-01T14:00:00+02:00"],
)
def test_an_instant_with_its_zone_is_read_in_utc(text: str) -> None:
    assert parse_instant(text) == NOON_UTC
    assert parse_instant(text).tzinfo == dt.UTC


def test_the_same_naive_instant_is_utc_for_replay_and_for_the_api() -> None:
    """Was an error for `replay --as-of` and UTC for the API."""
    naive = "2025-03-01T12:00:00"
    assert rebuild_cli.parse_instant(naive) == parse_as_of(naive) == NOON_UTC


@pytest.mark.parametrize(
    "text", ["", "yesterday", "2025-13-01T00:00:00Z", "0001-01-01T00:00:00+01:00"]
)
def test_what_is_not_an_instant_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_instant(text)
    with pytest.raises(HTTPException) as refused:
        parse_as_of(text)
    assert refused.value.status_code == 400


def test_the_ledgers_own_stamp_reads_back_as_written() -> None:
    stamp = "2025-03-01T12:00:00.123456Z"
    assert parse_instant(stamp) == NOON_UTC.replace(microsecond=123456)
