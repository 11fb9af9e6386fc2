"""JetStream plumbing shared by every service: the two streams and reading the ledger back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import NotFoundError, ServiceUnavailableError

from events.subjects import ALERTS_STREAM, ALERTS_SUBJECTS, LEDGER_STREAM, LEDGER_SUBJECTS

# StoredMessage is defined beside the direct reader and read from here too
from services.ledger.direct import StoredMessage as StoredMessage
from services.ledger.direct import read_direct

LEDGER_DUPLICATE_WINDOW_S = 120.0
ALERTS_DUPLICATE_WINDOW_S = 7 * 24 * 3600.0
MAX_UNAVAILABLE_FETCHES = 100  # × 0.2 s: a cluster elects a consumer leader well within this
STALLS_BEFORE_RESTART = 3  # × 5 s fetch timeouts with messages still pending
MAX_CONSUMER_RESTARTS = 5


def ledger_config(replicas: int = 1) -> js_api.StreamConfig:
    """LEDGER: the only source of truth. Nothing may ever leave it (DESIGN.md, "Flow")."""
    return js_api.StreamConfig(
        name=LEDGER_STREAM,
        description="trial-ledger: immutable clinical events",
        subjects=[LEDGER_SUBJECTS],
        retention=js_api.RetentionPolicy.LIMITS,
        storage=js_api.StorageType.FILE,
        discard=js_api.DiscardPolicy.NEW,
        max_msgs=-1,
        max_bytes=-1,
        max_age=0,
        max_msgs_per_subject=-1,
        max_msg_size=1024 * 1024,
        duplicate_window=LEDGER_DUPLICATE_WINDOW_S,
        deny_delete=True,
        deny_purge=True,
        allow_rollup_hdrs=False,
        allow_direct=True,
        allow_atomic=True,
        num_replicas=replicas,
    )


def alerts_config(replicas: int = 1) -> js_api.StreamConfig:
    return js_api.StreamConfig(
        name=ALERTS_STREAM,
        description="trial-ledger: serious adverse event alerts",
        subjects=[ALERTS_SUBJECTS],
        retention=js_api.RetentionPolicy.LIMITS,
        storage=js_api.StorageType.FILE,
        discard=js_api.DiscardPolicy.NEW,
        max_msgs=-1,
        max_bytes=-1,
        max_age=0,
        duplicate_window=ALERTS_DUPLICATE_WINDOW_S,
        deny_delete=True,
        deny_purge=True,
        allow_rollup_hdrs=False,
        allow_direct=True,  # read without consumers (services/ledger/direct.py)
        num_replicas=replicas,
    )


async def ensure_streams(js: JetStreamContext, replicas: int = 1) -> None:
    """Create LEDGER and ALERTS if missing; an existing stream is left as it is."""
    for config in (ledger_config(replicas), alerts_config(replicas)):
        assert config.name is not None
        try:
            await js.stream_info(config.name)
        except NotFoundError:
            await js.add_stream(config)


def ack_position(reply: str) -> tuple[int, int]:
    """(stream seq, messages pending) from a JetStream message's ack subject
    `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ts>.<pending>`
    (the newer form inserts a domain and an account hash after `$JS.ACK`), read without
    building nats-py's whole metadata object. JetStream's subject, not the ledger's contract."""
    parts = reply.split(".")
    short = len(parts) == 9
    return int(parts[5] if short else parts[7]), int(parts[8] if short else parts[10])


async def read_ordered(
    js: JetStreamContext,
    filter_subject: str = LEDGER_SUBJECTS,
    *,
    stream: str = LEDGER_STREAM,
    start_seq: int = 1,
    stop_seq: int | None = None,
    idle_timeout: float = 30.0,
) -> AsyncIterator[list[StoredMessage]]:
    """Every stored message matching `filter_subject` from `start_seq` up to `stop_seq` (or up
    to the last one when it started), in seq order and in batches: the bulk read.

    Batched direct gets (services/ledger/direct.py): no consumer is made, so the reading role
    needs no consumer rights at all (issue 14, item 13). `idle_timeout` bounds the wait for
    each reply from the server.
    """
    async for batch in read_direct(
        js,
        filter_subject,
        stream=stream,
        start_seq=start_seq,
        stop_seq=stop_seq,
        timeout=idle_timeout,
    ):
        yield batch


async def ledger_head(js: JetStreamContext, stream: str = LEDGER_STREAM) -> int:
    info = await js.stream_info(stream)
    return int(info.state.last_seq)


Sleep = Callable[[float], Awaitable[None]]


async def fetch_available(
    sub: Any, batch: int, timeout: float, *, sleep: Sleep = asyncio.sleep
) -> list[Any]:
    """`sub.fetch`, waiting out a cluster's 503: a just-created consumer, or one whose node
    just failed or came back, answers 503 until its leader is placed. Retried a bounded
    number of times, then raised; a timeout is the caller's to handle. `sleep` is the wait
    between tries (a unit test passes one that returns at once)."""
    for _ in range(MAX_UNAVAILABLE_FETCHES):
        try:
            return list(await sub.fetch(batch, timeout=timeout))
        except ServiceUnavailableError:
            await sleep(0.2)
    return list(await sub.fetch(batch, timeout=timeout))


async def read_stream(
    js: JetStreamContext,
    filter_subject: str = LEDGER_SUBJECTS,
    *,
    stream: str = LEDGER_STREAM,
    start_seq: int = 1,
    stop_seq: int | None = None,
    headers_only: bool = False,
    batch: int = 1024,
) -> AsyncIterator[StoredMessage]:
    """Every stored message matching `filter_subject` from `start_seq`, in seq order, up to
    what was in the stream when it started (or `stop_seq`).

    Batched direct gets, no consumer (services/ledger/direct.py). `headers_only` is kept for
    its callers: a direct get always carries the body too, which they ignore.
    """
    del headers_only
    async for messages in read_direct(
        js, filter_subject, stream=stream, start_seq=start_seq, stop_seq=stop_seq, batch=batch
    ):
        for msg in messages:
            yield msg
