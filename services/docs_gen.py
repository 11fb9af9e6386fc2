"""The published interface documents: docs/openapi.json (HTTP) and docs/asyncapi.json (NATS).

`python -m services.docs_gen` writes both; tests regenerate them and compare with the committed
files, so the documents cannot drift from the code. The AsyncAPI document is FastStream's own
rendering of the writer's broker (the real `intake.*.*` subscriber of `services.writer.app`),
plus publisher declarations for what the system publishes outside FastStream: the ledger
entries (`ledger.<trial>.<site>.<patient>.<type>`, JetStream stream LEDGER) and the SAE alerts
(`alerts.sae.<trial>.<site>`, stream ALERTS).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any, Literal

from faststream.nats import NatsBroker
from faststream.specification import AsyncAPI
from pydantic import BaseModel, ConfigDict

from events import LedgerEvent
from events.subjects import ALERTS_STREAM, LEDGER_STREAM

DOCS = Path(__file__).resolve().parent.parent / "docs"
DOCUMENTED_NATS = "localhost:4222"
TITLE = "trial-ledger"
VERSION = "0.1.0"

ASYNCAPI_DESCRIPTION = (
    "The NATS interface of the trial ledger. Sites submit events by request/reply on "
    '`intake.<trial>.<site>` (one event, or `{"events": [...]}` for a batch); safety officers '
    "acknowledge SAEs on `intake.<trial>._safety`. The writer replies with each event's verdict "
    "(`accepted` with its ledger `seq`, `duplicate`, or `rejected` with field errors) and appends "
    f"accepted events to the JetStream stream {LEDGER_STREAM}. The alerter publishes one message "
    f"per serious AE, and one per escalation of it, to the stream {ALERTS_STREAM} "
    "(Nats-Msg-Id = alert_id)."
)


class SaeAlertMessage(BaseModel):
    """The JSON body of an ALERTS message (`projections.sae_alerts.SaeAlert.message`): an
    initial alert or a follow-up raised by an escalation of the case."""

    model_config = ConfigDict(extra="forbid", title="SaeAlertMessage")

    alert_id: str
    kind: Literal["initial", "follow_up"]
    follows: str | None
    reasons: list[str]
    trial_id: str
    site_id: str
    patient_id: str
    ae_event_id: str
    seq: int
    term: str
    grade: int
    seriousness: list[str]
    susar: bool
    expedited_days: Literal[7, 15] | None
    report_due: str | None
    acknowledgement_due: str | None
    awareness_at: str | None
    late_entry: bool | None
    clock_unknown: bool
    data_quality: list[str]
    not_yet_assessed: list[str]
    trigger: str
    trigger_seq: int
    raised_at: str


def declare_publications(broker: NatsBroker) -> None:
    """What the ledger and the alerter publish (they use nats-py directly, not FastStream)."""
    broker.publisher(
        "ledger.{trial_id}.{site_id}.{patient_id}.{event_type}",
        title="ledger",
        description=(
            f"Every accepted event, appended once to the stream {LEDGER_STREAM} "
            "(Nats-Msg-Id = event_id; hash-chained per patient). Consumers: projector, alerter."
        ),
        schema=LedgerEvent,
    )
    broker.publisher(
        "alerts.sae.{trial_id}.{site_id}",
        title="alerts",
        description=(
            f"One message per AE that became serious, in the stream {ALERTS_STREAM} "
            "(Nats-Msg-Id = alert_id). Consumers: `trial-ledger alerts follow`, the safety page."
        ),
        schema=SaeAlertMessage,
    )


def asyncapi_document(broker: NatsBroker) -> dict[str, Any]:
    """AsyncAPI 3.0 of `broker` (the writer's) with the publications declared; the server
    address is the documented default, not the one the broker happened to be built with."""
    declare_publications(broker)
    spec = AsyncAPI(
        broker, title=TITLE, version=VERSION, description=ASYNCAPI_DESCRIPTION
    ).to_specification()
    document: dict[str, Any] = spec.to_jsonable()
    for server in document.get("servers", {}).values():
        server["host"] = DOCUMENTED_NATS
    return _in_stable_order(document)


def _in_stable_order(document: dict[str, Any]) -> dict[str, Any]:
    """Channels, operations and components by name: FastStream lists them in an order that
    can change from one process to the next, and the committed document must not."""
    ordered = dict(document)
    for section in ("channels", "operations"):
        if isinstance(ordered.get(section), dict):
            ordered[section] = dict(sorted(ordered[section].items()))
    components = ordered.get("components")
    if isinstance(components, dict):
        ordered["components"] = {
            name: dict(sorted(part.items())) if isinstance(part, dict) else part
            for name, part in components.items()
        }
    return ordered


async def writer_asyncapi(nats_url: str) -> dict[str, Any]:
    """Build the real writer against a NATS server (its composition root connects) and
    document its broker; nothing is started, so no intake is answered."""
    from services.settings import Settings
    from services.writer.app import create_app

    writer = await create_app(Settings(nats_url=nats_url))
    try:
        return asyncapi_document(writer.broker)
    finally:
        await writer.nc.close()


def openapi_document() -> dict[str, Any]:
    """The HTTP API's OpenAPI document (every installed route module included)."""
    from services.api.app import create_app
    from services.api.auth import new_token
    from services.settings import Settings

    # a token that no caller has: the document is built, the app never served
    return create_app(Settings(), tokens={"admin": new_token()}).openapi()


def dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


async def generate(nats_url: str | None = None) -> dict[str, str]:
    """Both documents as text, by file name; starts a throwaway NATS server if none is given."""
    if nats_url is not None:
        asyncapi = await writer_asyncapi(nats_url)
    else:
        from services.runtime import EmbeddedNats

        with tempfile.TemporaryDirectory(prefix="docs-nats-") as tmp:
            server = EmbeddedNats(Path(tmp)).start()
            try:
                asyncapi = await writer_asyncapi(server.url)
            finally:
                server.stop()
    return {"openapi.json": dumps(openapi_document()), "asyncapi.json": dumps(asyncapi)}


def main() -> None:
    from services.logs import configure_logging

    configure_logging("WARNING")
    DOCS.mkdir(exist_ok=True)
    for name, text in asyncio.run(generate()).items():
        (DOCS / name).write_text(text, encoding="utf-8")
        print(DOCS / name)


if __name__ == "__main__":
    main()
