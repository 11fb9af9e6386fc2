"""Whose fault a projection failure is: the event's (park it, go on) or the infrastructure's
(retry with bounded back-off, lose nothing).

Deterministic: the same event fails the same way every time — a derivation raising on its
content (ValueError, OverflowError, a pydantic validation error …) or PostgreSQL refusing its
values (SQLSTATE class 22 "data exception", e.g. a NUL character in text; class 23 "integrity
constraint violation"). Transient: the database or NATS is away, restarting, timing out or
asking for the transaction again (SQLSTATE classes 08, 40, 53, 57, 58; lock not available).
Anything else is judged by asking the database: if it answers, the event is at fault.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
from nats import errors as nats_errors
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_when_event_set,
    wait_exponential_jitter,
)

log = structlog.get_logger("projector")

T = TypeVar("T")

DETERMINISTIC_SQLSTATE_CLASSES = frozenset({"22", "23"})
TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "57", "58"})
TRANSIENT_SQLSTATES = frozenset({"55P03", "55006"})  # lock not available, object in use
# Syntax errors, missing tables or columns (class 42) are the code's or the schema's, not one
# event's: every event would fail alike, so parking them would empty the read models.
SYSTEMIC_SQLSTATE_CLASSES = frozenset({"42", "3F", "0A"})

# Python errors a pure derivation raises on the content of one event.
DETERMINISTIC_ERRORS: tuple[type[BaseException], ...] = (
    ArithmeticError,  # OverflowError: a date shifted past year 9999
    ValueError,  # pydantic's ValidationError, UnicodeError, json's errors
    TypeError,
    LookupError,
    AttributeError,
    AssertionError,
    RecursionError,
)
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # ConnectionError and friends
    TimeoutError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,  # the connection pool is exhausted
    nats_errors.Error,
)

# Bounded back-off: 8 attempts over about 15 s (0.2 s doubling, at most 5 s, with jitter)
# before the caller hears of it.
ATTEMPTS = 8
FIRST_WAIT = 0.2
LONGEST_WAIT = 5.0


def sqlstate(exc: BaseException) -> str | None:
    """The PostgreSQL error code behind `exc` (SQLAlchemy wraps the driver's exception)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        code = getattr(current, "sqlstate", None)
        if isinstance(code, str) and len(code) == 5:
            return code
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return None


def classify(exc: BaseException) -> str | None:
    """Whose fault `exc` is: "deterministic" (the event's), "transient" (the infrastructure's),
    or None when only the database can tell (`is_transient` asks it)."""
    code = sqlstate(exc)
    if code is not None:
        if code[:2] in DETERMINISTIC_SQLSTATE_CLASSES:
            return "deterministic"
        if code[:2] in TRANSIENT_SQLSTATE_CLASSES | SYSTEMIC_SQLSTATE_CLASSES:
            return "transient"
        if code in TRANSIENT_SQLSTATES:
            return "transient"
        return None
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated or isinstance(
            exc, sa_exc.OperationalError | sa_exc.InterfaceError
        ):
            return "transient"
        return None
    if isinstance(exc, TRANSIENT_ERRORS):
        return "transient"
    if isinstance(exc, DETERMINISTIC_ERRORS):
        return "deterministic"
    return None


async def is_transient(exc: BaseException, engine: AsyncEngine) -> bool:
    """Whether retrying may succeed. An error of no known kind is the event's when the
    database answers right after it, the infrastructure's when it does not."""
    kind = classify(exc)
    if kind is not None:
        return kind == "transient"
    try:
        async with engine.connect() as conn:
            await asyncio.wait_for(conn.execute(text("SELECT 1")), 10)
    except Exception:
        return True
    return False


def storable(value: str) -> str:
    """`value` as PostgreSQL text can hold it: NUL and lone surrogates (which JSON can carry
    and UTF-8 cannot) escaped, so a parked event's record never fails as the event did."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def reason(exc: BaseException) -> str:
    """What an operator reads about a parked event (the error, not the event's content)."""
    code = sqlstate(exc)
    cause = exc.orig if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None else exc
    text_ = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    prefix = f"{type(exc).__name__}" + (f" [SQLSTATE {code}]" if code else "")
    return storable(f"{prefix}: {text_}"[:1000])


class GaveUp(RuntimeError):
    """Transient failures outlasted the bounded retries (or a stop came): the event is not at
    fault and is never parked for it; the caller reports and decides (`__cause__` = the last
    failure)."""


async def retrying(
    attempt: Callable[[], Awaitable[T]],
    *,
    transient: Callable[[BaseException], Awaitable[bool]],
    stop: asyncio.Event | None = None,
    label: str = "",
    attempts: int = ATTEMPTS,
) -> T:
    """`attempt()`, retried after transient failures with exponential back-off and jitter,
    at most `attempts` times and never after `stop` is set. Any other failure is raised as it
    is; the last transient one as `GaveUp`."""
    verdicts: dict[int, bool] = {}

    async def judged(exc: BaseException) -> bool:
        verdicts[id(exc)] = await transient(exc)
        return verdicts[id(exc)]

    def retry_transient(exc: BaseException) -> bool:
        return verdicts.get(id(exc), False)

    async def pause(seconds: float) -> None:
        if stop is None:
            await asyncio.sleep(seconds)
            return
        # woken at once by a stop: `up` ends on SIGTERM even while the database is away
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)

    def report(state: RetryCallState) -> None:
        failure = state.outcome.exception() if state.outcome is not None else None
        log.warning(
            "projection_retry",
            projection=label,
            attempt=state.attempt_number,
            error=reason(failure) if failure is not None else "",
        )

    async def attempt_judged() -> T:
        try:
            return await attempt()
        except Exception as exc:
            await judged(exc)
            raise

    stop_rule: Any = stop_after_attempt(attempts)
    if stop is not None:
        stop_rule = stop_rule | stop_when_event_set(stop)  # type: ignore[arg-type]
    retryer = AsyncRetrying(
        retry=retry_if_exception(retry_transient),
        stop=stop_rule,
        wait=wait_exponential_jitter(multiplier=FIRST_WAIT, max=LONGEST_WAIT, jitter=FIRST_WAIT),
        sleep=pause,
        before_sleep=report,
        reraise=True,
    )
    try:
        return await retryer(attempt_judged)
    except Exception as exc:
        if verdicts.get(id(exc), False):
            raise GaveUp(f"{label}: gave up after transient failures: {reason(exc)}") from exc
        raise
