"""The intake refuses impossible dates on their field and appends nothing (issue 14 item 6a):
enrollment, infusion and scan in year 1, an awareness instant in year 1 or 9999 with an
offset, an enrollment before the trial's first-enrollment date."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from services.client.site import SiteClient
from services.config.settings import Settings
from services.ledger.connection import connect
from services.writer.app import WriterApp, create_app
from tests.integration.helpers import event, ledger_of, parameters, unique_trial

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


async def test_impossible_dates_are_rejected_on_their_field_and_nothing_is_appended(
    writer: WriterApp, nc: Any
) -> None:
    trial = unique_trial()
    sponsor = SiteClient(nc, trial, "_sponsor")
    declared = parameters(trial)
    declared["data"]["parameters"]["first_enrollment_on"] = "2025-01-15"
    assert (await sponsor.submit(declared))["status"] == "accepted"
    site = SiteClient(nc, trial, "site01")

    async def refused(raw: dict[str, Any]) -> set[str]:
        reply = await site.submit(raw)
        assert reply["status"] == "rejected", reply
        return {error["field"] for error in reply["errors"]}

    assert "occurred_on" in await refused(event("enrolled", trial, occurred_on="0001-01-01"))
    assert "occurred_on" in await refused(event("enrolled", trial, occurred_on="2025-01-14"))
    assert (await site.submit(event("enrolled", trial)))["status"] == "accepted"
    assert "occurred_on" in await refused(event("infusion_given", trial, occurred_on="0001-01-01"))
    assert "occurred_on" in await refused(
        event("scan_read", trial, occurred_on="0001-01-01", data={"timepoint": "follow_up"})
    )
    for moment in ("0001-01-01T00:00:00+05:00", "9999-12-31T23:00:00-05:00"):
        assert await refused(event("ae_reported", trial, data={"site_aware_at": moment})) == {
            "data.site_aware_at"
        }
    stored = [body["type"] for _, body in await ledger_of(nc.jetstream(), trial)]
    assert stored == ["protocol_parameters_set", "enrolled"]
