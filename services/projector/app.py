"""Composition root of the projector: one live consumer per projection, one schema."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import structlog
from nats.aio.client import Client
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.common import memo
from services.config.retry import waited_for
from services.config.settings import Settings
from services.db.migrate import active_build, make_engine, migrate
from services.ledger.connection import connect
from services.ledger.histories import CACHE_EVENTS, CACHE_PATIENTS, PatientHistories
from services.ledger.io import ensure_streams, ledger_head
from services.projector.clinical_view import ClinicalProjection
from services.projector.partitions import PartitionSupervisor
from services.projector.patient_view import CoreProjection
from services.projector.runner import Applier, LiveProjector, Projection
from services.projector.safety_view import SafetyProjection
from services.security.checkpoints import refuse_checkpoints_ahead

log = structlog.get_logger("projector")


# Every read model the projector keeps, in the order they are built. Declared, not discovered:
# a module that fails to import stops the start instead of silently dropping its read model.
PROJECTIONS: tuple[type[Projection], ...] = (CoreProjection, ClinicalProjection, SafetyProjection)


def all_projections() -> list[Projection]:
    """A fresh instance of every declared projection."""
    return [projection() for projection in PROJECTIONS]


@dataclass
class ProjectorApp:
    nc: Client
    engine: AsyncEngine
    schema: str
    runners: list[LiveProjector]
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    follow_active: bool = True
    watcher: asyncio.Task[Any] | None = None
    supervisor: PartitionSupervisor | None = None

    def active_runners(self) -> list[LiveProjector]:
        return self.supervisor.runners if self.supervisor is not None else self.runners

    async def start(self) -> None:
        await refuse_checkpoints_ahead(self.nc.jetstream(), self.engine, self.schema)
        self.stop_event = asyncio.Event()
        if self.supervisor is not None:
            self.tasks = [asyncio.create_task(self.supervisor.run(self.stop_event))]
            return
        self.tasks = [asyncio.create_task(r.run(self.stop_event)) for r in self.runners]
        if self.follow_active and self.watcher is None:
            self.watcher = asyncio.create_task(self._follow_switches())

    async def _stop_runners(self) -> None:
        self.stop_event.set()
        for task in self.tasks:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(task, 10)
        self.tasks = []

    async def _follow_switches(self) -> None:
        """A rebuild built aside and switched in: move the live consumers to the new build."""
        while True:
            await asyncio.sleep(1.0)
            with contextlib.suppress(Exception):
                build = await active_build(self.engine)
                if build != self.schema:
                    log.info("projection_build_switched", old=self.schema, new=build)
                    await self._stop_runners()
                    js = self.nc.jetstream()
                    self.schema = build
                    self.runners = [
                        LiveProjector(
                            js,
                            Applier(self.engine, build, r.applier.projection, PatientHistories(js)),
                            batch=r.batch,
                        )
                        for r in self.runners
                    ]
                    self.stop_event = asyncio.Event()
                    self.tasks = [asyncio.create_task(r.run(self.stop_event)) for r in self.runners]

    async def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.cancel()
            with contextlib.suppress(BaseException):
                await self.watcher
        await self._stop_runners()
        with contextlib.suppress(Exception):
            await self.nc.drain()
        await self.engine.dispose()

    async def lag(self) -> dict[str, int]:
        """Ledger head minus each projection's checkpoint (0 = caught up)."""
        head = await ledger_head(self.nc.jetstream())
        return {
            r.applier.position: head - await r.applier.checkpoint() for r in self.active_runners()
        }

    async def _caught_up(self) -> bool:
        return all(lag == 0 for lag in (await self.lag()).values())

    async def wait_caught_up(self, timeout: float = 60.0) -> None:
        if await waited_for(self._caught_up, timeout, 0.05):
            return
        raise TimeoutError(f"projections not caught up after {timeout}s: {await self.lag()}")


async def create_app(
    settings: Settings,
    *,
    schema: str | None = None,
    batch: int = 2000,
    partitions: int = 1,
    instance: int = 0,
    instances: int = 1,
    only: list[str] | None = None,
) -> ProjectorApp:
    """One process; with `partitions` > 1 it claims its share of patient partitions (and any
    partition another instance left) instead of running every patient itself."""
    settings.require("projector")
    assert settings.nats_url and settings.database_url  # for the type checker: require() checked it
    nc = await connect(settings.nats_url, settings.creds_for("projector"), name="projector")
    js = nc.jetstream()
    await ensure_streams(js)
    engine = make_engine(settings.database_url, pool_size=max(10, 4 * partitions))
    await migrate(engine)
    build = schema or await active_build(engine)
    await migrate(engine, build)
    chosen = [p for p in all_projections() if not only or p.name in only]
    unknown = set(only or ()) - {p.name for p in chosen}
    if unknown:
        raise ValueError(
            f"unknown projections: {sorted(unknown)}; known: {[p.name for p in all_projections()]}"
        )
    # A patient's next batch resumes its folds. Only recently active patients need that, so
    # the memos stay well inside the history caches (projections on one consumer share them).
    memo.configure(keys=CACHE_PATIENTS, entries=CACHE_EVENTS // 2)
    runners = [
        LiveProjector(js, Applier(engine, build, projection, PatientHistories(js)), batch=batch)
        for projection in chosen
    ]
    if partitions > 1:
        supervisor = PartitionSupervisor(
            js,
            engine,
            build,
            chosen,
            count=partitions,
            instance=instance,
            instances=instances,
            batch=batch,
        )
        return ProjectorApp(nc, engine, build, [], follow_active=False, supervisor=supervisor)
    return ProjectorApp(nc, engine, build, runners, follow_active=schema is None)
