"""What a replay alone cannot see (issue 14, items 15 and 16), given hand-built ledgers:
a ledger shorter than what outside marks say it held, and seals removed by a rewrite."""

from __future__ import annotations

import base64
import datetime as dt
import stat
from pathlib import Path

import pytest

from services.ledger.backwards import LedgerWentBackwards, refuse_if_behind
from services.ledger.high_water import HighWaterMark, read_mark, write_mark
from services.ledger.io import StoredMessage
from services.security.evidence import Mark, writer_marks
from services.security.seals import (
    ensure_writer_key,
    fingerprint,
    key_path,
    public_key_b64,
    public_pem_path,
    read_public_key_file,
)
from tests.unit.test_ledger_check import KEY, RECORDED_AT, TRIAL, Builder

pytestmark = pytest.mark.unit


def sealed_ledger(events: int = 6) -> Builder:
    """`events` events of one patient, then a seal over all of them."""
    ledger = Builder()
    ledger.append("site01", "P0001", "enrolled")
    for _ in range(events - 1):
        ledger.append("site01", "P0001")
    ledger.seal(events, dict(ledger.heads), events, None)
    return ledger


def test_a_ledger_cut_below_the_writers_high_water_mark_fails_naming_the_missing_seqs() -> None:
    ledger = sealed_ledger()
    top = ledger.messages[-1]
    mark = Mark(top.seq, "the writer's high-water mark")
    report = ledger.check(marks=(mark,), head=4)  # the server kept seqs 1..4 of 7
    assert not report.ok
    assert report.missing == [(5, 7, "the writer's high-water mark")]
    assert report.first is not None and (report.first.seq, report.first.kind) == (5, "truncated")
    assert "seqs 5..7 are missing" in report.first.detail


def test_a_deleted_stream_is_shorter_than_every_read_model_checkpoint() -> None:
    report = Builder().check(marks=(Mark(624, "read model core's checkpoint (live)"),), head=0)
    assert [(p.seq, p.kind) for p in report.problems] == [(1, "truncated")]
    assert report.missing == [(1, 624, "read model core's checkpoint (live)")]


def test_another_event_at_the_acknowledged_seq_is_reported_as_rewritten() -> None:
    ledger = sealed_ledger()
    mark = Mark(3, "the writer's high-water mark", hash="a" * 64)
    report = ledger.check(marks=(mark,))
    assert [(p.seq, p.kind) for p in report.problems] == [(3, "rewritten")]


def test_a_ledger_that_reaches_every_mark_with_the_same_events_verifies_clean() -> None:
    ledger = sealed_ledger()
    stored_hash = ledger.messages[6].json()["hash"]
    marks = (Mark(7, "the writer's latest signed seal", stored_hash), Mark(5, "checkpoint"))
    assert ledger.check(marks=marks).problems == []


def test_a_rewrite_without_seals_fails_under_the_trusted_key_once_the_seal_interval_passed() -> (
    None
):
    ledger = Builder()  # every event signed, chains intact, but no seal: what a rewrite leaves
    ledger.append("site01", "P0001", "enrolled")
    ledger.append("site01", "P0001")
    report = ledger.check(now=RECORDED_AT + dt.timedelta(minutes=5))
    assert [(p.seq, p.kind) for p in report.problems] == [(3, "unsealed")]
    assert f"seqs 1..2 of trial {TRIAL}" in report.problems[0].detail


def test_events_after_the_last_seal_fail_once_the_seal_interval_passed() -> None:
    ledger = sealed_ledger(events=3)
    ledger.append("site01", "P0001")  # seq 5, never sealed
    ledger.append("site01", "P0001")
    report = ledger.check(now=RECORDED_AT + dt.timedelta(minutes=5))
    assert [(p.seq, p.kind) for p in report.problems] == [(7, "unsealed")]
    assert "seqs 5..6" in report.problems[0].detail


def test_a_young_unsealed_tail_is_the_writer_between_two_seals_not_a_failure() -> None:
    ledger = sealed_ledger(events=3)
    ledger.append("site01", "P0001")
    assert ledger.check(now=RECORDED_AT + dt.timedelta(seconds=20)).problems == []


def test_refusing_a_ledger_that_went_backwards_names_the_missing_seqs() -> None:
    refuse_if_behind(624, 624, "the writer", "its mark")  # caught up: runs
    with pytest.raises(LedgerWentBackwards, match=r"seqs 500\.\.624 are missing"):
        refuse_if_behind(499, 624, "the projector", "projection core's checkpoint")


def test_the_high_water_file_keeps_the_highest_seq_and_the_latest_seal(tmp_path: Path) -> None:
    seal = {"hash": "s" * 64, "type": "ledger_sealed"}
    write_mark(tmp_path, HighWaterMark(10, "e10", "h" * 64, 9, seal))
    write_mark(tmp_path, HighWaterMark(7, "e7", "x" * 64))  # a slower writer sharing the dir
    assert read_mark(tmp_path) == HighWaterMark(10, "e10", "h" * 64, 9, seal)


def test_a_seal_in_the_high_water_file_counts_only_if_the_trusted_key_signed_it(
    tmp_path: Path,
) -> None:
    ledger = sealed_ledger()
    stored = ledger.messages[-1].json()
    write_mark(tmp_path, HighWaterMark(7, "e", stored["hash"], 7, stored))
    marks, notes = writer_marks(tmp_path, (public_key_b64(KEY),))
    assert [m.seq for m in marks] == [7, 7] and notes == []
    marks, notes = writer_marks(tmp_path, (base64.b64encode(bytes(32)).decode(),))
    assert [m.seq for m in marks] == [7] and "not signed by a trusted key" in notes[0]


def test_the_signing_key_is_private_and_its_public_key_is_written_for_auditors_to_pin(
    tmp_path: Path,
) -> None:
    key_file = ensure_writer_key(tmp_path)
    assert key_file == key_path(tmp_path)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    pinned = read_public_key_file(public_pem_path(tmp_path))
    assert pinned == (tmp_path / "keys" / "writer_ed25519.pub").read_text().strip()
    assert fingerprint(pinned).startswith("SHA256:") and len(fingerprint(pinned)) == 71
    assert ensure_writer_key(tmp_path).read_bytes() == key_file.read_bytes()  # kept


def test_two_patients_events_swapped_in_the_stream_are_reported_at_the_seal_over_them() -> None:
    ledger = Builder()
    ledger.append("site01", "P0001", "enrolled")
    ledger.append("site02", "P0002", "enrolled")  # seq 2
    ledger.append("site01", "P0001")  # seq 3
    ledger.seal(3, dict(ledger.heads), 3, None)
    two, three = ledger.messages[1], ledger.messages[2]
    # each patient's chain still links: only the order between the patients changed
    ledger.messages[1] = StoredMessage(2, three.subject, three.body, three.headers)
    ledger.messages[2] = StoredMessage(3, two.subject, two.body, two.headers)
    report = ledger.check()
    assert [(p.seq, p.kind) for p in report.problems] == [(4, "seal_order_mismatch")]
    assert "seqs 1..3" in report.problems[0].detail


def test_a_cut_below_the_last_seal_is_reported_as_truncated_before_the_seal_it_took() -> None:
    ledger = sealed_ledger()
    mark = Mark(7, "the writer's high-water mark")
    report = ledger.check(marks=(mark,), head=4, now=RECORDED_AT + dt.timedelta(hours=1))
    assert {(p.seq, p.kind) for p in report.problems} == {(5, "truncated"), (5, "unsealed")}
    assert report.first is not None and report.first.kind == "truncated"
