"""The checks of `trial-ledger verify`, given hand-built ledgers (no server)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from events import seal_stored
from services.ledger.io import StoredMessage
from services.security.evidence import Mark
from services.security.seals import SIGNATURE_HEADER, public_key_b64, seal_data, sign_event_hash
from services.security.verify import LedgerCheck, Report

pytestmark = pytest.mark.unit

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
TRIAL = "T1"
RECORDED_AT = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


class Builder:
    """Appends like the writer: chain per patient, Nats-Msg-Id, signature header."""

    def __init__(self) -> None:
        self.messages: list[StoredMessage] = []
        self.heads: dict[str, str] = {}
        self.sealed = 0  # the latest seal's upto_seq

    def append(
        self,
        site: str,
        patient: str,
        kind: str = "infusion_given",
        data: dict[str, Any] | None = None,
        event_id: str | None = None,
    ) -> dict[str, Any]:
        key = f"{TRIAL}.{site}.{patient}"
        body = {
            "event_id": event_id or str(uuid.uuid4()),
            "type": kind,
            "trial_id": TRIAL,
            "site_id": site,
            "patient_id": patient,
            "data": data or {},
        }
        stored = seal_stored(
            body, recorded_at=RECORDED_AT.isoformat(), prev_hash=self.heads.get(key)
        )
        self.heads[key] = stored["hash"]
        seq = len(self.messages) + 1
        headers = {
            "Nats-Msg-Id": stored["event_id"],
            SIGNATURE_HEADER: sign_event_hash(KEY, stored["hash"]),
        }
        self.messages.append(
            StoredMessage(seq, f"ledger.{key}.{kind}", json.dumps(stored).encode(), headers)
        )
        return stored

    def seal(
        self, upto: int, heads: dict[str, str], count: int, previous: str | None
    ) -> dict[str, Any]:
        covered = [(m.seq, m.json()["hash"]) for m in self.messages if self.sealed < m.seq <= upto]
        data = seal_data(
            KEY,
            upto_seq=upto,
            event_count=count,
            heads=heads,
            previous_seal_hash=previous,
            order=covered,
        )
        self.sealed = upto
        return self.append("_sponsor", "_trial", "ledger_sealed", data)

    def check(
        self,
        skip: tuple[int, ...] = (),
        *,
        marks: tuple[Mark, ...] = (),
        now: dt.datetime = RECORDED_AT + dt.timedelta(seconds=10),
        head: int | None = None,
    ) -> Report:
        """Verify as of `now` (by default just after the events were recorded)."""
        check = LedgerCheck((public_key_b64(KEY),), marks, now=now)
        for msg in self.messages:
            if msg.seq not in skip and (head is None or msg.seq <= head):
                check.feed(msg)
        return check.finish(len(self.messages) if head is None else head)


def test_a_sealed_ledger_written_by_the_writer_verifies_clean() -> None:
    ledger = Builder()
    ledger.append("site01", "P0001", "enrolled")
    ledger.append("site02", "P0002", "enrolled")
    first = ledger.seal(2, dict(ledger.heads), 2, None)
    heads_at_4 = dict(ledger.heads)
    ledger.append("site01", "P0001")
    ledger.seal(
        4,
        {**heads_at_4, f"{TRIAL}.site01.P0001": ledger.heads[f"{TRIAL}.site01.P0001"]},
        4,
        first["hash"],
    )
    report = ledger.check()
    assert report.problems == []
    assert (report.events, report.seals, report.signed_events, report.patients) == (5, 2, 5, 3)


def test_a_seal_is_checked_against_the_heads_at_its_upto_seq_not_later_ones() -> None:
    ledger = Builder()
    ledger.append("site01", "P0001", "enrolled")
    heads_at_1 = dict(ledger.heads)
    ledger.append("site01", "P0001")  # seq 2: after the seal's position
    ledger.seal(1, heads_at_1, 1, None)
    assert ledger.check().problems == []


def test_a_seal_whose_head_differs_from_the_replay_names_the_patient() -> None:
    ledger = Builder()
    ledger.append("site01", "P0001", "enrolled")
    ledger.append("site02", "P0002", "enrolled")
    wrong = {**ledger.heads, f"{TRIAL}.site02.P0002": "f" * 64}
    ledger.seal(2, wrong, 2, None)
    report = ledger.check()
    assert [(p.seq, p.kind, p.patient) for p in report.problems] == [
        (3, "seal_heads_mismatch", f"{TRIAL}.site02.P0002")
    ]


def test_a_missing_message_is_reported_at_its_seq_and_breaks_the_patients_chain() -> None:
    ledger = Builder()
    ledger.append("site01", "P0001", "enrolled")
    ledger.append("site01", "P0001")
    ledger.append("site01", "P0001")
    report = ledger.check(skip=(2,))
    assert [(p.seq, p.kind) for p in report.problems] == [(2, "missing"), (3, "broken_chain")]
    assert report.first is not None and report.first.seq == 2


def test_a_missing_tail_is_reported_from_the_first_missing_seq() -> None:
    ledger = Builder()
    ledger.append("site01", "P0001", "enrolled")
    ledger.append("site01", "P0001")
    report = ledger.check(skip=(2,))
    assert [(p.seq, p.kind) for p in report.problems] == [(2, "missing")]


def test_a_second_entry_with_the_same_event_id_is_a_duplicate() -> None:
    ledger = Builder()
    first = ledger.append("site01", "P0001", "enrolled")
    ledger.append("site01", "P0001", event_id=first["event_id"])
    report = ledger.check()
    assert [(p.seq, p.kind) for p in report.problems] == [(2, "duplicate_event_id")]


def test_an_event_without_the_writers_signature_is_reported() -> None:
    ledger = Builder()
    ledger.append("site01", "P0001", "enrolled")
    msg = ledger.messages[0]
    ledger.messages[0] = StoredMessage(
        msg.seq, msg.subject, msg.body, {"Nats-Msg-Id": json.loads(msg.body)["event_id"]}
    )
    assert [p.kind for p in ledger.check().problems] == ["unsigned"]


def test_a_body_filed_under_another_sites_subject_is_reported() -> None:
    ledger = Builder()
    ledger.append("site01", "P0001", "enrolled")
    msg = ledger.messages[0]
    ledger.messages[0] = StoredMessage(
        1, msg.subject.replace("site01", "site02"), msg.body, msg.headers
    )
    assert [p.kind for p in ledger.check().problems] == ["subject_mismatch"]
