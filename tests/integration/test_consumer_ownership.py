"""Each role's durable consumers are its own (issue 14, item 13), on the real nats-server with
the system's own authorization: other credentials cannot delete or rename-and-rewrite the
alerter's consumer, and a consumer that vanishes or is rewritten anyway (by admin, or through
the server's ephemeral form, which names the consumer only inside the request) is made again
by its service, loudly, and the next serious AE is still alerted."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from nats.aio.client import Client
from nats.js import api as js_api
from structlog.testing import capture_logs

from events.subjects import ALERTS_STREAM, LEDGER_STREAM
from services.client.follow import ensure_durable
from services.client.site import SiteClient
from services.ledger.connection import connect
from services.ledger.io import read_stream
from services.runtime.system import System
from services.security.nats_auth import ALERTER_DURABLE
from tests.integration.helpers import event, parameters, unique_trial
from tests.integration.test_security import ALLOW, DENY, probe

pytestmark = pytest.mark.integration

SITES = ("site01",)


@pytest.fixture(scope="module")
async def system(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[System]:
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("LEDGER_")}
    running = await System(tmp_path_factory.mktemp("owners"), sites=SITES).start()
    try:
        yield running
    finally:
        await running.stop()
        os.environ.update(saved)


async def as_role(system: System, role: str) -> Client:
    return await connect(system.settings.nats_url or "", system.settings.creds_for(role))


async def alerter_consumer(system: System) -> js_api.ConsumerInfo:
    admin = await as_role(system, "admin")
    try:
        return await admin.jetstream().consumer_info(LEDGER_STREAM, ALERTER_DURABLE)
    finally:
        await admin.close()


def serious_ae(trial: str, patient: str) -> dict[str, Any]:
    return event(
        "ae_reported",
        trial,
        patient_id=patient,
        data={
            "term": "Hypertension",
            "grade": 3,
            "serious": True,
            "seriousness": ["hospitalisation"],
            "attribution": {"lenvatinib": "probable"},
            "expected": False,
            "site_aware_at": "2025-02-20T09:30:00Z",
        },
    )


async def submit_sae(system: System) -> str:
    """A new trial with one enrolled patient and a serious AE; returns the AE's event id."""
    trial = unique_trial("OWN")
    sponsor = await as_role(system, "site:_sponsor")
    site = await as_role(system, "site:site01")
    try:
        assert (await SiteClient(sponsor, trial, "_sponsor").submit(parameters(trial, SITES)))[
            "status"
        ] == "accepted"
        client = SiteClient(site, trial, "site01")
        assert (await client.submit(event("enrolled", trial, patient_id="P1")))[
            "status"
        ] == "accepted"
        ae = serious_ae(trial, "P1")
        assert (await client.submit(ae))["status"] == "accepted"
        return str(ae["event_id"])
    finally:
        await sponsor.close()
        await site.close()


async def wait_for_alert(system: System, ae_event_id: str, timeout: float = 60) -> None:
    admin = await as_role(system, "admin")
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            async for msg in read_stream(admin.jetstream(), "alerts.sae.>", stream=ALERTS_STREAM):
                if msg.json().get("ae_event_id") == ae_event_id:
                    return
            assert asyncio.get_running_loop().time() < deadline, f"no alert for {ae_event_id}"
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


# -- what other credentials may not do ---------------------------------------------------------

OFFICER_DURABLE = "officer_owned"
# Every role but admin; the site stands for all sites (no JetStream API at all).
ROLES = ("writer", "projector", "alerter", "api", "auditor", "safety", "site:site01")
# Whose each durable is: the alerter's and the officers' by name, the projections' by stream.
TARGETS = {"alerter": "alerter", "projection": "projector", "officer": "safety"}


async def target_consumer(system: System, target: str) -> tuple[str, str]:
    """(stream, durable) of one of the system's durables, made first if need be (an officer's
    durable exists once `alerts follow --durable` has run)."""
    if target == "alerter":
        return LEDGER_STREAM, ALERTER_DURABLE
    if target == "projection":
        return LEDGER_STREAM, system.services["projector"].active_runners()[0].durable
    safety = await as_role(system, "safety")
    try:
        await ensure_durable(safety.jetstream(), OFFICER_DURABLE)
    finally:
        await safety.close()
    return ALERTS_STREAM, OFFICER_DURABLE


async def consumer_state(system: System, stream: str, durable: str) -> tuple[Any, Any, Any]:
    admin = await as_role(system, "admin")
    try:
        info = await admin.jetstream().consumer_info(stream, durable)
        return info.created, info.config.filter_subject, info.config.filter_subjects
    finally:
        await admin.close()


def takeover(stream: str, durable: str, how: str) -> Any:
    """One way of deleting, or creating over, the consumer `durable` on `stream`."""
    body = {
        "stream_name": stream,
        "config": {
            "filter_subject": "nothing.here.>",
            "ack_policy": "explicit",
            "deliver_policy": "new",
        },
    }

    async def act(nc: Client) -> None:
        js_request = nc.jetstream(timeout=3)
        if how == "delete":
            await js_request.delete_consumer(stream, durable)
            return
        if how == "durable form":  # $JS.API.CONSUMER.DURABLE.CREATE.<stream>.<durable>
            body["config"]["durable_name"] = durable
            subject = f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{durable}"
        elif how == "named form":  # $JS.API.CONSUMER.CREATE.<stream>.<name>
            body["config"].update(name=durable, durable_name=durable)
            body["config"].pop("filter_subject")
            subject = f"$JS.API.CONSUMER.CREATE.{stream}.{durable}"
        elif how == "named form with filter":  # ….CREATE.<stream>.<name>.<filter>
            body["config"].update(name=durable, durable_name=durable)
            subject = f"$JS.API.CONSUMER.CREATE.{stream}.{durable}.nothing.here.>"
        else:  # the nameless (ephemeral) form: the name only in the body
            body["config"].update(name=durable, durable_name=durable)
            subject = f"$JS.API.CONSUMER.CREATE.{stream}"
        reply = await nc.request(subject, json.dumps(body).encode(), timeout=3)
        answer = json.loads(reply.data)
        if "error" in answer:
            raise AssertionError(f"refused by the stream, not by permissions: {answer}")

    return act


HOWS = ("delete", "durable form", "named form", "named form with filter", "nameless form")
FOREIGN = [
    (role, target, how)
    for role in ROLES
    for target, owner in TARGETS.items()
    if role != owner
    for how in HOWS
]


@pytest.mark.parametrize(("role", "target", "how"), FOREIGN)
async def test_no_role_can_delete_or_rewrite_another_roles_consumer(
    system: System, role: str, target: str, how: str
) -> None:
    stream, durable = await target_consumer(system, target)
    before = await consumer_state(system, stream, durable)
    creds = system.settings.creds_for(role)
    result = await probe(system.settings.nats_url or "", creds, takeover(stream, durable, how))
    assert result == DENY
    assert await consumer_state(system, stream, durable) == before


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("stream", [LEDGER_STREAM, ALERTS_STREAM])
async def test_no_role_can_make_a_consumer_outside_its_own(
    system: System, role: str, stream: str
) -> None:
    """A new name: only the projector makes durables on LEDGER (its names are per build and
    partition) and only officers (`safety`) on ALERTS; nobody uses the nameless form."""
    name = f"intruder_{role.replace(':', '_')}"
    owner = {LEDGER_STREAM: "projector", ALERTS_STREAM: "safety"}[stream]
    url, creds = system.settings.nats_url or "", system.settings.creds_for(role)
    nameless = await probe(url, creds, takeover(stream, f"{name}_eph", "nameless form"))
    named = await probe(url, creds, takeover(stream, name, "named form with filter"))
    assert nameless == DENY
    assert named == (ALLOW if role == owner else DENY)
    if named == ALLOW:
        admin = await as_role(system, "admin")
        await admin.jetstream().delete_consumer(stream, name)
        await admin.close()


async def test_the_owners_still_work_after_every_attempt(system: System) -> None:
    """After the attempts above (the module's system is shared): the next SAE is alerted and
    the projections catch up with it."""
    ae_event_id = await submit_sae(system)
    await wait_for_alert(system, ae_event_id)
    await system.services["projector"].wait_caught_up(60)


# -- what the services do when their consumer is gone or rewritten anyway -------------------------


async def test_the_alerter_remakes_its_consumer_deleted_by_admin_and_the_next_sae_still_alerts(
    system: System,
) -> None:
    alerter = system.services["alerter"]
    before = alerter.consumer_recreations
    admin = await as_role(system, "admin")
    with capture_logs() as logs:
        await admin.jetstream().delete_consumer(LEDGER_STREAM, ALERTER_DURABLE)
        await admin.close()
        ae_event_id = await submit_sae(system)
        await wait_for_alert(system, ae_event_id)
    assert alerter.consumer_recreations > before
    loud = [e for e in logs if e["event"] == "sae_alert_consumer_recreated"]
    assert loud and loud[0]["log_level"] == "error" and loud[0]["reason"] == "missing"
    assert (await alerter_consumer(system)).config.filter_subjects


async def test_an_alerter_consumer_rewritten_through_the_ephemeral_form_is_made_again(
    system: System,
) -> None:
    """The server's ephemeral create names the consumer only inside the request body, where no
    subject permission can see it; no role but admin may use that form any more (the tests
    above), and if admin narrows the alerter's filter that way, the alerter notices."""
    alerter = system.services["alerter"]
    before = alerter.consumer_recreations
    admin = await as_role(system, "admin")
    # As an attacker would: the consumer's own settings (INFO is allowed), a narrower filter.
    config = (await admin.jetstream().consumer_info(LEDGER_STREAM, ALERTER_DURABLE)).config
    rewritten = config.as_dict()
    rewritten.pop("durable_name", None)
    rewritten.pop("filter_subjects", None)
    rewritten.update(name=ALERTER_DURABLE, filter_subject="ledger.nothing.>")
    request = {"stream_name": LEDGER_STREAM, "config": rewritten}
    with capture_logs() as logs:
        reply = await admin.request(
            f"$JS.API.CONSUMER.CREATE.{LEDGER_STREAM}", json.dumps(request).encode(), timeout=5
        )
        assert "error" not in json.loads(reply.data), reply.data  # the server let it through
        await admin.close()
        ae_event_id = await submit_sae(system)
        await wait_for_alert(system, ae_event_id)
    assert alerter.consumer_recreations > before
    assert any(e["event"] == "sae_alert_consumer_recreated" for e in logs)
    assert (await alerter_consumer(system)).config.filter_subjects


async def test_a_projection_whose_consumer_vanished_makes_it_again_and_keeps_projecting(
    system: System,
) -> None:
    projector = system.services["projector"]
    runner = projector.active_runners()[0]
    before = runner.consumer_recreations
    admin = await as_role(system, "admin")
    # Only admin can now; what it deletes costs nothing: the position lives in PostgreSQL.
    with capture_logs() as logs:
        await admin.jetstream().delete_consumer(LEDGER_STREAM, runner.durable)
        await admin.close()
        await submit_sae(system)
        await projector.wait_caught_up(60)
    assert runner.consumer_recreations > before
    assert any(
        e["event"] == "projection_consumer_recreated" and e["log_level"] == "error" for e in logs
    )
    admin = await as_role(system, "admin")
    try:
        info = await admin.jetstream().consumer_info(LEDGER_STREAM, runner.durable)
        assert info.config.ack_policy == js_api.AckPolicy.ALL
    finally:
        await admin.close()
