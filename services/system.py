"""The whole system in one process: embedded servers (unless URLs are given) + every service.

Used by `trial-ledger up`, `trial-ledger demo` and the end-to-end tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from services.runtime import EmbeddedNats, EmbeddedPostgres, free_port
from services.settings import Settings, write_runtime

log = structlog.get_logger("system")

Stopper = Callable[[], Awaitable[None]]
DEFAULT_SITES = tuple(f"site{n:02d}" for n in range(1, 7))
API_ROLES = ("admin", "api", "auditor", "safety", "statistician")


def api_tokens(data_dir: Path, sites: tuple[str, ...]) -> dict[str, str]:
    """One bearer token per role, kept under the data dir so a restart keeps them."""
    from services.api.auth import new_token

    path = data_dir / "api_tokens.json"
    tokens: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    for role in (*API_ROLES, *(f"site:{site}" for site in sites)):
        tokens.setdefault(role, new_token())
    path.write_text(json.dumps(tokens, indent=2, sort_keys=True))
    path.chmod(0o600)
    return tokens


@dataclass
class System:
    data_dir: Path
    nats: EmbeddedNats | None = None
    postgres: EmbeddedPostgres | None = None
    settings: Settings = field(default_factory=Settings)
    runtime: dict[str, Any] = field(default_factory=dict)
    stoppers: list[Stopper] = field(default_factory=list)
    services: dict[str, Any] = field(default_factory=dict)
    sites: tuple[str, ...] = DEFAULT_SITES

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
            "api_tokens": api_tokens(self.data_dir, self.sites),
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
        from services.projector.app import create_app as create_projector
        from services.writer.app import create_app as create_writer

        writer = await create_writer(self.settings)
        await writer.start()
        self.services["writer"] = writer
        self.stoppers.append(writer.stop)
        projector = await create_projector(self.settings)
        await projector.start()
        self.services["projector"] = projector
        self.stoppers.append(projector.stop)
        try:
            from services.alerter.app import create_app as create_alerter
        except ImportError:
            create_alerter = None
        if create_alerter is not None:
            alerter = await create_alerter(self.settings)
            await alerter.start()
            self.services["alerter"] = alerter
            self.stoppers.append(alerter.stop)
        await self._start_api(api_port)

    async def _start_api(self, api_port: int | None) -> None:
        import asyncio

        import uvicorn

        from services.api.app import create_app as create_api

        port = api_port or free_port()
        api = create_api(self.settings, tokens=self.runtime["api_tokens"])
        server = uvicorn.Server(uvicorn.Config(api, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        self.runtime["api_url"] = f"http://127.0.0.1:{port}"
        self.services["api"] = server

        async def stop_api() -> None:
            server.should_exit = True
            await task

        self.stoppers.append(stop_api)

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
