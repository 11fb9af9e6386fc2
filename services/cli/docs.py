"""The published interface documents: docs/openapi.json (HTTP) and docs/asyncapi.json (NATS).

`python -m services.cli.docs` writes both; tests regenerate them and compare with the committed
files, so the documents cannot drift from the code. The AsyncAPI document is FastStream's own
rendering of the writer's broker (the real `intake.*.*` subscriber of `services.writer.app`),
plus publisher declarations for what the system publishes outside FastStream: the ledger
entries (`ledger.<trial>.<site>.<patient>.<type>`, JetStream stream LEDGER) and the SAE alerts
(`alerts.sae.<trial>.<site>`, stream ALERTS). What FastStream cannot say is added to its
rendering: the intake's payload and reply and the safety officers' intake. Every schema is
a real type's own JSON Schema (`events.intake_reply`, `events.alert_message`, the event
catalogue) and every address a pattern of `events.subjects`.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

from faststream.nats import NatsBroker
from faststream.specification import AsyncAPI
from pydantic.json_schema import models_json_schema

from events import LedgerEvent, SaeAcknowledged
from events.alert_message import SaeAlertMessage
from events.intake_reply import BatchReply, EventVerdict
from events.subjects import (
    ALERT_PATTERN,
    ALERTS_STREAM,
    LEDGER_PATTERN,
    LEDGER_STREAM,
    SAFETY_INTAKE_PATTERN,
    intake_wildcard,
)

DOCS = Path(__file__).resolve().parents[2] / "docs"
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


def declare_publications(broker: NatsBroker) -> None:
    """What the ledger and the alerter publish (they use nats-py directly, not FastStream)."""
    broker.publisher(
        LEDGER_PATTERN,
        title="ledger",
        description=(
            f"Every accepted event, appended once to the stream {LEDGER_STREAM} "
            "(Nats-Msg-Id = event_id; hash-chained per patient). Consumers: projector, alerter."
        ),
        schema=LedgerEvent,
    )
    broker.publisher(
        ALERT_PATTERN,
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
    declare_intake(document)
    return _in_stable_order(document)


SCHEMAS = "#/components/schemas/"
REPLY_MESSAGE = "intake:Reply"
REPLY_SCHEMAS = (EventVerdict, BatchReply)


def _component_schemas(*models: Any) -> dict[str, Any]:
    """The models' JSON Schemas (validation mode: what a reader accepts), by title, with
    their references pointing into `components/schemas`."""
    _, top = models_json_schema(
        [(model, "validation") for model in models], ref_template=SCHEMAS + "{model}"
    )
    return dict(top["$defs"])


def declare_intake(document: dict[str, Any]) -> None:
    """What FastStream's rendering of the intake leaves out: the submission (FastStream sees
    raw bytes), the reply (`events.intake_reply`), and the safety officers' intake."""
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.update(_component_schemas(*REPLY_SCHEMAS))
    messages = components.setdefault("messages", {})
    reply_ref = "#/components/messages/" + REPLY_MESSAGE.replace("*", "%2A")
    messages[REPLY_MESSAGE] = {
        "title": REPLY_MESSAGE,
        "summary": "One verdict per event; for a batch, one per event in submitted order.",
        "payload": {"oneOf": [{"$ref": SCHEMAS + model.__name__} for model in REPLY_SCHEMAS]},
    }
    channels = document.setdefault("channels", {})
    channels["intake:Reply"] = {
        "address": None,  # the submitter's own reply inbox
        "description": "The writer's reply to one submission, sent to its reply subject.",
        "messages": {"Reply": {"$ref": reply_ref}},
    }
    operations = document.setdefault("operations", {})
    reply = {
        "channel": {"$ref": "#/channels/intake:Reply"},
        "messages": [{"$ref": "#/channels/intake:Reply/messages/Reply"}],
    }
    for operation in operations.values():
        address = _channel_of(document, operation)
        if address == intake_wildcard():
            operation["reply"] = reply
    channels["safety_intake"] = {
        "address": SAFETY_INTAKE_PATTERN,
        "description": (
            "The safety officers' intake (a subject of `intake.*.*`): `sae_acknowledged` "
            "events only, answered like any submission."
        ),
        "messages": {"Acknowledgement": {"$ref": "#/components/messages/safety_intake:Message"}},
    }
    messages["safety_intake:Message"] = {
        "title": "safety_intake:Message",
        "payload": {"$ref": SCHEMAS + SaeAcknowledged.__name__},
    }
    operations["safety_intake"] = {
        "action": "receive",
        "channel": {"$ref": "#/channels/safety_intake"},
        "messages": [{"$ref": "#/channels/safety_intake/messages/Acknowledgement"}],
        "reply": reply,
    }


def _channel_of(document: dict[str, Any], operation: dict[str, Any]) -> str | None:
    ref = str(operation.get("channel", {}).get("$ref", ""))
    name = ref.removeprefix("#/channels/").replace("%2A", "*")
    address = document.get("channels", {}).get(name, {}).get("address")
    return None if address is None else str(address)


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
    from services.config.settings import Settings
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
    from services.config.settings import Settings

    # a token that no caller has: the document is built, the app never served
    return create_app(Settings(), tokens={"admin": new_token()}).openapi()


def dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


async def generate(nats_url: str | None = None) -> dict[str, str]:
    """Both documents as text, by file name; starts a throwaway NATS server if none is given."""
    if nats_url is not None:
        asyncapi = await writer_asyncapi(nats_url)
    else:
        from services.runtime.embedded import EmbeddedNats

        with tempfile.TemporaryDirectory(prefix="docs-nats-") as tmp:
            server = EmbeddedNats(Path(tmp)).start()
            try:
                asyncapi = await writer_asyncapi(server.url)
            finally:
                server.stop()
    return {"openapi.json": dumps(openapi_document()), "asyncapi.json": dumps(asyncapi)}


def main() -> None:
    from services.config.logs import configure_logging

    configure_logging("WARNING")
    DOCS.mkdir(exist_ok=True)
    for name, text in asyncio.run(generate()).items():
        (DOCS / name).write_text(text, encoding="utf-8")
        print(DOCS / name)


if __name__ == "__main__":
    main()
