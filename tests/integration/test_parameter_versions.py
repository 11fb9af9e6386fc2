"""Two writer replicas, as compose and k8s run them, agree on protocol-parameter versions: the
ledger holds 1..n in order, never a version twice, never a gap (issue 14, item 8)."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import pytest

from services.client.site import SiteClient
from services.config.settings import Settings
from services.ledger.connection import connect
from services.writer.app import WriterApp, create_app
from tests.integration.helpers import ledger_of, parameters, unique_trial

pytestmark = pytest.mark.integration
LAST_VERSION = 12


async def _writers(url: str, count: int) -> list[WriterApp]:
    apps = [await create_app(Settings(nats_url=url)) for _ in range(count)]
    for app in apps:
        await app.start()
    return apps


async def test_two_writers_record_parameter_versions_one_after_another_without_gaps(
    nats_url: str,
) -> None:
    writers = await _writers(nats_url, 2)
    conns = [await connect(nats_url) for _ in range(4)]
    trial = unique_trial()
    try:
        first = await SiteClient(conns[0], trial, "_sponsor").submit(parameters(trial))
        assert first["status"] == "accepted", first
        for writer in writers:  # both replicas know version 1 before the race starts
            await writer.writer._refresh_trial(trial)

        async def sponsor(conn: Any, offset: int) -> None:
            """A sponsor's tool racing the others: proposes each version once, in turn."""
            client = SiteClient(conn, trial, "_sponsor")
            for version in range(2 + offset % 2, LAST_VERSION + 1):
                await client.submit(copy.deepcopy(parameters(trial, version=version)))

        # bounded rounds: every proposer submits every version; the ledger must still read 1..n
        for _round in range(3):
            await asyncio.gather(*(sponsor(conn, n) for n, conn in enumerate(conns)))
    finally:
        for writer in writers:
            await writer.stop()
        js = conns[0].jetstream()
        entries = await ledger_of(js, trial)
        for conn in conns:
            await conn.close()
    versions = [
        stored["data"]["version"]
        for _, stored in entries
        if stored["type"] == "protocol_parameters_set"
    ]
    assert versions == list(range(1, LAST_VERSION + 1))


async def test_a_stale_replica_refuses_a_version_already_recorded_by_the_other(
    nats_url: str,
) -> None:
    writers = await _writers(nats_url, 2)
    conn = await connect(nats_url)
    trial = unique_trial()
    try:
        sponsor = SiteClient(conn, trial, "_sponsor")
        assert (await sponsor.submit(parameters(trial)))["status"] == "accepted"
        for writer in writers:
            await writer.writer._refresh_trial(trial)
        fast, stale = writers
        # version 2 through one replica, then another version 2 straight into the other
        v2 = parameters(trial, version=2)
        assert (await fast.writer.handle(f"intake.{trial}._sponsor", _bytes(v2)))["status"] == (
            "accepted"
        )
        rival = await stale.writer.handle(
            f"intake.{trial}._sponsor", _bytes(parameters(trial, version=2))
        )
        skipped = await stale.writer.handle(
            f"intake.{trial}._sponsor", _bytes(parameters(trial, version=4))
        )
    finally:
        for writer in writers:
            await writer.stop()
    assert rival["status"] == "rejected"
    assert [e["field"] for e in rival["errors"]] == ["data.version"]
    assert skipped["status"] == "rejected"
    assert "3" in skipped["errors"][0]["message"]
    versions = [
        s["data"]["version"]
        for _, s in await ledger_of(conn.jetstream(), trial)
        if s["type"] == "protocol_parameters_set"
    ]
    await conn.close()
    assert versions == [1, 2]


def _bytes(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()
