"""Reading the ledger back: the bulk ordered read agrees with the pull read, message for
message, for the whole stream, one patient, a seq range and an empty subject."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from nats.errors import TimeoutError as NatsTimeoutError

from events.subjects import ledger_subject
from services.client.site import SiteClient
from services.config.settings import Settings
from services.ledger.connection import connect
from services.ledger.io import ensure_streams, read_ordered, read_stream
from services.writer.app import create_app
from tests.integration.helpers import event, parameters, unique_trial

pytestmark = pytest.mark.integration


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Any]:
    app = await create_app(Settings(nats_url=nats_url))
    await app.start()
    conn = await connect(nats_url)
    await ensure_streams(conn.jetstream())
    yield conn
    await conn.close()
    await app.stop()


async def _ordered(js: Any, *args: Any, **kwargs: Any) -> list[tuple[int, str, bytes]]:
    return [
        (m.seq, m.subject, m.body)
        async for batch in read_ordered(js, *args, **kwargs)
        for m in batch
    ]


async def _pulled(js: Any, *args: Any, **kwargs: Any) -> list[tuple[int, str, bytes]]:
    return [(m.seq, m.subject, m.body) async for m in read_stream(js, *args, **kwargs)]


async def test_the_ordered_read_yields_what_the_pull_read_yields(nc: Any) -> None:
    trial = unique_trial()
    assert (await SiteClient(nc, trial, "_sponsor").submit(parameters(trial)))[
        "status"
    ] == "accepted"
    site = SiteClient(nc, trial, "site01")
    for n in range(30):
        patient = f"P{n:04d}"
        batch = [event("enrolled", trial, patient_id=patient)] + [
            event(
                "infusion_given",
                trial,
                patient_id=patient,
                occurred_on="2025-02-05",
                data={"cycle": c + 1, "agent": "haic"},
            )
            for c in range(n % 4)
        ]
        assert all(r["status"] == "accepted" for r in await site.submit_batch(batch))
    js = nc.jetstream()

    whole = await _ordered(js)
    assert whole == await _pulled(js)
    assert [seq for seq, _, _ in whole] == sorted(
        {seq for seq, _, _ in whole}
    )  # in order, no repeats

    mine = f"ledger.{trial}.>"
    of_trial = await _ordered(js, mine)
    assert of_trial == await _pulled(js, mine)
    assert len(of_trial) == 1 + sum(1 + n % 4 for n in range(30))

    one = f"ledger.{trial}.site01.P0007.>"
    assert await _ordered(js, one) == await _pulled(js, one) != []

    first, last = of_trial[3][0], of_trial[20][0]
    window = await _ordered(js, mine, start_seq=first, stop_seq=last)
    assert window == [m for m in of_trial if first <= m[0] <= last]

    assert await _ordered(js, f"ledger.{unique_trial()}.>") == []
    # a short read is delivered before the consumer is even asked how much is left
    assert await _ordered(js, one, start_seq=of_trial[-1][0]) == await _pulled(
        js, one, start_seq=of_trial[-1][0]
    )


async def _through_a_consumer(js: Any, filter_subject: str) -> list[tuple[int, str, bytes, Any]]:
    """The same read the way it was done before direct gets: an ephemeral pull consumer."""
    sub = await js.pull_subscribe(filter_subject, stream="LEDGER")
    got: list[tuple[int, str, bytes, Any]] = []
    try:
        while True:
            try:
                msgs = await sub.fetch(500, timeout=1)
            except NatsTimeoutError:
                return got
            got += [
                (m.metadata.sequence.stream, m.subject, m.data, dict(m.headers or {}) or None)
                for m in msgs
            ]
            if msgs[-1].metadata.num_pending == 0:
                return got
    finally:
        await sub.unsubscribe()


async def test_the_direct_read_yields_what_a_consumer_yields_headers_and_all(nc: Any) -> None:
    """Issue 14 item 13: readers read without consumers; nothing read changes with it."""
    trial = unique_trial()
    assert (await SiteClient(nc, trial, "_sponsor").submit(parameters(trial)))[
        "status"
    ] == "accepted"
    site = SiteClient(nc, trial, "site01")
    batch = [event("enrolled", trial, patient_id=f"P{n:04d}") for n in range(40)]
    assert all(r["status"] == "accepted" for r in await site.submit_batch(batch))
    js = nc.jetstream()
    mine = f"ledger.{trial}.>"
    direct = [(m.seq, m.subject, m.body, m.headers) async for m in read_stream(js, mine, batch=7)]
    assert direct == await _through_a_consumer(js, mine)
    assert len(direct) == 41 and all(h and "Nats-Msg-Id" in h for *_, h in direct)


async def test_a_writer_sees_another_writers_appends_without_a_consumer(
    nats_url: str, nc: Any
) -> None:
    """The writer's tail (services/writer/ledger_tail.py) indexes what another writer appended:
    here appends made straight to the stream, as another writer makes them."""
    app = await create_app(Settings(nats_url=nats_url))
    await app.start()
    try:
        js = nc.jetstream()
        trial = unique_trial()
        ids = [str(uuid.uuid4()) for _ in range(6)]
        seqs = []
        for n, event_id in enumerate(ids):
            subject = ledger_subject(trial, "site01", f"P{n:04d}", "enrolled")
            ack = await js.publish(subject, b"{}", headers={"Nats-Msg-Id": event_id})
            seqs.append(ack.seq)
        deadline = asyncio.get_running_loop().time() + 30
        while [app.writer.index.get(i) for i in ids] != seqs:
            assert asyncio.get_running_loop().time() < deadline, "appends never observed"
            await asyncio.sleep(0.05)
        assert app.tail.reads > 0
    finally:
        await app.stop()
