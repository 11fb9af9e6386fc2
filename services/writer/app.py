"""Composition root of the writer: FastStream answers the intake, nats-py appends."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import structlog
from faststream.nats import NatsBroker, NatsMessage
from nats.aio.client import Client

from events.subjects import intake_wildcard
from projections.safety.ctcae import check_ae
from services.config.settings import Settings
from services.ledger.connection import broker_options, connect, server_urls
from services.ledger.high_water import HighWaterRecorder
from services.ledger.io import ensure_streams
from services.security.seals import (
    SEAL_EVERY_EVENTS,
    SEAL_EVERY_SECONDS,
    ensure_writer_key,
    fingerprint,
    load_private_key,
    public_key_b64,
)
from services.writer.intake import Writer
from services.writer.ledger_tail import LedgerTail
from services.writer.sealer import Sealer

log = structlog.get_logger("writer")

INTAKE_SUBJECT = intake_wildcard()
QUEUE_GROUP = "writers"


@dataclass
class WriterApp:
    broker: NatsBroker
    writer: Writer
    nc: Client
    tail: Any = None
    sealer: Sealer | None = None
    high_water: HighWaterRecorder | None = None

    async def start(self) -> None:
        if self.high_water is not None:  # refuses a ledger shorter than what was acknowledged
            try:
                await self.high_water.start(self.nc.jetstream())
            except Exception:
                with contextlib.suppress(Exception):
                    await self.nc.close()
                raise
        await self.writer.load()
        await self._follow_other_writers()
        await self.broker.start()
        if self.sealer is not None:
            await self.sealer.start()
        log.info("writer_started", indexed=len(self.writer.index), sealing=self.sealer is not None)

    async def _follow_other_writers(self) -> None:
        # from just after what `load` indexed: an append in between is never missed
        self.tail = LedgerTail(self.nc, self.writer.observe, self.writer.loaded_upto)
        await self.tail.start()

    async def stop(self) -> None:
        await self.broker.stop()
        if self.sealer is not None:
            await self.sealer.stop()
        if self.high_water is not None:
            await self.high_water.stop()
        if self.tail is not None:
            with contextlib.suppress(Exception):
                await self.tail.unsubscribe()
        with contextlib.suppress(Exception):
            await self.nc.drain()


async def create_app(
    settings: Settings,
    *,
    create_streams: bool = True,
    max_workers: int = 64,
    seal_every_events: int = SEAL_EVERY_EVENTS,
    seal_every_seconds: float = SEAL_EVERY_SECONDS,
) -> WriterApp:
    """Nothing connects at import time; everything is built here from `settings`.

    Every event is signed and seals are appended: with the key `settings` names, else with
    the data dir's key (made at first start; issue 14, item 16). The highest acknowledged seq
    is recorded in the data dir (services.ledger.high_water).
    """
    settings.require("writer")
    assert settings.nats_url  # for the type checker: require() checked it
    creds = settings.creds_for("writer")
    nc = await connect(settings.nats_url, creds, name="writer")
    js = nc.jetstream()
    if create_streams:
        await ensure_streams(js)
    writer = Writer(js, check_ae=check_ae)
    broker = NatsBroker(
        server_urls(settings.nats_url),
        logger=None,
        name="writer-intake",
        # Ride through a NATS node's restart: reconnect to any node, for as long as it takes.
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        **broker_options(creds),
    )

    async def undecoded(msg: NatsMessage) -> bytes:
        # FastStream would json-parse the body first, unbounded, and drop the message without
        # a reply on an error it does not expect (RecursionError, a 5,000-digit number):
        # the writer reads the bytes itself, within limits (intake_json.py).
        return msg.body

    @broker.subscriber(
        INTAKE_SUBJECT, queue=QUEUE_GROUP, max_workers=max_workers, decoder=undecoded
    )
    async def intake(msg: NatsMessage) -> dict[str, Any]:
        return await writer.handle(msg.raw_message.subject, msg.body)

    key = load_private_key(settings.writer_key or str(ensure_writer_key(settings.data_dir)))
    log.info("writer_seal_key", fingerprint=fingerprint(public_key_b64(key)))
    sealer = Sealer(writer, key, every_events=seal_every_events, every_seconds=seal_every_seconds)
    high_water = HighWaterRecorder(settings.data_dir)
    writer.on_append.append(high_water.appended)
    return WriterApp(broker, writer, nc, sealer=sealer, high_water=high_water)
