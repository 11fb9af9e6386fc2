"""Whose fault a projection failure is: the event's (parked) or the infrastructure's (retried)."""

from __future__ import annotations

import asyncio

import pytest
from asyncpg import exceptions as pg
from sqlalchemy import exc as sa_exc

from services.projector.failures import GaveUp, classify, reason, retrying, storable

pytestmark = pytest.mark.unit


def wrapped(error: Exception) -> sa_exc.DBAPIError:
    """As SQLAlchemy's asyncpg dialect raises a driver error: the adapter carries `sqlstate`."""

    class Adapted(Exception):
        sqlstate = error.sqlstate  # type: ignore[attr-defined]

    orig = Adapted(str(error))
    orig.__cause__ = error
    return sa_exc.DBAPIError("INSERT …", {}, orig)


@pytest.mark.parametrize(
    "error",
    [
        OverflowError("date value out of range"),
        ValueError("bad"),
        KeyError("x"),
        wrapped(pg.CharacterNotInRepertoireError("invalid byte sequence 0x00")),
        wrapped(pg.UntranslatableCharacterError("unsupported Unicode escape sequence")),
        wrapped(pg.UniqueViolationError("duplicate key")),
        pg.DataError("raised by COPY, unwrapped"),
    ],
)
def test_an_error_the_event_causes_every_time_is_deterministic(error: Exception) -> None:
    assert classify(error) == "deterministic"


@pytest.mark.parametrize(
    "error",
    [
        ConnectionResetError(),
        TimeoutError(),
        wrapped(pg.SerializationError("could not serialize access")),
        wrapped(pg.DeadlockDetectedError("deadlock")),
        wrapped(pg.AdminShutdownError("terminating connection")),
        wrapped(pg.CannotConnectNowError("the database system is starting up")),
        wrapped(pg.UndefinedTableError("relation does not exist")),  # every event would fail
        sa_exc.OperationalError("SELECT 1", {}, Exception("connection refused")),
    ],
)
def test_an_error_of_the_database_being_away_is_transient(error: Exception) -> None:
    assert classify(error) == "transient"


def test_an_error_of_no_known_kind_is_left_to_the_database_probe() -> None:
    assert classify(RuntimeError("?")) is None


def test_the_reason_names_the_error_and_its_sqlstate_not_the_statement() -> None:
    text = reason(wrapped(pg.CharacterNotInRepertoireError("invalid byte sequence 0x00")))
    assert text.startswith("DBAPIError [SQLSTATE 22021]: invalid byte sequence")
    assert "INSERT" not in text


async def test_transient_failures_are_retried_a_bounded_number_of_times() -> None:
    calls = 0

    async def away() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionResetError

    async def transient(exc: BaseException) -> bool:
        return classify(exc) == "transient"

    with pytest.raises(GaveUp):
        await retrying(away, transient=transient, attempts=3)
    assert calls == 3


async def test_a_stop_ends_the_back_off_at_once() -> None:
    stop = asyncio.Event()
    calls = 0

    async def away() -> None:
        nonlocal calls
        calls += 1
        stop.set()
        raise ConnectionResetError

    async def transient(exc: BaseException) -> bool:
        return True

    with pytest.raises(GaveUp):
        await retrying(away, transient=transient, stop=stop, attempts=100)
    assert calls == 1  # no back-off, no second attempt once stopped


async def test_a_deterministic_failure_is_raised_as_it_is_without_retrying() -> None:
    calls = 0

    async def broken() -> None:
        nonlocal calls
        calls += 1
        raise OverflowError("date value out of range")

    async def transient(exc: BaseException) -> bool:
        return classify(exc) == "transient"

    with pytest.raises(OverflowError):
        await retrying(broken, transient=transient)
    assert calls == 1


def test_what_is_recorded_of_a_parked_event_can_always_be_stored() -> None:
    # PostgreSQL text holds neither NUL nor a lone surrogate (JSON can carry both)
    assert storable("id\x00\ud800") == "id\\x00\\ud800"
    assert "\x00" not in reason(ValueError("input_value='nausea\x00'"))
