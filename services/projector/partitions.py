"""Horizontal scale: patients hashed into a fixed number of partitions, claimed by instances.

Each partition has its own durable consumer, shared by its projections, and its own
checkpoint per projection, so a partition can move between instances without losing or
repeating anything. An instance holds
a partition by a PostgreSQL advisory lock on a dedicated connection: if the instance dies, the
connection drops, the lock is released and another instance takes the partition over from its
checkpoint. An instance takes its preferred partitions at once and any other free partition
only after it has stayed free for a grace period (so a restarting owner gets it back).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import structlog
from nats.js import JetStreamContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.ledger.histories import PatientHistories
from services.projector.runner import Applier, LiveProjector, Partition, Projection

log = structlog.get_logger("projector")

LOCK_BASE = 7_150_000


@dataclass
class Claimed:
    partition: Partition
    conn: AsyncConnection
    runners: list[LiveProjector]
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)


class PartitionSupervisor:
    def __init__(
        self,
        js: JetStreamContext,
        engine: AsyncEngine,
        schema: str,
        projections: list[Projection],
        *,
        count: int,
        instance: int = 0,
        instances: int = 1,
        batch: int = 2000,
        grace_s: float = 3.0,
        poll_s: float = 0.5,
    ) -> None:
        self.js = js
        self.engine = engine
        self.schema = schema
        self.projections = projections
        self.count = count
        self.preferred = {
            p for p in range(count) if p % max(1, instances) == instance % max(1, instances)
        }
        self.batch = batch
        self.grace_s = grace_s
        self.poll_s = poll_s
        self.claimed: dict[int, Claimed] = {}
        self._free_since: dict[int, float] = {}

    @property
    def runners(self) -> list[LiveProjector]:
        return [runner for claim in self.claimed.values() for runner in claim.runners]

    async def _try_claim(self, index: int) -> AsyncConnection | None:
        conn = await self.engine.connect()
        try:
            got = (
                await conn.execute(
                    text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_BASE + index}
                )
            ).scalar()
            await conn.commit()
        except Exception:
            await conn.close()
            raise
        if not got:
            await conn.close()
            return None
        return conn

    async def _start(self, index: int, conn: AsyncConnection) -> None:
        partition = Partition(index, self.count)
        # one consumer per partition: its projections share the read and the decoded events
        runners = [
            LiveProjector(
                self.js,
                [
                    Applier(
                        self.engine,
                        self.schema,
                        projection,
                        PatientHistories(self.js),
                        partition=partition,
                    )
                    for projection in self.projections
                ],
                batch=self.batch,
            )
        ]
        claim = Claimed(partition, conn, runners)
        claim.tasks = [asyncio.create_task(r.run(claim.stop)) for r in runners]
        self.claimed[index] = claim
        log.info("partition_claimed", partition=partition.label)

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            for index in range(self.count):
                if index in self.claimed:
                    continue
                now = loop.time()
                if index not in self.preferred:
                    first_free = self._free_since.setdefault(index, now)
                    if now - first_free < self.grace_s:
                        # probe without keeping: is anyone holding it?
                        conn = await self._try_claim(index)
                        if conn is None:
                            self._free_since.pop(index, None)
                        else:
                            with contextlib.suppress(Exception):
                                await conn.execute(
                                    text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_BASE + index}
                                )
                            await conn.close()
                        continue
                with contextlib.suppress(Exception):
                    conn = await self._try_claim(index)
                    if conn is not None:
                        self._free_since.pop(index, None)
                        await self._start(index, conn)
            await self._check_locks()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), self.poll_s)
        await self.release_all()

    async def _check_locks(self) -> None:
        """A lost lock connection (PostgreSQL restarted) means the partition may be elsewhere now."""
        for index, claim in list(self.claimed.items()):
            try:
                await claim.conn.execute(text("SELECT 1"))
                await claim.conn.commit()
            except Exception:
                log.warning("partition_lock_lost", partition=claim.partition.label)
                await self._release(index)

    async def _release(self, index: int) -> None:
        claim = self.claimed.pop(index)
        claim.stop.set()
        for task in claim.tasks:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, 10)
        with contextlib.suppress(Exception):
            await claim.conn.close()

    async def release_all(self) -> None:
        for index in list(self.claimed):
            await self._release(index)
