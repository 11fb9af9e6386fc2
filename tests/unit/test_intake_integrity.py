"""Intake integrity without a server: text the ledger cannot hold, numbers and nesting beyond
limits, UUID spellings, and the complete index of event ids (issue 14, items 3, 4 and 5)."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

import pytest
from pydantic import ValidationError

from events import decode, submission_digest
from events.examples import EXAMPLES
from services.writer.event_ids import EventIdIndex
from services.writer.intake import Writer

pytestmark = pytest.mark.unit

# Every text field of every event type a site or safety officer submits, as (type, path).
TEXT_FIELDS = [
    ("enrolled", ("recorded_by",)),
    ("enrolled", ("reason",)),
    ("enrolled", ("data", "prior_systemic_therapy", 0)),
    ("infusion_given", ("data", "regimen")),
    ("ae_reported", ("data", "term")),
    ("ae_reported", ("data", "verbatim")),
    ("ae_updated", ("data", "ae_event_id")),
    ("subsequent_therapy_started", ("data", "therapy")),
    ("sae_acknowledged", ("data", "note")),
    ("sae_acknowledged", ("data", "ae_event_id")),
    ("event_corrected", ("data", "target_event_id")),
    ("event_retracted", ("data", "target_event_id")),
    ("protocol_parameters_set", ("data", "title")),
]


def _with(kind: str, path: tuple[str | int, ...], value: str) -> dict[str, Any]:
    raw = copy.deepcopy(EXAMPLES[kind])
    holder: Any = raw
    for part in path[:-1]:
        holder = holder[part]
    holder[path[-1]] = value
    return raw


def _writer() -> Writer:
    return Writer(None, check_ae=lambda *_: [])  # type: ignore[arg-type]  # refused before any ledger access


@pytest.mark.parametrize(("kind", "path"), TEXT_FIELDS)
@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f", "\x85"])
def test_a_control_character_in_any_text_field_is_refused_naming_the_field(
    kind: str, path: tuple[str | int, ...], char: str
) -> None:
    raw = _with(kind, path, f"Grade 3{char}rash")
    with pytest.raises(ValidationError) as caught:
        decode(raw, mode="strict")
    fields = {".".join(str(p) for p in e["loc"][1:]) for e in caught.value.errors()}
    assert ".".join(str(p) for p in path) in fields
    assert "control character" in str(caught.value)


@pytest.mark.parametrize("text", ["line one\nline two", "col\tcol", "windows\r\nline", "é 😀"])
def test_tabs_line_breaks_and_any_printable_text_are_kept(text: str) -> None:
    event = decode(_with("ae_reported", ("data", "verbatim"), text), mode="strict")
    assert event.data.verbatim == text  # type: ignore[union-attr]


async def test_the_intake_answers_a_nul_in_a_text_field_with_the_fields_path() -> None:
    raw = _with("ae_reported", ("data", "term"), "Rash\x00")
    reply = await _writer().handle("intake.T1.site01", json.dumps(raw).encode())
    assert reply["status"] == "rejected"
    assert [e["field"] for e in reply["errors"]] == ["data.term"]


def test_references_to_events_are_stored_in_canonical_lower_case() -> None:
    ae_id = "5e0f3a1b-9c2d-4e7f-a8b6-c1d2e3f4a5b6"
    original = copy.deepcopy(EXAMPLES["sae_acknowledged"])
    original["data"].update(ae_event_id=ae_id, alert_id=f"sae-{ae_id}")
    shouted = copy.deepcopy(original)
    shouted["event_id"] = shouted["event_id"].upper()
    shouted["data"].update(ae_event_id=ae_id.upper(), alert_id=f"sae-{ae_id.upper()}")
    event = decode(shouted, mode="strict")
    assert event.data.ae_event_id == ae_id  # type: ignore[union-attr]
    assert event.data.alert_id == f"sae-{ae_id}"  # type: ignore[union-attr]
    assert submission_digest(event) == submission_digest(decode(original, mode="strict"))
    correction = copy.deepcopy(EXAMPLES["event_retracted"])
    correction["data"]["target_event_id"] = ae_id.upper()
    assert decode(correction).data.target_event_id == ae_id  # type: ignore[union-attr]


def test_the_id_index_knows_every_id_in_any_spelling_beyond_any_merge() -> None:
    index = EventIdIndex()
    ids = [str(uuid.UUID(int=n * 7919 + (n % 3 << 64))) for n in range(120_000)]
    for seq, event_id in enumerate(ids, 1):
        index.add(event_id, seq)
    assert len(index) == len(ids)
    assert index.get(ids[0]) == 1
    assert index.get(ids[0].upper()) == 1
    assert index.get(ids[-1]) == len(ids)
    assert index.get(str(uuid.UUID(int=3))) is None
    index.add(ids[5], 999_999)  # a second sighting never moves the first entry
    assert index.get(ids[5]) == 6


HOSTILE_BODIES = [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"event_id": "x", "data": ' + b'{"a":' * 200 + b"1" + b"}" * 200 + b"}",
    b'{"event_id": "x", "data": {"dose": NaN}}',
    b'{"event_id": "x", "data": {"dose": -Infinity}}',
    b'{"event_id": "x", "data": {"dose": 1e999}}',
    b'{"event_id": "x", "data": {"cycle": 1' + b"0" * 5000 + b"}}",
    b'{"event_id": "x", "data": {"cycle": 9007199254740993}}',
    b'{"event_id": {"nested": true}, "type": "enrolled"}',
    b'{"event_id": ["a"], "patient_id": {"x": 1}}',
    b'{"event_id": "x", "data": {"term": "\\ud800"}}',
    b'{"event_id": "\\ud800\\u0000", "type": "enrolled"}',
    b'{"event_id": "x", "data": {"\\u0000": 1}}',
    b"\xff\xfe{\x00}\x00",
    '{"event_id": "é"}'.encode("latin-1"),
    b'{"events": [1, "two", null, [], {"event_id": {"a": 1}}, {"data": NaN}]}',
    b'{"events": [{"patient_id": ["unhashable"]}]}',
]


@pytest.mark.parametrize("body", HOSTILE_BODIES, ids=range(len(HOSTILE_BODIES)))
async def test_every_hostile_body_gets_a_structured_rejection(body: bytes) -> None:
    reply = await _writer().handle("intake.T1.site01", body)
    results = reply.get("results", [reply])
    for result in results:
        assert result["status"] == "rejected", reply
        assert result["errors"] and all({"field", "message"} <= set(e) for e in result["errors"])
    json.dumps(reply, ensure_ascii=False).encode()  # the reply itself is plain UTF-8 JSON


async def test_a_number_out_of_range_is_named_by_its_field_and_spares_the_rest_of_a_batch() -> None:
    bad = copy.deepcopy(EXAMPLES["infusion_given"])
    body = json.dumps({"events": [bad, bad]}).replace('"cycle": 1', '"cycle": 1e999', 1)
    reply = await _writer().handle("intake.T1.site01", body.encode())
    first, second = reply["results"]
    assert first["errors"] == [{"field": "data.cycle", "message": first["errors"][0]["message"]}]
    assert "out of range" in first["errors"][0]["message"]
    assert all(e["field"] != "data.cycle" for e in second["errors"])
