"""The services' one retry: bounded, doubling waits, only for the failures a caller names."""

from __future__ import annotations

import asyncio

import pytest

from services.config.retry import retried, waited_for

pytestmark = pytest.mark.unit


class Flaky:
    """Fails `failures` times with `error`, then answers "ok"."""

    def __init__(self, failures: int, error: BaseException | None = None) -> None:
        self.left = failures
        self.error = error or ConnectionError("NATS away")
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.left > 0:
            self.left -= 1
            raise self.error
        return "ok"


async def test_waits_double_up_to_the_longest_and_the_answer_comes_back() -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    flaky = Flaky(6)
    assert await retried(flaky, first_wait=0.2, longest_wait=5.0, sleep=sleep) == "ok"
    assert waits == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2, 5.0])


async def test_after_the_last_attempt_the_last_failure_is_raised_as_it_is() -> None:
    async def sleep(_: float) -> None:
        return None

    flaky = Flaky(10)
    with pytest.raises(ConnectionError, match="NATS away"):
        await retried(flaky, attempts=3, sleep=sleep)
    assert flaky.calls == 3


async def test_a_failure_not_named_is_raised_at_once() -> None:
    flaky = Flaky(1, ValueError("not a JSON object"))
    with pytest.raises(ValueError):
        await retried(flaky, retry_on=(ConnectionError, TimeoutError))
    assert flaky.calls == 1


async def test_a_stop_ends_the_waiting_at_once() -> None:
    stop = asyncio.Event()
    flaky = Flaky(10**6)

    def first_failure_told(_: BaseException, _n: int) -> None:
        stop.set()  # a SIGTERM while the first hour-long wait begins

    retrying = asyncio.create_task(
        retried(flaky, stop=stop, first_wait=3600, on_retry=first_failure_told)
    )
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(retrying, 10)
    assert flaky.calls <= 2


async def test_an_attempt_given_as_a_lambda_is_awaited() -> None:
    flaky = Flaky(1)
    answer = await retried(lambda: flaky(), first_wait=0)
    assert (answer, flaky.calls) == ("ok", 2)


async def test_jittered_waits_lie_between_zero_and_their_doubling_bound() -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    flaky = Flaky(40)
    assert (
        await retried(flaky, first_wait=0.002, longest_wait=0.05, jitter=True, sleep=sleep) == "ok"
    )
    bounds = [min(0.05, 0.002 * 2**n) for n in range(40)]
    assert all(0 <= wait <= bound for wait, bound in zip(waits, bounds, strict=True))
    assert len(set(waits)) > 1  # drawn, not fixed


async def test_a_wait_ends_when_the_condition_holds_or_at_its_deadline() -> None:
    asked = 0

    async def third_time() -> bool:
        nonlocal asked
        asked += 1
        return asked == 3

    assert await waited_for(third_time, within=30, every=0.001) is True
    assert asked == 3

    async def never() -> bool:
        return False

    assert await waited_for(never, within=0.05, every=0.01) is False
