"""Hostile submissions against the whole system as `trial-ledger up` runs it (auth on, writer,
projector, alerter, loopback only, seeded and bounded), then the auditor's and the safety
officer's view of the aftermath: `verify` clean, `replay --compare` clean, and every serious
AE the intake accepted alerted exactly once (issue 14, "Done when")."""

from __future__ import annotations

import asyncio
import io
import json
import os
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from nats.errors import TimeoutError as NatsTimeoutError
from rich.console import Console

from events.subjects import ALERTS_STREAM, ALERTS_SUBJECTS
from services.cli.replay import run_replay
from services.client.site import SiteClient
from services.ledger.connection import connect
from services.ledger.io import read_stream
from services.runtime.system import System
from services.security.verify import verify_system
from tests.integration.helpers import event, parameters
from tests.integration.test_hostile_intake import Hostile, _dumps, _structured
from tests.integration.test_safety import serious_ae

pytestmark = pytest.mark.integration

TRIAL = "HOSTILE-SYS"
WAVES = 25
IN_FLIGHT = 30
REPLY_BOUND_S = 5.0  # an answer, not a speed: the bench measures speed
PATIENTS = tuple(f"H{n:03d}" for n in range(24))


@pytest.fixture(scope="module")
async def system(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[System]:
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("LEDGER_")}
    running = await System(tmp_path_factory.mktemp("hostile-system"), sites=("site01",)).start()
    try:
        yield running
    finally:
        await running.stop()
        os.environ.update(saved)


def _sae_variants(rng: random.Random, sent: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A new serious AE, and attacks on SAEs already sent: the same report again, the same id
    with a lower grade or no seriousness (must never silence or replace the original), an
    upper-case spelling of its id, a NUL in its term."""
    fresh = serious_ae(TRIAL, rng.choice(PATIENTS), grade=rng.choice([3, 4]))
    # attacks go at an SAE of an earlier wave: sent at once, two contents under one id are a
    # race the first one wins, and the test could not say which SAE should stand
    old = rng.choice(sent) if sent else fresh
    sent.append(fresh)
    if old is fresh:
        return [fresh]
    return [
        fresh,
        old,
        {**old, "data": {**old["data"], "grade": 1, "serious": False, "seriousness": []}},
        {**old, "event_id": old["event_id"].upper()},
        {**old, "event_id": str(uuid.uuid4()), "data": {**old["data"], "term": "Fever\x00"}},
    ]


async def test_after_a_hostile_run_verify_replay_and_alerts_are_all_consistent(
    system: System,
) -> None:
    settings = system.settings
    admin = await connect(settings.nats_url or "", settings.creds_for("admin"))
    site_nc = await connect(settings.nats_url or "", settings.creds_for("site:site01"))
    try:
        sponsor = await SiteClient(admin, TRIAL, "_sponsor").submit(parameters(TRIAL))
        assert sponsor["status"] == "accepted", sponsor
        site = SiteClient(site_nc, TRIAL, "site01")
        for patient in PATIENTS:
            enrolled = await site.submit(event("enrolled", TRIAL, patient_id=patient))
            assert enrolled["status"] == "accepted", enrolled
            infused = await site.submit(event("infusion_given", TRIAL, patient_id=patient))
            assert infused["status"] == "accepted", infused

        rng = random.Random(1414)
        hostile = Hostile(rng, TRIAL)
        saes: list[dict[str, Any]] = []
        replies: list[dict[str, Any]] = []
        problems: list[Any] = []
        subject = f"intake.{TRIAL}.site01"

        async def ask(body: bytes) -> None:
            try:
                msg = await site_nc.request(subject, body, timeout=REPLY_BOUND_S)
            except NatsTimeoutError:
                problems.append(("timeout", body[:120]))
                return
            try:
                reply = json.loads(msg.data)
            except ValueError:
                problems.append(("not json", msg.data[:120]))
                return
            if not isinstance(reply, dict) or not _structured(reply):
                problems.append(("unstructured", reply))
                return
            replies.extend(reply.get("results", [reply]))

        for _wave in range(WAVES):
            bodies = [hostile.submission() for _ in range(IN_FLIGHT)]
            bodies += [_dumps(sae) for sae in _sae_variants(rng, saes)]
            await asyncio.gather(*(ask(body) for body in bodies))

        await system.services["projector"].wait_caught_up(180)
        await system.services["alerter"].wait_caught_up(180)

        # the ledger's serious AEs, as stored (lower-case ids), and the alerts raised for them
        js = admin.jetstream()
        stored_saes = {
            m.json()["event_id"]
            async for m in read_stream(js, f"ledger.{TRIAL}.site01.*.ae_reported")
            if m.json()["data"].get("serious")
        }
        alerts = Counter(
            [
                m.json()["alert_id"]
                async for m in read_stream(js, ALERTS_SUBJECTS, stream=ALERTS_STREAM)
                if m.json()["trial_id"] == TRIAL and m.json().get("kind", "initial") == "initial"
            ]
        )
    finally:
        await site_nc.close()
        await admin.close()

    assert problems == []
    assert {s["event_id"] for s in saes} == stored_saes  # every SAE sent was stored, once
    assert Counter({f"sae-{event_id}": 1 for event_id in stored_saes}) == alerts

    report = await verify_system(settings)
    assert report.ok, report.as_dict()

    out = io.StringIO()
    code = await run_replay(
        settings,
        as_of=None,
        schema=None,
        as_json=True,
        compare_live=True,
        switch=False,
        console=Console(file=out, width=200),
        workers=1,
    )
    assert code == 0, out.getvalue()[-3000:]
    assert {r["status"] for r in replies} == {"accepted", "duplicate", "rejected"}


def test_the_hostile_system_test_sends_every_kind_of_attack_on_an_sae() -> None:
    """The attack set itself: each SAE variant differs from the report in what it attacks."""
    sent: list[dict[str, Any]] = []
    rng = random.Random(1)
    assert _sae_variants(rng, sent) == [sent[0]]  # the first wave: nothing earlier to attack
    fresh, old, lowered, upper, nul = _sae_variants(rng, sent)
    assert fresh is sent[1] and old is sent[0]
    assert lowered["event_id"] == old["event_id"] and lowered["data"]["serious"] is False
    assert upper["event_id"] == old["event_id"].upper()
    assert "\x00" in nul["data"]["term"] and nul["event_id"] != old["event_id"]
