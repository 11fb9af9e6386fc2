"""Date arithmetic that holds at the ends of the calendar.

The ledger may hold dates no intake would accept today (older writers, events published
around the writer): year 1 or 9999, instants whose UTC offset pushes them past either end.
A derivation must still give an answer for them, never raise OverflowError and stall a read
model: a shift past an end of the calendar stops at that end, which keeps every comparison
the rules make (before, after, within a window) as it would be with unbounded dates.
"""

from __future__ import annotations

import datetime as dt

UTC_MIN = dt.datetime.min.replace(tzinfo=dt.UTC)
UTC_MAX = dt.datetime.max.replace(tzinfo=dt.UTC)


def add_days(day: dt.date, days: int) -> dt.date:
    """`day` moved by `days` (negative: earlier), held at 0001-01-01 and 9999-12-31."""
    try:
        return day + dt.timedelta(days=days)
    except OverflowError:
        return dt.date.max if days > 0 else dt.date.min


def parse_instant(text: str) -> dt.datetime:
    """An ISO 8601 instant (`Z`, an offset, or none) in UTC: the one reading of instants
    for every command, route and service. A naive instant is UTC, as every instant the
    ledger records is (the audit-trail rule, DOMAIN.md). ValueError when `text` is not an
    instant, or its offset carries it past either end of the calendar."""
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    try:
        return moment.astimezone(dt.UTC)
    except OverflowError as exc:
        raise ValueError(f"{text!r} lies beyond the calendar in UTC") from exc


def as_utc(moment: dt.datetime) -> dt.datetime:
    """The instant in UTC; a naive one is UTC already (the audit-trail rule, DOMAIN.md).
    An instant beyond either end of the calendar in UTC is held at that end."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    try:
        return moment.astimezone(dt.UTC)
    except OverflowError:
        return UTC_MAX if moment.year == dt.MAXYEAR else UTC_MIN
