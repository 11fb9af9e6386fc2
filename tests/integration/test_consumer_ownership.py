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
from services.client.site import SiteClient
from services.ledger.connection import connect
from services.ledger.io import read_stream
from services.runtime.system import System
from services.security.nats_auth import ALERTER_DURABLE
from tests.integration.helpers import event, parameters, unique_trial
from tests.integration.test_security import DENY, probe

pytestmark = pytest.mark.integration

SITES = ("site01",)
READERS = ("auditor", "api", "writer", "projector")


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


@pytest.mark.parametrize("role", READERS)
async def test_no_other_role_can_delete_the_alerters_consumer(system: System, role: str) -> None:
    before = await alerter_consumer(system)

    async def delete(nc: Client) -> None:
        await nc.jetstream(timeout=3).delete_consumer(LEDGER_STREAM, ALERTER_DURABLE)

    assert await probe(system.settings.nats_url or "", system.settings.creds_for(role), delete) == (
        DENY
    )
    assert (await alerter_consumer(system)).created == before.created


@pytest.mark.parametrize("role", READERS)
@pytest.mark.parametrize("form", ["durable", "name"])
async def test_no_other_role_can_rewrite_the_alerters_consumer_by_its_name(
    system: System, role: str, form: str
) -> None:
    async def rewrite(nc: Client) -> None:
        config = js_api.ConsumerConfig(
            filter_subject="ledger.nothing.>", ack_policy=js_api.AckPolicy.EXPLICIT
        )
        if form == "durable":
            config.durable_name = ALERTER_DURABLE
        else:
            config.name = ALERTER_DURABLE
        await nc.jetstream(timeout=3).add_consumer(LEDGER_STREAM, config)

    assert await probe(
        system.settings.nats_url or "", system.settings.creds_for(role), rewrite
    ) == (DENY)
    assert (await alerter_consumer(system)).config.filter_subjects


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
    subject permission can see it; the auditor may use that form (its replays need ephemeral
    consumers) and so could narrow the alerter's filter. The alerter notices and re-reads."""
    alerter = system.services["alerter"]
    before = alerter.consumer_recreations
    auditor = await as_role(system, "auditor")
    # As an attacker would: the consumer's own settings (INFO is allowed), a narrower filter.
    config = (await auditor.jetstream().consumer_info(LEDGER_STREAM, ALERTER_DURABLE)).config
    rewritten = config.as_dict()
    rewritten.pop("durable_name", None)
    rewritten.pop("filter_subjects", None)
    rewritten.update(name=ALERTER_DURABLE, filter_subject="ledger.nothing.>")
    request = {"stream_name": LEDGER_STREAM, "config": rewritten}
    with capture_logs() as logs:
        reply = await auditor.request(
            f"$JS.API.CONSUMER.CREATE.{LEDGER_STREAM}", json.dumps(request).encode(), timeout=5
        )
        assert "error" not in json.loads(reply.data), reply.data  # the server let it through
        await auditor.close()
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
    api = await as_role(system, "api")
    # The api may delete consumers it cannot tell from its own ephemeral ones (server-chosen
    # names); what it deletes here costs nothing: the position lives in PostgreSQL.
    with capture_logs() as logs:
        await api.jetstream().delete_consumer(LEDGER_STREAM, runner.durable)
        await api.close()
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
