"""The intake reply and the ALERTS message are models in events/: the writer and the alerter
build them through the models, the clients read them through the same models, and the
AsyncAPI document publishes exactly the models' JSON Schemas at the builder's addresses."""

from __future__ import annotations

import copy
import datetime as dt
import json
import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from events import ProtocolParameters, SaeAcknowledged, decode
from events.alert_message import NotAnAlert, SaeAlertMessage, read_alert
from events.examples import EXAMPLES
from events.intake_reply import BatchReply, EventVerdict, NotAReply, read_reply
from events.subjects import ALERT_PATTERN, LEDGER_PATTERN, SAFETY_INTAKE_PATTERN
from projections.fold.history import Recorded
from projections.safety.ctcae import check_ae
from services.alerter.decisions import alerts_due
from services.cli.docs import DOCS
from services.client.site import SiteClient
from services.writer.intake import Writer, rejected, same_event

pytestmark = pytest.mark.unit


def recorded(seq: int, kind: str, **data: Any) -> Recorded:
    raw = copy.deepcopy(EXAMPLES[kind])
    raw.update(event_id=str(uuid.uuid4()), recorded_at="2025-02-21T08:00:00Z")
    raw["data"] = {**raw["data"], **data}
    return Recorded(seq, decode(raw))


# -- the intake reply ------------------------------------------------------------------------
async def test_every_reply_the_writer_gives_reads_back_through_the_contract_unchanged() -> None:
    writer = Writer(None, check_ae=check_ae)  # type: ignore[arg-type]  # refused before IO
    event = decode(EXAMPLES["enrolled"])
    replies = [
        await writer.handle("intake.*", b"{}"),
        await writer.handle("intake.T.site01", b"[1"),
        await writer.handle("intake.T.site01", b'{"events": []}'),
        await writer.handle("intake.T.site01", json.dumps({"events": [1, {"type": 2}]}).encode()),
        same_event(event, 7, event),
        rejected("x" * 100, []),
    ]
    for reply in replies:
        assert read_reply(json.dumps(reply)).wire() == reply
    assert replies[0]["event_id"] is None and replies[0]["errors"][0]["field"] == "subject"
    assert isinstance(read_reply(json.dumps(replies[3])), BatchReply)
    assert replies[4] == {"event_id": str(event.event_id), "status": "duplicate", "seq": 7}


def test_a_verdict_leaves_out_what_it_does_not_know_but_always_names_the_event() -> None:
    assert EventVerdict(event_id=None, status="rejected", errors=[]).wire() == {
        "event_id": None,
        "status": "rejected",
        "errors": [],
    }
    accepted = EventVerdict(event_id="e", status="accepted", seq=3, hash="h").wire()
    assert list(accepted) == ["event_id", "status", "seq", "hash"]


class _Answering:
    """A NATS connection whose intake answers `data`."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def request(self, subject: str, payload: bytes, timeout: float) -> Any:
        return SimpleNamespace(data=self.data)


@pytest.mark.parametrize(
    "answer",
    [
        b'{"status": "maybe"}',
        b'{"event_id": "e", "status": "accepted", "seq": "soon"}',
        b'{"event_id": "e"}',
        b'{"results": [{"status": "accepted"}]}',
        b"[]",
        b"not json",
    ],
)
async def test_the_site_client_refuses_an_answer_that_is_not_an_intake_reply(
    answer: bytes,
) -> None:
    client = SiteClient(_Answering(answer), "T", "site01", attempts=1)  # type: ignore[arg-type]
    with pytest.raises(NotAReply):
        await client.submit({"type": "enrolled"})


async def test_the_site_client_hands_back_the_reply_it_read() -> None:
    reply = {"event_id": "e", "status": "accepted", "seq": 3, "hash": "h", "later": 1}
    client = SiteClient(_Answering(json.dumps(reply).encode()), "T", "s")  # type: ignore[arg-type]
    # a field a newer writer adds is ignored, never an error
    assert await client.submit({}) == {"event_id": "e", "status": "accepted", "seq": 3, "hash": "h"}


# -- the ALERTS message ----------------------------------------------------------------------
def _alert_body() -> dict[str, Any]:
    [alert] = alerts_due(
        [recorded(1, "enrolled"), recorded(2, "ae_reported", expected=False)], ProtocolParameters()
    )
    return alert.message(dt.datetime(2025, 2, 21, 8, 0, 1, 500, tzinfo=dt.UTC))


def test_the_alerter_publishes_the_message_model_field_for_field_in_its_order() -> None:
    body = _alert_body()
    assert list(body) == list(SaeAlertMessage.model_fields)
    assert read_alert(json.dumps(body)).wire() == read_alert(json.dumps(body)).as_sent() == body
    assert body["raised_at"] == "2025-02-21T08:00:01.000500Z"


# The fields DESIGN.md names: what the first alerters published.
DESIGN_ALERT_FIELDS = (
    "alert_id",
    "trial_id",
    "site_id",
    "patient_id",
    "ae_event_id",
    "seq",
    "term",
    "grade",
    "seriousness",
    "expedited_days",
    "report_due",
    "raised_at",
)


def test_an_alert_from_an_older_alerter_is_still_read_as_an_initial_alert() -> None:
    body = _alert_body()
    older = {key: body[key] for key in DESIGN_ALERT_FIELDS}
    alert = read_alert(json.dumps(older))
    assert (alert.kind, alert.follows, alert.reasons, alert.susar) == ("initial", None, [], False)
    assert alert.as_sent() == older


@pytest.mark.parametrize(
    "body",
    [b"[]", b"{}", b'{"alert_id": "sae-x"}', b"not json", b'{"alert_id": 1, "grade": "high"}'],
)
def test_a_message_that_is_not_an_alert_is_refused_as_such(body: bytes) -> None:
    with pytest.raises(NotAnAlert):
        read_alert(body)


# -- the AsyncAPI document -------------------------------------------------------------------
def _inlined(schema: Any, defs: dict[str, Any]) -> Any:
    """`schema` with every `$ref` replaced by what it names (the models are not recursive)."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _inlined(defs[schema["$ref"].rsplit("/", 1)[1]], defs)
        return {key: _inlined(value, defs) for key, value in schema.items() if key != "$defs"}
    if isinstance(schema, list):
        return [_inlined(item, defs) for item in schema]
    return schema


def _model_schema(model: Any) -> Any:
    schema = model.model_json_schema()
    return _inlined(schema, schema.get("$defs", {}))


def _document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((DOCS / "asyncapi.json").read_text(encoding="utf-8"))
    return document


def _payload(document: dict[str, Any], channel: dict[str, Any]) -> Any:
    [message] = channel["messages"].values()
    name = message["$ref"].rsplit("/", 1)[1].replace("%2A", "*")
    payload = document["components"]["messages"][name]["payload"]
    return _inlined(payload, document["components"]["schemas"])


def _channel(document: dict[str, Any], address: str | None) -> dict[str, Any]:
    [channel] = [c for c in document["channels"].values() if c["address"] == address]
    return channel


def test_the_documented_alert_message_is_the_models_json_schema() -> None:
    document = _document()
    assert _payload(document, _channel(document, ALERT_PATTERN)) == _model_schema(SaeAlertMessage)


def test_the_documented_intake_reply_is_the_models_json_schema() -> None:
    document = _document()
    assert _payload(document, _channel(document, None)) == {
        "oneOf": [_model_schema(EventVerdict), _model_schema(BatchReply)]
    }
    replying = [op for op in document["operations"].values() if "reply" in op]
    assert len(replying) == 2  # every intake, the safety officers' too


def test_the_documented_safety_intake_takes_acknowledgements() -> None:
    document = _document()
    assert _payload(document, _channel(document, SAFETY_INTAKE_PATTERN)) == _model_schema(
        SaeAcknowledged
    )


def test_the_documented_addresses_are_the_builders_patterns() -> None:
    addresses = {channel["address"] for channel in _document()["channels"].values()}
    assert {LEDGER_PATTERN, ALERT_PATTERN, SAFETY_INTAKE_PATTERN, "intake.*.*"} <= addresses
