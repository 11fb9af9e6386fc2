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

from services.config.settings import Settings, creds_variable, redacted_url, write_runtime
from services.ledger.connection import credential_inbox_prefix
from services.runtime.cluster import EmbeddedCluster, stream_replicas
from services.runtime.embedded import EmbeddedNats, EmbeddedPostgres, free_port, private_dir
from services.security.nats_auth import (
    all_roles,
    embedded_authorization,
    ensure_identities,
    write_private,
)
from services.security.seals import (
    ensure_writer_key,
    fingerprint,
    load_private_key,
    public_key_b64,
    write_public_pem,
)

log = structlog.get_logger("system")

Stopper = Callable[[], Awaitable[None]]
# What `up` starts, in this order: the API last, once the services it reads from run.
SERVICES = ("writer", "projector", "alerter", "api")
DEFAULT_SITES = tuple(f"site{n:02d}" for n in range(1, 7))


def configured_sites() -> tuple[str, ...]:
    """Sites that get an identity: LEDGER_SITES (comma-separated), else site01..site06."""
    named = [s.strip() for s in os.environ.get("LEDGER_SITES", "").split(",") if s.strip()]
    return tuple(named) or DEFAULT_SITES


API_ROLES = ("admin", "api", "auditor", "safety", "statistician")


def api_tokens(data_dir: Path, sites: tuple[str, ...]) -> dict[str, str]:
    """One bearer token per role, kept under the data dir so a restart keeps them."""
    from services.api.auth import new_token

    path = data_dir / "api_tokens.json"
    tokens: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    for role in (*API_ROLES, *(f"site:{site}" for site in sites)):
        tokens.setdefault(role, new_token())
    write_private(path, json.dumps(tokens, indent=2, sort_keys=True).encode())
    return tokens


def public_runtime(runtime: dict[str, Any]) -> dict[str, Any]:
    """What `up` may print: the servers' addresses, never a token, password or key."""
    return {
        "nats_url": runtime.get("nats_url"),
        "database_url": redacted_url(runtime.get("database_url")),
        "api_url": runtime.get("api_url"),
        "writer_public_key": runtime.get("writer_public_key"),
        "seal_public_key": runtime.get("seal_public_key"),
        "seal_public_key_fingerprint": runtime.get("seal_public_key_fingerprint"),
        "roles": sorted(runtime.get("credentials") or {}),
    }


def external_credentials(sites: tuple[str, ...]) -> dict[str, str | None]:
    """With an external NATS, each role's credential file comes from LEDGER_CREDS_<ROLE>."""
    found: dict[str, str | None] = {}
    for role in all_roles(sites):
        found[role] = os.environ.get(creds_variable(role)) or None
    return found


async def create_streams(settings: Settings, replicas: int = 1) -> None:
    """Streams are made by admin, before any service: the services may only look them up.
    A cluster elects its JetStream leader first, so this waits for it (bounded)."""
    from services.ledger.connection import connect
    from services.runtime.cluster import create_streams_when_ready

    assert settings.nats_url
    nc = await connect(settings.nats_url, settings.creds_for("admin"), name="system-admin")
    try:
        await create_streams_when_ready(nc.jetstream(), replicas)
    finally:
        await nc.close()


def service_factories() -> dict[str, Callable[[Settings], Awaitable[Any]]]:
    """Each background service's `create_app`, imported by name: a service that fails to
    import stops the start (never a system that runs without its alerter)."""
    from services.alerter.app import create_app as create_alerter
    from services.projector.app import create_app as create_projector
    from services.writer.app import create_app as create_writer

    return {"writer": create_writer, "projector": create_projector, "alerter": create_alerter}


@dataclass
class System:
    data_dir: Path
    nats: EmbeddedNats | None = None
    postgres: EmbeddedPostgres | None = None
    settings: Settings = field(default_factory=Settings)
    runtime: dict[str, Any] = field(default_factory=dict)
    stoppers: list[Stopper] = field(default_factory=list)
    services: dict[str, Any] = field(default_factory=dict)
    sites: tuple[str, ...] = field(default_factory=configured_sites)
    auth: bool = True
    # Embedded nats-servers: 1 = one server (R1 streams); 3 = a routed cluster (R3 streams).
    cluster: int = 1
    nats_cluster: EmbeddedCluster | None = None

    async def start(self, *, with_services: bool = True, api_port: int | None = None) -> System:
        """Start the servers and services; on any failure stop all that already started
        (a failed start leaves no nats-server or PostgreSQL behind), then raise."""
        try:
            return await self._start(with_services=with_services, api_port=api_port)
        except BaseException:
            await self.stop()
            raise

    async def _start(self, *, with_services: bool, api_port: int | None) -> System:
        private_dir(self.data_dir)  # runtime.json, API tokens, credentials, keys
        nats_url = os.environ.get("LEDGER_NATS_URL")
        database_url = os.environ.get("LEDGER_DATABASE_URL")
        credentials: dict[str, str | None] = {}
        if not nats_url:
            auth_config = ""
            if self.auth:
                paths = ensure_identities(self.data_dir, self.sites)
                auth_config = embedded_authorization(paths)
                credentials = {role: str(path) for role, path in paths.items()}
            if self.cluster > 1:
                # Held before it starts: a node that fails leaves the others to stop().
                self.nats_cluster = EmbeddedCluster(
                    self.data_dir / "nats-cluster", size=self.cluster, auth_config=auth_config
                )
                self.nats_cluster.start()
                nats_url = self.nats_cluster.url
            else:
                self.nats = EmbeddedNats(self.data_dir / "nats", auth_config=auth_config)
                self.nats.start()
                nats_url = self.nats.url
        else:
            credentials = external_credentials(self.sites)
        writer_key = os.environ.get("LEDGER_WRITER_KEY") or str(ensure_writer_key(self.data_dir))
        public_key = public_key_b64(load_private_key(writer_key))
        seal_pem = write_public_pem(self.data_dir, load_private_key(writer_key))
        if not database_url:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.postgres = EmbeddedPostgres(self.data_dir / "postgres")
                self.postgres.start()
            database_url = self.postgres.url
            private_dir(self.data_dir)  # the wheel opened it to reach pgdata as its own user
        self.runtime = {
            "nats_url": nats_url,
            "database_url": database_url,
            "api_url": None,
            "credentials": credentials,
            # A client other than ours passes this with the seed (`nats --inbox-prefix`):
            # each identity may hear replies only under its own prefix.
            "inbox_prefixes": {
                role: credential_inbox_prefix(path) for role, path in credentials.items() if path
            },
            "api_tokens": api_tokens(self.data_dir, self.sites),
            # A key given by LEDGER_WRITER_KEY stays in the environment, never in a file.
            "writer_key": None if os.environ.get("LEDGER_WRITER_KEY") else writer_key,
            "writer_public_key": public_key,
            # for auditors to pin: `trial-ledger verify --public-key <seal_public_key>`
            "seal_public_key": str(seal_pem),
            "seal_public_key_fingerprint": fingerprint(public_key),
        }
        self.settings = Settings(
            nats_url=nats_url,
            database_url=database_url,
            data_dir=self.data_dir,
            credentials=credentials,
            api_tokens=self.runtime["api_tokens"],
            writer_key=writer_key,
            writer_public_key=public_key,
        )
        if self.nats is not None or self.nats_cluster is not None or credentials.get("admin"):
            # Every node of a cluster is in the URL list: one stream copy per node, up to R3.
            await create_streams(self.settings, stream_replicas(len(nats_url.split(","))))
        if with_services:
            await self._start_services(api_port)  # e.g. refuses a ledger that went backwards
        write_runtime(self.data_dir, self.runtime)
        log.info("system_up", nats_url=nats_url, database_url=redacted_url(database_url))
        return self

    async def _start_services(self, api_port: int | None) -> None:
        factories = service_factories()
        for name in SERVICES:
            if name == "api":
                await self._start_api(api_port)
                continue
            service = await factories[name](self.settings)
            await service.start()
            self.services[name] = service
            self.stoppers.append(service.stop)

    async def _start_api(self, api_port: int | None) -> None:
        import asyncio

        import uvicorn

        from services.api.app import create_app as create_api

        port = api_port or free_port()
        api = create_api(self.settings, tokens=self.runtime["api_tokens"])
        server = uvicorn.Server(
            uvicorn.Config(api, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        )
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
        for server in (self.postgres, self.nats, self.nats_cluster):
            if server is not None:
                with contextlib.suppress(Exception):  # stop the others whatever one does
                    server.stop()
        log.info("system_down")
