"""`verify`'s ledger read waits out a cluster's 503 (a consumer whose leader is not placed yet,
right after a node failed or came back) instead of failing the audit, a bounded number of
times; a read that times out still ends it."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import ServiceUnavailableError

from services.ledger import io as ledger_io
from services.security import verify

pytestmark = pytest.mark.unit


def _msg(seq: int) -> Any:
    return SimpleNamespace(
        metadata=SimpleNamespace(sequence=SimpleNamespace(stream=seq)),
        subject=f"ledger.T.s.p{seq}.enrolled",
        data=b"{}",
        headers=None,
    )


@dataclass
class FakeSub:
    answers: list[Any]
    fetches: int = 0

    async def fetch(self, batch: int, timeout: float) -> list[Any]:
        self.fetches += 1
        answer = self.answers.pop(0) if self.answers else NatsTimeoutError()
        if isinstance(answer, BaseException):
            raise answer
        return answer

    async def unsubscribe(self) -> None:
        return None


@dataclass
class FakeJetStream:
    sub: FakeSub
    deleted: list[str] = field(default_factory=list)

    async def add_consumer(self, stream: str, config: Any) -> Any:
        return SimpleNamespace(name="c1")

    async def pull_subscribe_bind(self, name: str, stream: str) -> FakeSub:
        return self.sub

    async def delete_consumer(self, stream: str, name: str) -> None:
        self.deleted.append(name)


async def no_wait(_: float) -> None:
    """The read's wait between 503s, injected: nothing global (asyncio.sleep) is patched, so
    whatever else runs in the event loop keeps its own sleeps."""


async def _read(js: FakeJetStream, head: int) -> list[int]:
    return [
        m.seq
        async for m in verify.read_ledger(js, head, sleep=no_wait)  # type: ignore[arg-type]
    ]


async def test_503s_are_waited_out_and_nothing_is_missed() -> None:
    unavailable = ServiceUnavailableError()
    sub = FakeSub([unavailable, unavailable, [_msg(1), _msg(2)], unavailable, [_msg(3)]])
    js = FakeJetStream(sub)
    assert await _read(js, 3) == [1, 2, 3]
    assert js.deleted == ["c1"]  # the consumer is cleaned up


async def test_endless_503s_fail_the_read_after_a_bound() -> None:
    sub = FakeSub([ServiceUnavailableError() for _ in range(ledger_io.MAX_UNAVAILABLE_FETCHES + 5)])
    with pytest.raises(ServiceUnavailableError):
        await _read(FakeJetStream(sub), 3)
    assert sub.fetches == ledger_io.MAX_UNAVAILABLE_FETCHES + 1


async def test_a_read_that_times_out_ends_it() -> None:
    sub = FakeSub([[_msg(1)], NatsTimeoutError()])
    assert await _read(FakeJetStream(sub), 5) == [1]
