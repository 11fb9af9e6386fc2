"""The one retry with back-off of the services (tenacity): NATS away, a leader being elected,
a cluster still starting. Each caller says what is worth retrying and when to give up; the
waits double from `first_wait` up to `longest_wait`.

(The projector's per-event retries in services/projector/failures.py build on the same
library, with their own judgement of which failure is the event's.)"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    stop_any,
    stop_never,
    stop_when_event_set,
    wait_exponential,
    wait_random_exponential,
)

T = TypeVar("T")

RetryOn = type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]


async def retried(
    attempt: Callable[[], Awaitable[T]],
    *,
    retry_on: RetryOn = Exception,
    attempts: int | None = None,
    within: float | None = None,
    stop: asyncio.Event | None = None,
    first_wait: float = 0.2,
    longest_wait: float = 5.0,
    jitter: bool = False,
    on_retry: Callable[[BaseException, int], None] | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> T:
    """`attempt()`, tried again after a failure `retry_on` accepts, until it succeeds or a
    bound is reached: `attempts` tries, `within` seconds since the first, or `stop` set (then
    the last failure is raised as it is). With no bound it retries for as long as it fails:
    only for services that must never drop their work (an unsent alert, a lost consumer).
    `on_retry(failure, attempt_number)` is told before each wait; `sleep` replaces the wait
    (tests). With `jitter` each wait is drawn between 0 and its doubling bound, so that
    contenders that failed together do not retry together."""
    bounds: list[Any] = []
    if attempts is not None:
        bounds.append(stop_after_attempt(attempts))
    if within is not None:
        bounds.append(stop_after_delay(within))
    if stop is not None:
        bounds.append(stop_when_event_set(stop))  # type: ignore[arg-type]  # asyncio's has is_set too

    async def pause(seconds: float) -> None:
        if sleep is not None:
            await sleep(seconds)
        elif stop is None:
            await asyncio.sleep(seconds)
        else:  # a stop ends the wait at once (a service stops on SIGTERM while NATS is away)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), seconds)

    def told(state: RetryCallState) -> None:
        failure = state.outcome.exception() if state.outcome is not None else None
        if on_retry is not None and failure is not None:
            on_retry(failure, state.attempt_number)

    retry = (
        retry_if_exception_type(retry_on)
        if isinstance(retry_on, type | tuple)
        else retry_if_exception(retry_on)
    )
    retryer = AsyncRetrying(
        retry=retry,
        stop=stop_any(*bounds) if bounds else stop_never,
        wait=(wait_random_exponential if jitter else wait_exponential)(
            multiplier=first_wait, max=longest_wait
        ),
        sleep=pause,
        before_sleep=told,
        reraise=True,
    )

    async def call() -> T:
        # tenacity awaits only what it sees is a coroutine function; a lambda returning a
        # coroutine is not one, so every attempt goes through this wrapper
        return await attempt()

    return await retryer(call)


class NotYet(Exception):
    """What `waited_for` retries: the awaited condition does not hold yet."""


async def waited_for(condition: Callable[[], Awaitable[bool]], within: float, every: float) -> bool:
    """Ask `condition()` every `every` seconds until it holds (True) or `within` seconds have
    passed (False): a wait on a condition with a deadline, through the same retry."""

    async def holds() -> None:
        if not await condition():
            raise NotYet

    try:
        await retried(holds, retry_on=NotYet, within=within, first_wait=every, longest_wait=every)
    except NotYet:
        return False
    return True
