"""One event_id, one event, for ever: identical resubmissions are duplicates, anything else
under a used id is refused, whoever holds it and however it is spelt (issue 14, items 1-3)."""

from __future__ import annotations

import asyncio
import copy
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from services.client.site import SiteClient
from services.config.settings import Settings
from services.ledger.connection import connect
from services.ledger.io import ledger_config
from services.writer.app import WriterApp, create_app
from tests.integration.helpers import event, ledger_of, parameters, unique_trial

pytestmark = pytest.mark.integration

IN_USE = "already used for other content"


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Any]:
    conn = await connect(nats_url)
    yield conn
    await conn.close()


async def _start(url: str) -> WriterApp:
    app = await create_app(Settings(nats_url=url))
    await app.start()
    return app


async def _trial(nc: Any, patients: tuple[str, ...] = ("P0001",)) -> tuple[str, SiteClient]:
    trial = unique_trial()
    reply = await SiteClient(nc, trial, "_sponsor").submit(parameters(trial))
    assert reply["status"] == "accepted", reply
    site = SiteClient(nc, trial, "site01")
    for patient in patients:
        assert (await site.submit(event("enrolled", trial, patient_id=patient)))["status"] == (
            "accepted"
        )
    return trial, site


def _in_use(reply: dict[str, Any]) -> bool:
    return (
        reply["status"] == "rejected"
        and "seq" not in reply
        and [e["field"] for e in reply["errors"]] == ["event_id"]
        and IN_USE in reply["errors"][0]["message"]
    )


async def test_same_event_id_with_other_content_is_rejected_and_the_original_stands(
    nats_url: str, nc: Any
) -> None:
    writer = await _start(nats_url)
    try:
        trial, site = await _trial(nc, ("P0001", "P0002"))
        infusion = event("infusion_given", trial, data={"cycle": 2})
        original = await site.submit(copy.deepcopy(infusion))
        other_cycle = {**infusion, "data": {**infusion["data"], "cycle": 3}}
        other_patient = {**infusion, "patient_id": "P0002"}
        other_type = event("follow_up_contact", trial, event_id=infusion["event_id"])
        replies = [
            await site.submit(copy.deepcopy(e)) for e in (other_cycle, other_patient, other_type)
        ]
        again = await site.submit(copy.deepcopy(infusion))
    finally:
        await writer.stop()
    assert original["status"] == "accepted"
    assert all(_in_use(reply) for reply in replies), replies
    assert again == {
        "event_id": infusion["event_id"],
        "status": "duplicate",
        "seq": original["seq"],
    }
    stored = [
        s
        for _, s in await ledger_of(nc.jetstream(), trial)
        if s["event_id"] == infusion["event_id"]
    ]
    assert len(stored) == 1 and stored[0]["data"]["cycle"] == 2


async def test_an_identical_resubmission_is_a_duplicate_however_its_json_is_spelt(
    nats_url: str, nc: Any
) -> None:
    writer = await _start(nats_url)
    try:
        trial, site = await _trial(nc)
        infusion = event("infusion_given", trial)
        original = await site.submit(copy.deepcopy(infusion))
        respelt = {key: infusion[key] for key in reversed(list(infusion))}
        respelt["event_id"] = infusion["event_id"].upper()
        respelt["schema_version"] = 1  # the default, now spelt out
        again = await site.submit(respelt)
    finally:
        await writer.stop()
    assert again == {
        "event_id": infusion["event_id"],
        "status": "duplicate",
        "seq": original["seq"],
    }


async def test_an_upper_case_spelling_of_a_used_id_is_that_id_for_any_patient(
    nats_url: str, own_nats: Any
) -> None:
    """Beyond JetStream's duplicate window, only the writer's own knowledge stops a second entry."""
    nc = await connect(own_nats.url)
    config = ledger_config()
    config.duplicate_window = 0.5
    await nc.jetstream().add_stream(config)
    writer = await _start(own_nats.url)
    try:
        trial, site = await _trial(nc, ("P0001", "P0002"))
        infusion = event("infusion_given", trial)
        original = await site.submit(copy.deepcopy(infusion))
        await asyncio.sleep(1.0)  # let JetStream's own window pass
        shouted = {**infusion, "event_id": infusion["event_id"].upper()}
        same = await site.submit(copy.deepcopy(shouted))
        elsewhere = await site.submit({**shouted, "patient_id": "P0002"})
    finally:
        await writer.stop()
    assert same == {"event_id": infusion["event_id"], "status": "duplicate", "seq": original["seq"]}
    assert _in_use(elsewhere), elsewhere
    ids = Counter(s["event_id"] for _, s in await ledger_of(nc.jetstream(), trial))
    assert ids[infusion["event_id"]] == 1 and all(i == i.lower() for i in ids)
    await nc.close()


async def test_the_verdict_holds_after_a_restart_beyond_every_cache_and_on_another_replica(
    nats_url: str, own_nats: Any
) -> None:
    nc = await connect(own_nats.url)
    config = ledger_config()
    config.duplicate_window = 0.5
    await nc.jetstream().add_stream(config)
    first = await _start(own_nats.url)
    trial, site = await _trial(nc, ("P0001", "P0002"))
    infusion = event("infusion_given", trial)
    original = await site.submit(copy.deepcopy(infusion))
    await first.stop()
    await asyncio.sleep(1.0)  # beyond JetStream's window too
    replicas = [await _start(own_nats.url), await _start(own_nats.url)]
    try:
        for replica in replicas:
            replica.writer.patients.clear()  # nothing cached: only the ledger can answer
            replica.writer.cache_patients = 1
        other = {**infusion, "patient_id": "P0002", "data": {**infusion["data"], "cycle": 5}}
        # several resubmissions, spread over both replicas by the queue group
        replies = await asyncio.gather(
            *(site.submit(copy.deepcopy(infusion)) for _ in range(6)),
            *(site.submit(copy.deepcopy(other)) for _ in range(6)),
        )
    finally:
        for replica in replicas:
            await replica.stop()
    expected = {"event_id": infusion["event_id"], "status": "duplicate", "seq": original["seq"]}
    assert replies[:6] == [expected] * 6
    assert all(_in_use(reply) for reply in replies[6:]), replies[6:]
    assert sum(replica.writer.counters.duplicate for replica in replicas) >= 1
    ids = Counter(s["event_id"] for _, s in await ledger_of(nc.jetstream(), trial))
    assert ids[infusion["event_id"]] == 1
    await nc.close()


async def test_another_sites_event_id_tells_a_site_nothing_about_that_event(
    nats_url: str, nc: Any
) -> None:
    writer = await _start(nats_url)
    try:
        trial, site01 = await _trial(nc)
        site02 = SiteClient(nc, trial, "site02")
        assert (await site02.submit(event("enrolled", trial, "site02", "P0009")))[
            "status"
        ] == "accepted"
        theirs = event("infusion_given", trial, "site02", "P0009")
        assert (await site02.submit(copy.deepcopy(theirs)))["status"] == "accepted"
        unused = event("infusion_given", trial, "site01", "P0001")
        # site01 reuses site02's id: verbatim, moved to its own site, and with other content;
        # and an id nobody used, for comparison
        verbatim = await site01.submit(copy.deepcopy(theirs))
        as_own = await site01.submit({**theirs, "site_id": "site01", "patient_id": "P0001"})
        as_own_other = await site01.submit(
            {**unused, "event_id": theirs["event_id"], "data": {**unused["data"], "cycle": 7}}
        )
        own_reuse = event("infusion_given", trial, data={"cycle": 8})
        assert (await site01.submit(copy.deepcopy(own_reuse)))["status"] == "accepted"
        own_other = await site01.submit({**own_reuse, "data": {**own_reuse["data"], "cycle": 9}})
    finally:
        await writer.stop()
    assert verbatim["status"] == "rejected" and "seq" not in verbatim
    assert [e["field"] for e in verbatim["errors"]] == ["site_id"]  # judged as any foreign event
    for reply in (as_own, as_own_other):
        assert reply["status"] == "rejected" and "seq" not in reply and "hash" not in reply
    # the same words whether the id is another site's or one's own: nothing to tell them apart
    assert as_own["errors"] == as_own_other["errors"] == own_other["errors"]
    entries = await ledger_of(nc.jetstream(), trial)
    assert Counter(s["event_id"] for _, s in entries)[theirs["event_id"]] == 1


async def test_an_append_whose_acknowledgement_was_lost_is_never_stored_again(
    own_nats: Any,
) -> None:
    """The append lands but its ack never arrives (a timeout): the writer reads the patient's
    tail and answers "accepted" with the seq it found; every retry — same patient or another,
    after JetStream's window — finds the stored one."""
    nc = await connect(own_nats.url)
    config = ledger_config()
    config.duplicate_window = 0.5
    await nc.jetstream().add_stream(config)
    writer = await _start(own_nats.url)
    try:
        trial, site = await _trial(nc, ("P0001", "P0002"))
        real_publish = writer.writer.js.publish
        lost: list[int] = []

        async def publish_then_lose_the_ack(*args: Any, **kwargs: Any) -> Any:
            ack = await real_publish(*args, **kwargs)
            if not lost:
                lost.append(ack.seq)
                raise TimeoutError  # stored, but the writer never hears so
            return ack

        writer.writer.js.publish = publish_then_lose_the_ack  # type: ignore[method-assign]
        infusion = event("infusion_given", trial)
        first = await site.submit(copy.deepcopy(infusion))
        await asyncio.sleep(1.0)  # beyond JetStream's window
        retry = await site.submit(copy.deepcopy(infusion))
        elsewhere = await site.submit({**infusion, "patient_id": "P0002"})
    finally:
        await writer.stop()
    assert first["status"] == "accepted" and first["seq"] == lost[0]  # found, not guessed
    assert retry == {"event_id": infusion["event_id"], "status": "duplicate", "seq": lost[0]}
    assert _in_use(elsewhere), elsewhere
    ids = Counter(s["event_id"] for _, s in await ledger_of(nc.jetstream(), trial))
    assert ids[infusion["event_id"]] == 1
    await nc.close()
