"""Reading the ledger back: the bulk ordered read agrees with the pull read, message for
message, for the whole stream, one patient, a seq range and an empty subject."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

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
