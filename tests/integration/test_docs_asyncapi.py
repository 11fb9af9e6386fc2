"""The committed AsyncAPI document is FastStream's rendering of the writer as the code builds it."""

from __future__ import annotations

import json

import pytest

from services.cli.docs import DOCS, dumps, writer_asyncapi

pytestmark = pytest.mark.integration


async def test_the_committed_asyncapi_document_is_the_one_the_writer_generates(
    nats_url: str,
) -> None:
    committed = (DOCS / "asyncapi.json").read_text(encoding="utf-8")
    assert committed == dumps(await writer_asyncapi(nats_url)), (
        "docs/asyncapi.json is stale: run python -m services.cli.docs"
    )


def test_the_asyncapi_document_names_the_intake_ledger_and_alert_subjects() -> None:
    document = json.loads((DOCS / "asyncapi.json").read_text(encoding="utf-8"))
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert "intake.*.*" in addresses
    assert any(address.startswith("ledger.") for address in addresses)
    assert any(address.startswith("alerts.sae.") for address in addresses)
    intake = next(c for c in document["channels"].values() if c["address"] == "intake.*.*")
    assert intake["bindings"]["nats"]["queue"] == "writers"
