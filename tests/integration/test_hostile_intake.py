"""Thousands of hostile submissions against two real writers on a real nats-server (loopback,
seeded, bounded in count and time): every one answered in a structured reply, no writer
down, nothing invalid appended, no event_id stored twice (issue 14, item 4)."""

from __future__ import annotations

import asyncio
import copy
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from nats.errors import TimeoutError as NatsTimeoutError

from events import decode, hash_is_valid
from services.client.site import SiteClient
from services.config.settings import Settings
from services.ledger.connection import connect
from services.writer.app import WriterApp, create_app
from tests.integration.helpers import chains_intact, event, ledger_of, parameters, unique_trial

pytestmark = pytest.mark.integration

SUBMISSIONS = 3000
IN_FLIGHT = 40
# The promise is an answer within 1 s under load; the bound leaves room for a CPU shared with
# other test runs, and the test reports the slowest answer it saw.
REPLY_BOUND_S = 5.0
MAX_PAYLOAD = 1024 * 1024
PATIENTS = tuple(f"H{n:03d}" for n in range(24))


class Hostile:
    """Seeded generator of submissions: malformed, adversarial, and valid ones to attack."""

    def __init__(self, rng: random.Random, trial: str) -> None:
        self.rng = rng
        self.trial = trial
        self.sent: list[dict[str, Any]] = []  # valid events already submitted once

    def valid(self) -> dict[str, Any]:
        patient = self.rng.choice(PATIENTS)
        raw = event(
            self.rng.choice(["infusion_given", "follow_up_contact"]),
            self.trial,
            patient_id=patient,
        )
        if raw["type"] == "infusion_given":
            raw["data"]["cycle"] = self.rng.randint(1, 30)
        self.sent.append(raw)
        return raw

    def old(self) -> dict[str, Any]:
        return copy.deepcopy(self.rng.choice(self.sent)) if self.sent else self.valid()

    def nested(self, depth: int) -> Any:
        value: Any = 1
        for _ in range(depth):
            value = {"a": value} if self.rng.random() < 0.5 else [value]
        return value

    def one(self) -> Any:
        """One event-shaped value (JSON-able, but perhaps only by Python's lax rules)."""
        pick = self.rng.randrange(16)
        base = self.valid() if pick < 4 else self.old()
        if pick < 3:
            return base  # valid and new
        if pick == 3:
            return {**base, "event_id": base["event_id"].upper()}
        if pick == 4:
            return base  # identical resubmission
        if pick == 5:  # same id, other content
            return {**base, "data": {**base["data"], "cycle": 99}, "type": "infusion_given"}
        if pick == 6:  # same id, other patient
            return {**base, "patient_id": self.rng.choice(PATIENTS)}
        if pick == 7:
            return {**base, "data": self.nested(self.rng.choice([40, 200, 900]))}
        if pick == 8:
            return {**base, "data": {**base["data"], "cycle": self.rng.choice(_ODD_NUMBERS)}}
        if pick == 9:
            char = self.rng.choice(["\x00", "\x1b", "\x7f", "\u0085", "\ud800"])
            field = self.rng.choice(["recorded_by", "reason"])
            return {**base, "event_id": str(uuid.uuid4()), field: f"x{char}y"}
        if pick == 10:
            key = self.rng.choice(["event_id", "patient_id", "occurred_on", "data", "type"])
            return {**base, key: self.rng.choice([None, 7, [], {"x": [1]}, True, 1e308])}
        if pick == 11:
            return {**base, "event_id": str(uuid.uuid4()), "recorded_at": "2025-01-01T00:00:00Z"}
        if pick == 12:
            return self.rng.choice([None, 3, "text", [], [[]], True])
        if pick == 13:
            return {**base, "event_id": str(uuid.uuid4()), "site_id": "site02"}
        if pick == 14:
            return {**base, "event_id": str(uuid.uuid4()), "data": {"note": "x" * 300_000}}
        return {**base, "event_id": str(uuid.uuid4()), "schema_version": 10**30}

    def submission(self) -> bytes:
        """One request body: an event, a batch, or bytes no JSON reader accepts."""
        pick = self.rng.randrange(10)
        if pick == 0:
            return self.rng.choice(_RAW_BODIES)(self.rng)
        if pick <= 2:
            items = [self.one() for _ in range(self.rng.randint(1, 12))]
            while len(items) > 1 and len(_dumps({"events": items})) > MAX_PAYLOAD:
                items.pop()  # NATS carries at most 1 MB: a bigger batch never reaches anyone
            return _dumps({"events": items})
        return _dumps(self.one())


_ODD_NUMBERS = [float("nan"), float("inf"), -float("inf"), 2**64, -(2**70), 1e300, 10**400]


def _dumps(value: Any) -> bytes:
    # Python writes NaN/Infinity and lone surrogates (as \\ud800 escapes): hostile on purpose
    return json.dumps(value).encode()


_RAW_BODIES: list[Callable[[random.Random], bytes]] = [
    lambda rng: bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300))),
    lambda rng: b"[" * rng.choice([1000, 50_000]) + b"]" * 10,
    lambda rng: b'{"event_id": "' + "é".encode("latin-1") + b'"}',
    lambda rng: b'{"events": [' + b"1e99999," * 50 + b"NaN]}",
    lambda rng: b'{"a": 1' + b"0" * rng.choice([5000, 200_000]) + b"}",
    lambda rng: b"\xef\xbb\xbf{}",
    lambda rng: b"",
]


def _structured(reply: dict[str, Any]) -> bool:
    results = reply.get("results", [reply])
    if not isinstance(results, list) or not results:
        return False
    for result in results:
        status = result.get("status")
        if status not in {"accepted", "duplicate", "rejected"} or "event_id" not in result:
            return False
        if status == "rejected" and not (
            result.get("errors")
            and all(isinstance(e.get("field"), str) and e.get("message") for e in result["errors"])
        ):
            return False
        if status != "rejected" and not isinstance(result.get("seq"), int):
            return False
    return True


async def test_thousands_of_hostile_submissions_are_each_answered_and_store_nothing_invalid(
    nats_url: str,
) -> None:
    writers: list[WriterApp] = []
    for _ in range(2):
        writers.append(await create_app(Settings(nats_url=nats_url)))
        await writers[-1].start()
    nc = await connect(nats_url)
    trial = unique_trial()
    try:
        assert (await SiteClient(nc, trial, "_sponsor").submit(parameters(trial)))[
            "status"
        ] == "accepted"
        site = SiteClient(nc, trial, "site01")
        for patient in PATIENTS:
            enrolled = await site.submit(event("enrolled", trial, patient_id=patient))
            assert enrolled["status"] == "accepted"
        hostile = Hostile(random.Random(14), trial)
        subject = f"intake.{trial}.site01"
        replies: list[dict[str, Any]] = []
        timeouts = 0
        unstructured: list[Any] = []
        slowest = 0.0
        started = time.monotonic()

        async def ask(body: bytes) -> None:
            nonlocal timeouts, slowest
            sent = time.monotonic()
            try:
                msg = await nc.request(subject, body, timeout=REPLY_BOUND_S)
            except NatsTimeoutError:
                timeouts += 1
                return
            slowest = max(slowest, time.monotonic() - sent)
            try:
                reply = json.loads(msg.data)
            except ValueError:
                unstructured.append(msg.data[:200])
                return
            if not isinstance(reply, dict) or not _structured(reply):
                unstructured.append(reply)
                return
            replies.extend(reply.get("results", [reply]))

        for _wave in range(SUBMISSIONS // IN_FLIGHT):
            bodies = [hostile.submission() for _ in range(IN_FLIGHT)]
            # the same new event sent at once twice and for another patient: a race on one id
            twin = hostile.valid()
            bodies += [_dumps(twin), _dumps(twin), _dumps({**twin, "patient_id": "H000"})]
            await asyncio.gather(*(ask(body) for body in bodies))
        elapsed = time.monotonic() - started
        alive = [w.writer.counters for w in writers]
        after = await site.submit(event("follow_up_contact", trial, patient_id="H001"))
    finally:
        for writer in writers:
            await writer.stop()
    entries = await ledger_of(nc.jetstream(), trial)
    await nc.close()
    print(
        f"\n{len(replies)} verdicts in {elapsed:.1f} s; slowest answer {slowest * 1000:.0f} ms; "
        f"statuses {dict(Counter(r['status'] for r in replies))}"
    )
    assert timeouts == 0
    assert unstructured == []
    assert after["status"] == "accepted"  # both writers still serve
    assert all(c.accepted + c.duplicate + c.rejected > 0 for c in alive)  # both took a share
    ids = Counter(stored["event_id"] for _, stored in entries)
    assert [event_id for event_id, n in ids.items() if n > 1] == []
    assert chains_intact(entries) == []
    for _, stored in entries:
        assert hash_is_valid(stored)
        decode(stored, mode="strict")  # every entry a valid event
    by_id = {stored["event_id"]: seq for seq, stored in entries}
    accepted = [r for r in replies if r["status"] == "accepted"]
    submitted = [entry for entry in entries if entry[1]["type"] != "ledger_sealed"]
    assert len(accepted) == len(submitted) - 1 - len(PATIENTS) - 1
    assert all(by_id[r["event_id"]] == r["seq"] for r in accepted)
    assert all(by_id.get(r["event_id"]) == r["seq"] for r in replies if r["status"] == "duplicate")
