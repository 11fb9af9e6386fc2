"""The writer's view of what other writers append, without a consumer (issue 14, item 13).

Every append to LEDGER is also a plain NATS message on its ledger subject; the tail listens to
those only as a wake-up, and then reads what is new by direct gets (services/ledger/direct.py),
which carry the stream seq the wake-up lacks. A wake-up that was missed (a reconnect) costs at
most `POLL_S`: the tail also reads on a timer. No consumer, so the writer's credential needs no
consumer rights at all.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from nats.aio.client import Client

from events.subjects import LEDGER_STREAM, LEDGER_SUBJECTS
from services.ledger.direct import read_direct

log = structlog.get_logger("writer")

POLL_S = 1.0
# How long a stop waits for the tail's task to end after cancelling it.
STOP_WAIT_S = 5.0
# At most one read this often however fast appends come (each wake-up is one append).
MIN_ROUND_S = 0.05

Observe = Callable[[int, str, str | None], None]


@dataclass
class LedgerTail:
    nc: Client
    observe: Observe
    upto: int  # the last seq already observed (or loaded)
    reads: int = 0
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _sub: Any = None
    _stopping: bool = False

    async def start(self) -> None:
        async def wake(_: Any) -> None:
            self._wake.set()

        self._sub = await self.nc.subscribe(LEDGER_SUBJECTS, cb=wake)
        self._task = asyncio.create_task(self._run(), name="writer-ledger-tail")

    async def catch_up(self) -> None:
        """Observe everything appended after `upto`, up to the head as it is now."""
        js = self.nc.jetstream()
        self.reads += 1
        async for batch in read_direct(js, stream=LEDGER_STREAM, start_seq=self.upto + 1):
            for msg in batch:
                self.observe(msg.seq, msg.subject, (msg.headers or {}).get("Nats-Msg-Id"))
                self.upto = msg.seq

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        # The flag, not only the cancellation, ends the loop: Python 3.11's wait_for can lose a
        # cancellation that arrives as the wake-up completes, and a stop must still stop.
        while not self._stopping:
            began = loop.time()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_S)
            self._wake.clear()
            try:
                await self.catch_up()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a failover or a reconnect: the next round reads again
                log.warning("writer_tail_read_failed", error=repr(exc), upto=self.upto)
            await asyncio.sleep(max(0.0, began + MIN_ROUND_S - loop.time()))

    async def unsubscribe(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
        if self._task is not None:
            self._task.cancel()
            # bounded: a stop never waits on a read that lost its cancellation
            await asyncio.wait({self._task}, timeout=STOP_WAIT_S)
