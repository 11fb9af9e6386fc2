"""`trial-ledger verify`: replay the whole ledger and prove nothing in it was altered.

Checked for every stored message, in seq order: seqs contiguous from 1 to the head; the body
is JSON naming the same trial/site/patient/type as its subject; `hash` equals the hash of the
body (events.event_hash); `prev_hash` links to the patient's previous event; `event_id` is
unique and equals the Nats-Msg-Id header; the writer's signature header verifies against a
trusted key. Every `ledger_sealed` event: signed by a trusted key, its `heads` (and digest),
`event_count` and `previous_seal_hash` equal what the replay computes at its `upto_seq`.

And what a replay alone cannot see (issue 14, items 15-16):
- truncation: the ledger must reach every outside mark (services.security.evidence) — the
  writer's high-water mark, its latest signed seal, each read-model checkpoint — and hold the
  event each names; the missing seq range is reported;
- removed seals: with a trusted key, every trial's events must be covered by a seal of that
  key, except a tail younger than the seal interval allows (`unsealed_grace` seconds and
  fewer than MAX_UNSEALED_EVENTS). A rewrite by someone without the key cannot seal.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from rich.console import Console

from events import ZERO_HASH, event_hash
from events.subjects import LEDGER_STREAM, parse_ledger_subject
from services.config.settings import Settings
from services.ledger.connection import connect
from services.ledger.direct import read_direct
from services.ledger.io import Sleep, StoredMessage
from services.security.completeness import UNSEALED_GRACE_SECONDS, missing_beyond, unsealed_tails
from services.security.evidence import Mark, checkpoint_marks, writer_marks
from services.security.seals import (
    SIGNATURE_HEADER,
    event_signed_by,
    heads_digest,
    order_digest,
    read_public_key_file,
    seal_signature_valid,
    trusted_keys,
)
from services.security.verify_report import Problem, Report, print_report

SEAL_TYPE = "ledger_sealed"


class LedgerCheck:
    """Feed every stored message in seq order, then `finish(head_seq)`."""

    def __init__(
        self,
        trusted: tuple[str, ...],
        marks: Iterable[Mark] = (),
        *,
        now: dt.datetime | None = None,
        unsealed_grace: float = UNSEALED_GRACE_SECONDS,
    ) -> None:
        self.report = Report(trusted_keys=trusted)
        self.marks = tuple(marks)
        self.report.evidence = [f"{m.source}: seq {m.seq}" for m in self.marks]
        self.marked_hashes: dict[int, str | None] = {m.seq: None for m in self.marks if m.hash}
        self.now = now or dt.datetime.now(dt.UTC)
        self.unsealed_grace = unsealed_grace
        # per trial: (seq, recorded_at) of its events after its last trusted seal's upto_seq
        self.unsealed: dict[str, list[tuple[int, str]]] = {}
        self.expected = 1
        self.heads: dict[str, dict[str, str]] = {}  # trial → {patient key: head hash}
        self.counts: dict[str, int] = {}
        # (seq, trial, patient key, head before): lets a seal be checked at its upto_seq.
        self.changes: list[tuple[int, str, str, str | None]] = []
        self.seal_hashes: dict[str, list[tuple[int, str]]] = {}
        self.event_ids: dict[str, int] = {}
        # per trial: (seq, hash) since its latest seal's upto_seq (seals.order_digest)
        self.order: dict[str, list[tuple[int, str]]] = {}

    def problem(self, seq: int, kind: str, detail: str, patient: str | None = None) -> None:
        self.report.problems.append(Problem(seq, kind, detail, patient))

    def feed(self, msg: StoredMessage) -> None:
        seq = msg.seq
        if seq != self.expected:
            self.problem(self.expected, "missing", f"seqs {self.expected}..{seq - 1} are missing")
        self.expected = seq + 1
        self.report.events += 1
        try:
            trial, site, patient, event_type = parse_ledger_subject(msg.subject)
        except ValueError as exc:
            self.problem(seq, "bad_subject", str(exc))
            return
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
        if seq in self.marked_hashes:
            self.marked_hashes[seq] = stated
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
        else:
            self.unsealed.setdefault(trial, []).append((seq, str(stored.get("recorded_at"))))
        self.order.setdefault(trial, []).append((seq, stated))

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
        signed = seal_signature_valid(data)
        if not signed:
            self.problem(seq, "bad_seal_signature", "the seal's signature does not verify", key)
        upto = int(data["upto_seq"])
        if upto >= seq:
            self.problem(seq, "bad_seal", f"upto_seq {upto} is not before the seal", key)
            return
        if signed and trusted and data.get("public_key") in trusted:
            # a seal that turns out wrong below is reported there; it still proves the key
            # sealed this far, so only what comes after it counts as unsealed
            pending = self.unsealed.get(trial, [])
            self.unsealed[trial] = [entry for entry in pending if entry[0] > upto]
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
        self._check_order(seq, trial, data, upto, key)
        earlier = [h for s, h in self.seal_hashes.get(trial, []) if s <= upto]
        if data.get("previous_seal_hash") != (earlier[-1] if earlier else None):
            self.problem(
                seq, "seal_chain_broken", "previous_seal_hash is not the previous seal", key
            )

    def _check_order(self, seq: int, trial: str, data: dict[str, Any], upto: int, key: str) -> None:
        """The trial's events since the previous seal stand in the order this seal signed."""
        pending = self.order.get(trial, [])
        covered = [entry for entry in pending if entry[0] <= upto]
        self.order[trial] = [entry for entry in pending if entry[0] > upto]
        signed = data.get("order_digest")
        if signed is None or signed == order_digest(covered):
            return  # seals from before order digests commit to heads and counts only
        first = covered[0][0] if covered else upto
        self.problem(
            seq,
            "seal_order_mismatch",
            f"the trial's events in seqs {first}..{upto} are not in the order the seal signed "
            "(events moved or swapped between patients)",
            key,
        )

    def finish(self, head_seq: int) -> Report:
        if self.expected <= head_seq:
            self.problem(self.expected, "missing", f"seqs {self.expected}..{head_seq} are missing")
        for problem in missing_beyond(self.marks, self.marked_hashes, head_seq, self.report):
            self.problem(problem.seq, problem.kind, problem.detail, problem.patient)
        if self.report.trusted_keys:
            for problem in unsealed_tails(self.unsealed, self.now, self.unsealed_grace):
                self.problem(problem.seq, problem.kind, problem.detail, problem.patient)
        self.report.head_seq = head_seq
        self.report.patients = sum(len(heads) for heads in self.heads.values())
        return self.report


async def read_ledger(
    js: JetStreamContext,
    head_seq: int,
    *,
    idle: float = 2.0,
    batch: int = 1024,
    sleep: Sleep = asyncio.sleep,
) -> AsyncIterator[StoredMessage]:
    """Every readable message up to `head_seq`. Unlike `read_stream` it never waits for a
    message the server cannot deliver (a corrupt one): it stops after `idle` seconds."""
    if head_seq == 0:
        return
    del sleep  # kept for callers; the direct read waits on replies, not on a consumer leader
    async for messages in read_direct(
        js,
        stream=LEDGER_STREAM,
        stop_seq=head_seq,
        batch=batch,
        timeout=idle,
        stop_when_stalled=True,
    ):
        for msg in messages:
            yield msg


async def verify_ledger(
    js: JetStreamContext,
    trusted: Iterable[str] = (),
    marks: Iterable[Mark] = (),
    *,
    unsealed_grace: float = UNSEALED_GRACE_SECONDS,
) -> Report:
    try:
        head_seq = int((await js.stream_info(LEDGER_STREAM)).state.last_seq)
    except NotFoundError:
        head_seq = 0  # a deleted stream is the shortest ledger of all
    check = LedgerCheck(tuple(trusted), marks, unsealed_grace=unsealed_grace)
    async for msg in read_ledger(js, head_seq):
        check.feed(msg)
    return check.finish(head_seq)


async def verify_system(
    settings: Settings,
    *,
    public_key: Path | None = None,
    unsealed_grace: float = UNSEALED_GRACE_SECONDS,
) -> Report:
    """The ledger checked against the trusted key(s) and every outside mark found.

    `public_key`: the auditor's pinned writer key (PEM or base64 file); then no key named by
    the ledger, the environment or the data dir is trusted, only this one."""
    assert settings.nats_url, "no running system found (runtime.json) and LEDGER_NATS_URL unset"
    if public_key is not None:
        trusted: tuple[str, ...] = (read_public_key_file(public_key),)
    else:
        trusted = trusted_keys(settings.writer_public_key, settings.data_dir)
    marks, notes = writer_marks(settings.data_dir, trusted)
    checkpoints, checkpoint_notes = await checkpoint_marks(settings.database_url)
    creds = settings.creds_for("auditor") or settings.creds_for("admin")
    nc = await connect(settings.nats_url, creds, name="verify")
    try:
        report = await verify_ledger(
            nc.jetstream(), trusted, [*marks, *checkpoints], unsealed_grace=unsealed_grace
        )
    finally:
        await nc.close()
    report.pinned = public_key is not None
    report.notes = [*notes, *checkpoint_notes]
    return report


async def run_verify(
    settings: Settings,
    *,
    as_json: bool,
    console: Console,
    public_key: Path | None = None,
    unsealed_grace: float = UNSEALED_GRACE_SECONDS,
) -> int:
    """Exit code 0 when the ledger verifies clean, 1 when anything is wrong."""
    report = await verify_system(settings, public_key=public_key, unsealed_grace=unsealed_grace)
    if as_json:
        console.print_json(json.dumps(report.as_dict()))
    else:
        print_report(report, console)
    return 0 if report.ok else 1
