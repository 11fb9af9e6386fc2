"""`trial-ledger verify`: replay the whole ledger and prove nothing in it was altered.

Checked for every stored message, in seq order: seqs contiguous from 1 to the head; the body
is JSON naming the same trial/site/patient/type as its subject; `hash` equals the hash of the
body (events.event_hash); `prev_hash` links to the patient's previous event; `event_id` is
unique and equals the Nats-Msg-Id header; the writer's signature header verifies against a
trusted key. Every `ledger_sealed` event: signed by a trusted key, its `heads` (and digest),
`event_count` and `previous_seal_hash` equal what the replay computes at its `upto_seq`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js import api as js_api
from rich.console import Console
from rich.table import Table

from events import ZERO_HASH, event_hash
from events.subjects import LEDGER_STREAM
from services.ledger_io import StoredMessage, fetch_available
from services.nats_conn import connect
from services.security.seals import (
    SIGNATURE_HEADER,
    event_signed_by,
    heads_digest,
    seal_signature_valid,
    trusted_keys,
)
from services.settings import Settings

SEAL_TYPE = "ledger_sealed"


@dataclass(frozen=True)
class Problem:
    seq: int
    kind: str
    detail: str
    patient: str | None = None  # "trial.site.patient"


@dataclass
class Report:
    head_seq: int = 0
    events: int = 0
    patients: int = 0
    seals: int = 0
    signed_events: int = 0
    trusted_keys: tuple[str, ...] = ()
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Problem | None:
        return min(self.problems, key=lambda p: p.seq) if self.problems else None

    def as_dict(self) -> dict[str, Any]:
        first = self.first
        return {
            "ok": self.ok,
            "head_seq": self.head_seq,
            "events": self.events,
            "patients": self.patients,
            "seals": self.seals,
            "signed_events": self.signed_events,
            "trusted_keys": list(self.trusted_keys),
            "first_bad_seq": first.seq if first else None,
            "first_bad_patient": first.patient if first else None,
            "problems": [asdict(p) for p in sorted(self.problems, key=lambda p: p.seq)],
        }


class LedgerCheck:
    """Feed every stored message in seq order, then `finish(head_seq)`."""

    def __init__(self, trusted: tuple[str, ...]) -> None:
        self.report = Report(trusted_keys=trusted)
        self.expected = 1
        self.heads: dict[str, dict[str, str]] = {}  # trial → {patient key: head hash}
        self.counts: dict[str, int] = {}
        # (seq, trial, patient key, head before): lets a seal be checked at its upto_seq.
        self.changes: list[tuple[int, str, str, str | None]] = []
        self.seal_hashes: dict[str, list[tuple[int, str]]] = {}
        self.event_ids: dict[str, int] = {}

    def problem(self, seq: int, kind: str, detail: str, patient: str | None = None) -> None:
        self.report.problems.append(Problem(seq, kind, detail, patient))

    def feed(self, msg: StoredMessage) -> None:
        seq = msg.seq
        if seq != self.expected:
            self.problem(self.expected, "missing", f"seqs {self.expected}..{seq - 1} are missing")
        self.expected = seq + 1
        self.report.events += 1
        parts = msg.subject.split(".")
        if len(parts) != 5:
            self.problem(seq, "bad_subject", f"{msg.subject!r} is not a ledger subject")
            return
        _, trial, site, patient, event_type = parts
        key = f"{trial}.{site}.{patient}"
        try:
            stored = msg.json()
        except ValueError as exc:
            self.problem(seq, "unreadable", f"the body is not a JSON object: {exc}", key)
            return
        named = tuple(stored.get(n) for n in ("trial_id", "site_id", "patient_id", "type"))
        if named != (trial, site, patient, event_type):
            self.problem(seq, "subject_mismatch", f"body names {named}, subject {msg.subject}", key)
        stated = str(stored.get("hash"))
        if event_hash(stored) != stated:
            self.problem(seq, "bad_hash", "the hash does not match the body", key)
        trial_heads = self.heads.setdefault(trial, {})
        before = trial_heads.get(key)
        if stored.get("prev_hash") != (before or ZERO_HASH):
            self.problem(seq, "broken_chain", "prev_hash is not the patient's previous hash", key)
        self._check_identity(seq, stored, msg.headers or {}, key)
        trial_heads[key] = stated
        self.changes.append((seq, trial, key, before))
        self.counts[trial] = self.counts.get(trial, 0) + 1
        if event_type == SEAL_TYPE:
            self._check_seal(seq, trial, stored, key)
            self.seal_hashes.setdefault(trial, []).append((seq, stated))

    def _check_identity(
        self, seq: int, stored: dict[str, Any], headers: dict[str, str], key: str
    ) -> None:
        event_id = str(stored.get("event_id"))
        if headers.get("Nats-Msg-Id") != event_id:
            self.problem(seq, "msg_id_mismatch", "Nats-Msg-Id is not the event_id", key)
        if event_id in self.event_ids:
            self.problem(
                seq,
                "duplicate_event_id",
                f"event_id first stored at seq {self.event_ids[event_id]}",
                key,
            )
        else:
            self.event_ids[event_id] = seq
        if not self.report.trusted_keys:
            return
        if event_signed_by(
            self.report.trusted_keys, str(stored.get("hash")), headers.get(SIGNATURE_HEADER)
        ):
            self.report.signed_events += 1
        else:
            self.problem(seq, "unsigned", "not signed by a trusted writer key", key)

    def _state_at(self, trial: str, upto: int) -> tuple[dict[str, str], int]:
        """The trial's chain heads and event count as they stood at seq `upto`."""
        heads = dict(self.heads.get(trial, {}))
        count = self.counts.get(trial, 0)
        for seq, changed_trial, key, before in reversed(self.changes):
            if seq <= upto:
                break
            if changed_trial != trial:
                continue
            count -= 1
            if before is None:
                heads.pop(key, None)
            else:
                heads[key] = before
        return heads, count

    def _check_seal(self, seq: int, trial: str, stored: dict[str, Any], key: str) -> None:
        self.report.seals += 1
        data = stored.get("data")
        if not isinstance(data, dict) or not isinstance(data.get("upto_seq"), int):
            self.problem(seq, "bad_seal", "the seal has no readable data", key)
            return
        trusted = self.report.trusted_keys
        if trusted and data.get("public_key") not in trusted:
            self.problem(
                seq, "untrusted_seal_key", "the seal's key is not a trusted writer key", key
            )
        if not seal_signature_valid(data):
            self.problem(seq, "bad_seal_signature", "the seal's signature does not verify", key)
        upto = int(data["upto_seq"])
        if upto >= seq:
            self.problem(seq, "bad_seal", f"upto_seq {upto} is not before the seal", key)
            return
        raw_heads = data.get("heads")
        claimed: dict[str, Any] = raw_heads if isinstance(raw_heads, dict) else {}
        if data.get("heads_digest") != heads_digest(claimed):
            self.problem(seq, "seal_digest_mismatch", "heads_digest does not match heads", key)
        heads, count = self._state_at(trial, upto)
        for patient in sorted(set(heads) | set(claimed)):
            if heads.get(patient) != claimed.get(patient):
                self.problem(
                    seq,
                    "seal_heads_mismatch",
                    f"chain head at seq {upto} differs from the seal",
                    patient,
                )
                break
        if data.get("event_count") != count:
            self.problem(
                seq,
                "seal_count_mismatch",
                f"{count} events at seq {upto}, seal says {data.get('event_count')}",
                key,
            )
        earlier = [h for s, h in self.seal_hashes.get(trial, []) if s <= upto]
        if data.get("previous_seal_hash") != (earlier[-1] if earlier else None):
            self.problem(
                seq, "seal_chain_broken", "previous_seal_hash is not the previous seal", key
            )

    def finish(self, head_seq: int) -> Report:
        if self.expected <= head_seq:
            self.problem(self.expected, "missing", f"seqs {self.expected}..{head_seq} are missing")
        self.report.head_seq = head_seq
        self.report.patients = sum(len(heads) for heads in self.heads.values())
        return self.report


async def read_ledger(
    js: JetStreamContext, head_seq: int, *, idle: float = 2.0, batch: int = 1024
) -> AsyncIterator[StoredMessage]:
    """Every readable message up to `head_seq`. Unlike `read_stream` it never waits for a
    message the server cannot deliver (a corrupt one): it stops after `idle` seconds."""
    if head_seq == 0:
        return
    info = await js.add_consumer(
        LEDGER_STREAM,
        js_api.ConsumerConfig(
            deliver_policy=js_api.DeliverPolicy.ALL,
            ack_policy=js_api.AckPolicy.NONE,
            mem_storage=True,
            inactive_threshold=60.0,
        ),
    )
    sub = await js.pull_subscribe_bind(info.name, stream=LEDGER_STREAM)
    try:
        while True:
            try:
                msgs = await fetch_available(sub, batch, timeout=idle)
            except NatsTimeoutError:
                return
            for msg in msgs:
                seq = int(msg.metadata.sequence.stream)
                if seq > head_seq:
                    return
                yield StoredMessage(seq, msg.subject, msg.data, dict(msg.headers or {}) or None)
                if seq == head_seq:
                    return
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
        with contextlib.suppress(Exception):
            await js.delete_consumer(LEDGER_STREAM, info.name)


async def verify_ledger(js: JetStreamContext, trusted: Iterable[str] = ()) -> Report:
    head_seq = int((await js.stream_info(LEDGER_STREAM)).state.last_seq)
    check = LedgerCheck(tuple(trusted))
    async for msg in read_ledger(js, head_seq):
        check.feed(msg)
    return check.finish(head_seq)


async def run_verify(settings: Settings, *, as_json: bool, console: Console) -> int:
    """Exit code 0 when the ledger verifies clean, 1 when anything is wrong."""
    assert settings.nats_url, "no running system found (runtime.json) and LEDGER_NATS_URL unset"
    creds = settings.creds_for("auditor") or settings.creds_for("admin")
    nc = await connect(settings.nats_url, creds, name="verify")
    try:
        trusted = trusted_keys(settings.writer_public_key, settings.data_dir)
        report = await verify_ledger(nc.jetstream(), trusted)
    finally:
        await nc.close()
    if as_json:
        console.print_json(json.dumps(report.as_dict()))
    else:
        _print(report, console)
    return 0 if report.ok else 1


def _print(report: Report, console: Console) -> None:
    table = Table(title="Ledger verification")
    table.add_column("check")
    table.add_column("value", justify="right")
    for name, value in (
        ("ledger head seq", report.head_seq),
        ("events read", report.events),
        ("patient chains", report.patients),
        ("seals", report.seals),
        ("events signed by the writer", report.signed_events),
    ):
        table.add_row(name, str(value))
    console.print(table)
    if not report.trusted_keys:
        console.print(
            "[yellow]no trusted writer key: event and seal keys were not checked[/yellow]"
        )
    first = report.first
    if first is None:
        console.print("[green]the ledger verifies clean[/green]")
        return
    console.print(
        f"[red]first bad seq {first.seq}[/red] ({first.kind}, patient {first.patient or '-'}): "
        f"{first.detail}"
    )
    for problem in sorted(report.problems, key=lambda p: p.seq)[:50]:
        console.print(
            f"  seq {problem.seq} {problem.kind} {problem.patient or '-'}: {problem.detail}"
        )
