"""The writer's ledger tail stops when asked, even when a read swallows its cancellation
(Python 3.11's wait_for can lose a cancellation that meets a completing wake-up)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from services.writer.ledger_tail import LedgerTail


class _Sub:
    async def unsubscribe(self) -> None:
        return None


class _Nats:
    async def subscribe(self, subject: str, cb: Any) -> _Sub:
        return _Sub()


async def test_a_stop_ends_the_tail_even_when_a_read_loses_its_cancellation() -> None:
    tail = LedgerTail(nc=_Nats(), observe=lambda seq, subject, msg_id: None, upto=0)  # type: ignore[arg-type]
    inside = asyncio.Event()

    async def stubborn_catch_up() -> None:
        inside.set()
        tail._wake.set()  # always more to read: the loop comes straight back here
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0.5)

    tail.catch_up = stubborn_catch_up  # type: ignore[method-assign]
    await tail.start()
    await asyncio.wait_for(inside.wait(), 30)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(tail.unsubscribe(), 30)  # a hang guard, not a speed
    assert tail._task is not None
    ended = tail._task.done()
    tail._task.cancel()  # whatever happened above, leave nothing running
    assert ended, "the tail kept reading after it was stopped"
