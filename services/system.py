"""The whole system in one process: embedded servers (unless URLs are given) + every service.

Used by `trial-ledger up`, `trial-ledger demo` and the end-to-end tests.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from services.runtime import EmbeddedNats, EmbeddedPostgres
from services.settings import Settings, write_runtime

log = structlog.get_logger("system")

Stopper = Callable[[], Awaitable[None]]


@dataclass
class System:
    data_dir: Path
    nats: EmbeddedNats | None = None
    postgres: EmbeddedPostgres | None = None
    settings: Settings = field(default_factory=Settings)
    runtime: dict[str, Any] = field(default_factory=dict)
    stoppers: list[Stopper] = field(default_factory=list)
    services: dict[str, Any] = field(default_factory=dict)

    async def start(self, *, with_services: bool = True, api_port: int | None = None) -> System:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        nats_url = os.environ.get("LEDGER_NATS_URL")
        database_url = os.environ.get("LEDGER_DATABASE_URL")
        if not nats_url:
            self.nats = EmbeddedNats(self.data_dir / "nats").start()
            nats_url = self.nats.url
        if not database_url:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.postgres = EmbeddedPostgres(self.data_dir / "postgres").start()
            database_url = self.postgres.url
        self.runtime = {
            "nats_url": nats_url,
            "database_url": database_url,
            "api_url": None,
            "credentials": {},
            "api_tokens": {},
        }
        self.settings = Settings(
            nats_url=nats_url,
            database_url=database_url,
            data_dir=self.data_dir,
        )
        if with_services:
            await self._start_services(api_port)
        write_runtime(self.data_dir, self.runtime)
        log.info("system_up", nats_url=nats_url, database_url=database_url)
        return self

    async def _start_services(self, api_port: int | None) -> None:
        from services.writer.app import create_app as create_writer

        writer = await create_writer(self.settings)
        await writer.start()
        self.services["writer"] = writer
        self.stoppers.append(writer.stop)

    async def stop(self) -> None:
        while self.stoppers:
            stopper = self.stoppers.pop()
            with contextlib.suppress(Exception):
                await stopper()
        if self.postgres is not None:
            self.postgres.stop()
        if self.nats is not None:
            self.nats.stop()
        log.info("system_down")
