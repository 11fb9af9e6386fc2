"""Ledger core on a real nats-server: stream guarantees, intake checks, duplicates, concurrency."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from nats.js import api as js_api
from nats.js.errors import APIError

from services.client.site import SiteClient
from services.config.settings import Settings
from services.ledger.connection import connect
from services.ledger.io import ensure_streams, ledger_config
from services.writer.app import WriterApp, create_app
from tests.integration.helpers import (
    chains_intact,
    event,
    ledger_of,
    parameters,
    submitted_of,
    unique_trial,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def writer(nats_url: str) -> AsyncIterator[WriterApp]:
    app = await create_app(Settings(nats_url=nats_url))
    await app.start()
    yield app
    await app.stop()


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Any]:
    conn = await connect(nats_url)
    yield conn
    await conn.close()


@pytest.fixture
async def trial(writer: WriterApp, nc: Any) -> str:
    trial_id = unique_trial()
    reply = await SiteClient(nc, trial_id, "_sponsor").submit(parameters(trial_id))
    assert reply["status"] == "accepted", reply
    return trial_id


async def enrolled_patient(
    nc: Any, trial: str, patient: str = "P0001", site: str = "site01"
) -> SiteClient:
    client = SiteClient(nc, trial, site)
    reply = await client.submit(event("enrolled", trial, site, patient))
    assert reply["status"] == "accepted", reply
    return client


async def test_ledger_stream_is_immutable_file_storage_without_limits(
    writer: WriterApp, nc: Any
) -> None:
    info = await nc.jetstream().stream_info("LEDGER")
    config = info.config
    assert config.storage == js_api.StorageType.FILE
    assert config.deny_delete and config.deny_purge
    assert not config.allow_rollup_hdrs
    assert config.discard == js_api.DiscardPolicy.NEW
    assert (config.max_msgs, config.max_bytes, config.max_age) == (-1, -1, 0)
    assert config.duplicate_window and config.duplicate_window > 0
    assert config.subjects == ["ledger.>"]


async def test_deleting_or_purging_the_ledger_fails(writer: WriterApp, nc: Any, trial: str) -> None:
    js = nc.jetstream()
    await enrolled_patient(nc, trial)
    seq = (await ledger_of(js, trial))[0][0]
    with pytest.raises(APIError):
        await js.delete_msg("LEDGER", seq)
    with pytest.raises(APIError):
        await js.purge_stream("LEDGER")
    assert next(s for s, _ in await ledger_of(js, trial)) == seq


async def test_stream_creation_is_idempotent(writer: WriterApp, nc: Any) -> None:
    js = nc.jetstream()
    before = (await js.stream_info("LEDGER")).state.messages
    await ensure_streams(js)
    await ensure_streams(js)
    assert (await js.stream_info("LEDGER")).state.messages >= before


async def test_accepted_event_is_stored_with_hash_chain_and_msg_id(
    writer: WriterApp, nc: Any, trial: str
) -> None:
    client = await enrolled_patient(nc, trial)
    infusion = event("infusion_given", trial)
    reply = await client.submit(infusion)
    assert reply["status"] == "accepted" and reply["seq"] > 0
    js = nc.jetstream()
    stored = await js.get_msg("LEDGER", reply["seq"])
    assert stored.subject == f"ledger.{trial}.site01.P0001.infusion_given"
    assert stored.headers["Nats-Msg-Id"] == infusion["event_id"]
    body = json.loads(stored.data)
    assert body["hash"] == reply["hash"] and body["recorded_at"].endswith("Z")
    assert chains_intact(await ledger_of(js, trial)) == []


def _bad_cases(trial: str) -> list[tuple[str, dict[str, Any], str, str]]:
    """(why, event, field, words in the message) for every intake rule."""
    return [
        (
            "other site's event",
            event("infusion_given", trial, site_id="site02"),
            "site_id",
            "own site",
        ),
        (
            "another trial's intake",
            event("infusion_given", "NOPE-trial"),
            "trial_id",
            "names NOPE-trial",
        ),
        (
            "before enrollment",
            event("infusion_given", trial, occurred_on="2025-01-01"),
            "occurred_on",
            "before enrollment",
        ),
        (
            "future date",
            event("infusion_given", trial, occurred_on="2999-01-01"),
            "occurred_on",
            "future",
        ),
        ("second enrollment", event("enrolled", trial), "type", "already enrolled"),
        (
            "not a protocol agent",
            event("dose_modified", trial, data={"agent": "sorafenib"}),
            "data.agent",
            "Input should be",
        ),
        (
            "unknown CTCAE term",
            event("ae_reported", trial, data={"term": "Hypertensoin"}),
            "data.term",
            "Hypertension",
        ),
        (
            "grade not allowed for the term",
            event(
                "ae_reported",
                trial,
                data={
                    "term": "Palmar-plantar erythrodysesthesia syndrome",
                    "grade": 4,
                    "serious": False,
                    "seriousness": [],
                },
            ),
            "data.grade",
            "grade",
        ),
        (
            "grade 5 without a death",
            event("ae_reported", trial, data={"grade": 5}),
            "data.grade",
            "death",
        ),
        (
            "correction without reason",
            event("event_corrected", trial, reason=None),
            "reason",
            "why",
        ),
        (
            "correction of an unknown event",
            event("event_corrected", trial, data={"target_event_id": str(uuid.uuid4())}),
            "data.target_event_id",
            "no event",
        ),
        (
            "follow-up lesion not at baseline",
            event(
                "scan_read",
                trial,
                occurred_on="2025-03-20",
                data={
                    "timepoint": "follow_up",
                    "lesions": [
                        {
                            "lesion_id": "X9",
                            "location": "intrahepatic",
                            "organ": "liver",
                            "role": "target",
                            "longest_diameter_mm": 30.0,
                        }
                    ],
                },
            ),
            "data.lesions[0].lesion_id",
            "baseline",
        ),
        (
            "writer fields set by a site",
            event("infusion_given", trial, hash="0" * 64),
            "hash",
            "writer",
        ),
        (
            "unknown event type",
            {**event("infusion_given", trial), "type": "teleported"},
            "type",
            "unknown event type",
        ),
        (
            "unknown field",
            {**event("infusion_given", trial), "colour": "blue"},
            "colour",
            "Extra inputs",
        ),
        (
            "wrong type",
            event("infusion_given", trial, data={"cycle": "three"}),
            "data.cycle",
            "integer",
        ),
        ("seal from a site", event("ledger_sealed", trial), "type", "writer"),
    ]


async def test_every_intake_rule_rejects_its_bad_event_and_appends_nothing(
    writer: WriterApp, nc: Any, trial: str
) -> None:
    client = await enrolled_patient(nc, trial)
    assert (await client.submit(event("scan_read", trial)))["status"] == "accepted"
    js = nc.jetstream()
    before = len(await submitted_of(js, trial))
    for why, bad, field, words in _bad_cases(trial):
        reply = await client.submit(bad)
        assert reply["status"] == "rejected", (why, reply)
        fields: dict[str, str] = {}
        for error in reply["errors"]:
            fields[error["field"]] = f"{fields.get(error['field'], '')} | {error['message']}"
        assert field in fields, (why, reply["errors"])
        assert words.lower() in fields[field].lower(), (why, fields[field])
    assert len(await submitted_of(js, trial)) == before


async def test_late_entry_dated_before_death_is_accepted_but_not_after(
    writer: WriterApp, nc: Any, trial: str
) -> None:
    client = await enrolled_patient(nc, trial)
    assert (await client.submit(event("death", trial, occurred_on="2025-06-01")))[
        "status"
    ] == "accepted"
    before = await client.submit(event("follow_up_contact", trial, occurred_on="2025-05-20"))
    after = await client.submit(event("follow_up_contact", trial, occurred_on="2025-06-02"))
    assert before["status"] == "accepted"
    assert after["status"] == "rejected" and "death" in after["errors"][0]["message"]


async def test_grade_5_ae_is_accepted_once_the_death_is_recorded(
    writer: WriterApp, nc: Any, trial: str
) -> None:
    client = await enrolled_patient(nc, trial)
    assert (await client.submit(event("death", trial, occurred_on="2025-06-01")))[
        "status"
    ] == "accepted"
    grade5 = event(
        "ae_reported",
        trial,
        occurred_on="2025-06-01",
        data={"grade": 5, "seriousness": ["death"], "outcome": "fatal"},
    )
    assert (await client.submit(grade5))["status"] == "accepted"


async def test_duplicate_answers_the_original_seq_in_and_beyond_the_window(
    nats_url: str, own_nats: Any
) -> None:
    """A short duplicate window proves the answer never depends on JetStream's window."""
    nc = await connect(own_nats.url)
    js = nc.jetstream()
    config = ledger_config()
    config.duplicate_window = 0.5
    await js.add_stream(config)
    first = await create_app(Settings(nats_url=own_nats.url))
    await first.start()
    trial = unique_trial()
    client = SiteClient(nc, trial, "_sponsor")
    assert (await client.submit(parameters(trial)))["status"] == "accepted"
    site = await enrolled_patient(nc, trial)
    infusion = event("infusion_given", trial)
    original = await site.submit(dict(infusion))
    inside = await site.submit(dict(infusion))
    await asyncio.sleep(1.0)
    beyond = await site.submit(dict(infusion))
    await first.stop()
    fresh = await create_app(Settings(nats_url=own_nats.url))  # index rebuilt from the ledger
    await fresh.start()
    after_restart = await site.submit(dict(infusion))
    fresh.writer.index.clear()  # a writer that never saw it: the patient's history still knows
    fresh.writer.patients.clear()
    stale_writer = await site.submit(dict(infusion))
    await fresh.stop()
    for reply in (inside, beyond, after_restart, stale_writer):
        assert reply == {
            "event_id": infusion["event_id"],
            "status": "duplicate",
            "seq": original["seq"],
        }
    assert len(await submitted_of(js, trial)) == 3
    await nc.close()


async def test_two_writers_and_twenty_clients_lose_and_duplicate_nothing(
    nats_url: str, nc: Any
) -> None:
    writers = [await create_app(Settings(nats_url=nats_url)) for _ in range(2)]
    for app in writers:
        await app.start()
    trial = unique_trial()
    assert (await SiteClient(nc, trial, "_sponsor").submit(parameters(trial)))[
        "status"
    ] == "accepted"
    patients = [f"P{n:04d}" for n in range(5)]
    for patient in patients:
        await enrolled_patient(nc, trial, patient)
    rng = random.Random(11)
    planned = [
        event("infusion_given", trial, patient_id=rng.choice(patients), data={"cycle": 1 + n % 9})
        for n in range(400)
    ]
    shares = [planned[i::20] for i in range(20)]
    replies: list[dict[str, Any]] = []

    async def site_client(share: list[dict[str, Any]]) -> None:
        conn = await connect(nats_url)
        client = SiteClient(conn, trial, "site01")
        for item in share:
            replies.append(await client.submit(dict(item)))
            if rng.random() < 0.25:  # a retry after a "timeout": same event_id again
                replies.append(await client.submit(dict(item)))
        await conn.close()

    await asyncio.gather(*(site_client(share) for share in shares))
    # every append answered: no patient lock is kept (they lived while contended)
    assert [app.writer.locks for app in writers] == [{}, {}]
    for app in writers:
        await app.stop()
    statuses = Counter(r["status"] for r in replies)
    assert statuses["rejected"] == 0
    assert statuses["accepted"] == len(planned)
    entries = await ledger_of(nc.jetstream(), trial)
    ids = Counter(stored["event_id"] for _, stored in entries)
    assert all(count == 1 for count in ids.values())
    assert {p["event_id"] for p in planned} <= set(ids)
    assert len([e for e in entries if e[1]["type"] != "ledger_sealed"]) == (
        1 + len(patients) + len(planned)
    )
    assert chains_intact(entries) == []
    accepted_seq = {r["event_id"]: r["seq"] for r in replies if r["status"] == "accepted"}
    assert all(
        r["seq"] == accepted_seq[r["event_id"]] for r in replies if r["status"] == "duplicate"
    )


def _malformed(rng: random.Random, trial: str, n: int) -> bytes:
    valid = event("infusion_given", trial)
    kind = n % 6
    if kind == 0:
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 200)))
    if kind == 1:
        return json.dumps(
            {**valid, "data": {"agent": "haic", "cycle": rng.choice(["x", -1, None, [], 3.5])}}
        ).encode()
    if kind == 2:
        return json.dumps({**valid, "data": {**valid["data"], "regimen": "F" * 300_000}}).encode()
    if kind == 3:
        return json.dumps({**valid, f"field_{n}": n}).encode()
    if kind == 4:
        return json.dumps({**valid, "type": f"type_{n}"}).encode()
    return json.dumps(
        rng.choice([[], 42, "text", None, {"events": "no"}, {"events": [1, 2]}])
    ).encode()


async def test_ten_thousand_malformed_submissions_each_get_an_error_and_append_nothing(
    writer: WriterApp, nc: Any, trial: str
) -> None:
    await enrolled_patient(nc, trial)
    js = nc.jetstream()
    before = len(await submitted_of(js, trial))
    rng = random.Random(5)
    subject = f"intake.{trial}.site01"
    structured = 0
    for start in range(0, 10_000, 250):
        replies = await asyncio.gather(
            *(
                nc.request(subject, _malformed(rng, trial, n), timeout=20)
                for n in range(start, start + 250)
            )
        )
        for reply in replies:
            body = json.loads(reply.data)
            results = body.get("results", [body])
            assert all(
                r["status"] == "rejected"
                and r["errors"]
                and all({"field", "message"} <= set(e) for e in r["errors"])
                for r in results
            ), body
            structured += 1
    assert structured == 10_000
    assert len(await submitted_of(js, trial)) == before
    still = await SiteClient(nc, trial, "site01").submit(event("infusion_given", trial))
    assert still["status"] == "accepted"


async def test_a_batch_is_judged_event_by_event_in_order(
    writer: WriterApp, nc: Any, trial: str
) -> None:
    client = SiteClient(nc, trial, "site01")
    batch = [
        event("enrolled", trial, patient_id="B1"),
        event("infusion_given", trial, patient_id="B1"),
        event("infusion_given", trial, patient_id="B2"),  # B2 never enrolled
        event("enrolled", trial, patient_id="B3"),
    ]
    results = await client.submit_batch(batch)
    assert [r["status"] for r in results] == ["accepted", "accepted", "rejected", "accepted"]
    assert [r["event_id"] for r in results] == [e["event_id"] for e in batch]


async def test_a_resubmission_that_would_now_fail_a_rule_is_still_answered_duplicate(
    writer: WriterApp, nc: Any
) -> None:
    """The index of recent ids is bounded: the patient's own history answers for older ones."""
    trial = unique_trial()
    sponsor = SiteClient(nc, trial, "_sponsor")
    first = parameters(trial)
    accepted = await sponsor.submit(dict(first))
    assert accepted["status"] == "accepted"
    assert (await sponsor.submit(parameters(trial, version=2)))["status"] == "accepted"
    writer.writer.index.clear()  # long forgotten by the fast path
    again = await sponsor.submit(dict(first))  # version 1 <= current 2: a rule would reject it
    assert again == {"event_id": first["event_id"], "status": "duplicate", "seq": accepted["seq"]}
