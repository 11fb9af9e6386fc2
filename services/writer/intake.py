"""The writer: judges each submission, appends accepted events to LEDGER exactly once.

Correctness across several writer instances rests on JetStream, not on this process:
every append carries the patient's expected last sequence (optimistic concurrency over the
patient's subject wildcard) and `Nats-Msg-Id` = event_id. A stale cache can only cost a
retry, never a wrong chain, a lost event or a second entry.

An event_id names one event for ever: the writer knows every id in the ledger (event_ids.py)
and compares a resubmission's content with the stored event's (`submission_digest`), so an
identical resubmission is "duplicate" and anything else under a used id is rejected.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from nats.js import JetStreamContext
from nats.js.errors import APIError, NotFoundError

from events import (
    SPONSOR_SITE,
    TRIAL_PATIENT,
    ZERO_HASH,
    LedgerEvent,
    ProtocolParameters,
    ProtocolParametersSet,
    decode,
    seal_stored,
)
from events.catalogue import WRITER_ONLY_TYPES
from events.envelope import WRITER_FIELDS, text_problem
from events.intake_reply import BatchReply, EventVerdict, FieldProblem
from events.subjects import (
    LEDGER_STREAM,
    SAFETY_SITE,
    ledger_subject,
    parse_intake_subject,
    parse_ledger_subject,
    patient_wildcard,
    trial_level_wildcard,
)
from projections.common.calendar import parse_instant
from projections.common.field_error import FieldError
from projections.common.lru import Lru
from projections.fold.history import Recorded
from projections.intake.decision import (
    ID_IN_USE,
    Accepted,
    Decision,
    Duplicate,
    Rejected,
    Submission,
    admit,
    by_identity,
    envelope_decision,
    history_decision,
)
from projections.intake.rules import AeCheck, PatientFacts, extend_facts, patient_facts
from services.config.logs import message_context
from services.config.retry import retried
from services.ledger.io import read_stream
from services.security.seals import SIGNATURE_HEADER
from services.writer.event_ids import EventIdIndex
from services.writer.intake_json import SubmissionUnreadable, json_problems, parse_submission

log = structlog.get_logger("writer")

MAX_BATCH = 500
MAX_EVENT_BYTES = 256 * 1024


def _may_be_large(payload: bytes) -> bool:
    """Whether an event parsed from `payload` could exceed MAX_EVENT_BYTES as `json.dumps`
    writes it. Re-encoding grows JSON text at most 4.5-fold (`1e15` → `1000000000000000.0`;
    a non-ASCII character becomes a `\\u` escape at most 3 times its UTF-8 length; `,` and `:`
    gain a space), so a payload under a sixth of the limit need not be measured event by event."""
    return len(payload) * 6 > MAX_EVENT_BYTES


WRONG_LAST_SEQUENCE = 10071
# The latest calendar date anywhere on Earth (UTC+14): a site's "today" is never in our future.
EARLIEST_OFFSET = dt.timedelta(hours=14)

PatientKey = tuple[str, str, str]
# Safety officers submit acknowledgements on intake.<trial>._safety (never a site's intake).
SAFETY_INTAKE = SAFETY_SITE
# Where each trial's protocol parameters are: its trial-level entries of this type.
PARAMETERS_TYPE = "protocol_parameters_set"


@dataclass
class PatientLog:
    recorded: list[Recorded] = field(default_factory=list)
    last_seq: int = 0
    head_hash: str = ZERO_HASH
    seqs: dict[str, int] = field(default_factory=dict)
    _facts: PatientFacts | None = None
    # Another writer appended after `last_seq`: read what follows before judging again.
    stale: bool = False

    def add(self, entry: Recorded, head_hash: str) -> None:
        self.recorded.append(entry)
        self.last_seq = entry.seq
        self.head_hash = head_hash
        self.seqs[str(entry.event.event_id)] = entry.seq
        self._facts = extend_facts(self._facts, entry) if self._facts is not None else None

    def event(self, event_id: str) -> LedgerEvent | None:
        seq = self.seqs.get(event_id)
        return next((e.event for e in reversed(self.recorded) if e.seq == seq), None)

    def facts(self) -> PatientFacts:
        """The rules' view of the patient, kept up to date append by append."""
        if self._facts is None:
            self._facts = patient_facts(self.recorded)
        return self._facts


@dataclass
class GatheredFacts:
    """The decider's port (`projections.intake.decision.LedgerFacts`), answered from what the
    writer has read: before the patient's lock, the event stored under the submitted id (the
    id index); under it, the patient's history, which then also answers for the id."""

    known: tuple[int, LedgerEvent] | None = None
    log: PatientLog | None = None

    def stored(self, event_id: str) -> tuple[int, LedgerEvent] | None:
        if self.log is None:
            return self.known
        event = self.log.event(event_id)
        return None if event is None else (self.log.seqs[event_id], event)

    def history(self) -> list[Recorded]:
        return self.log.recorded if self.log is not None else []

    def patient(self) -> PatientFacts:
        return self.log.facts() if self.log is not None else patient_facts([])


@dataclass
class Counters:
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    conflicts: int = 0
    reloads: int = 0


def rejected(event_id: Any, errors: list[FieldError]) -> dict[str, Any]:
    # echoed only when it could be an id: never a megabyte, never text no encoder can write
    echo = isinstance(event_id, str) and len(event_id) <= 64 and text_problem(event_id) is None
    return EventVerdict(
        event_id=event_id if echo else None, status="rejected", errors=problems(errors)
    ).wire()


def problems(errors: list[FieldError]) -> list[FieldProblem]:
    return [FieldProblem(field=e.field, message=e.message) for e in errors]


def same_event(event: LedgerEvent, seq: int, stored: LedgerEvent) -> dict[str, Any]:
    """The verdict on `event` whose id the ledger already holds at `seq` as `stored`."""
    return reply(str(event.event_id), by_identity(event, seq, stored))


def reply(event_id: str, decision: Duplicate | Rejected) -> dict[str, Any]:
    """The wire verdict on a decision that appends nothing."""
    if isinstance(decision, Duplicate):
        return EventVerdict(event_id=event_id, status="duplicate", seq=decision.seq).wire()
    return rejected(event_id, list(decision.errors))


class LostRace(Exception):
    """Another writer appended to the patient first: read its tail and judge again."""


class Writer:
    """Judge and append. `handle(subject, payload)` is the whole intake contract."""

    def __init__(
        self,
        js: JetStreamContext,
        *,
        check_ae: AeCheck,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        cache_patients: int = 4096,
        cache_events: int = 100_000,
        max_retries: int = 64,
    ) -> None:
        self.js = js
        self.check_ae = check_ae
        self.now = now
        self.cache_patients = cache_patients
        self.cache_events = cache_events
        self.max_retries = max_retries
        # Every event_id in the ledger → its seq: an id is stored at most once, whatever
        # patient a resubmission names (event_ids.py says why it is complete and compact).
        self.index = EventIdIndex()
        self.loaded_upto = 0
        self.trials: dict[str, ProtocolParametersSet] = {}
        # the patients' histories most recently used: at most `cache_patients` of them and
        # `cache_events` events in all, but always the one just read
        self.patients: Lru[PatientKey, PatientLog] = Lru(
            cache_patients,
            max_weight=cache_events,
            weight=lambda patient: len(patient.recorded),
            min_keys=1,
        )
        # a lock per patient being appended to, dropped when no append holds or awaits it
        self.locks: dict[PatientKey, tuple[asyncio.Lock, list[int]]] = {}
        self.counters = Counters()
        # when an unknown trial was last looked up (the most recent 10,000 trials)
        self._trial_misses: Lru[str, float] = Lru(10_000)
        self._inflight: set[str] = set()
        self.on_append: list[Callable[[int, dict[str, Any]], None]] = []
        # Signs each appended event's hash (header SIGNATURE_HEADER): the writer's key, so an
        # event published to the stream by anyone else is told apart by `trial-ledger verify`.
        self.signer: Callable[[str], str] | None = None

    # -- start-up -----------------------------------------------------------------------
    async def load(self) -> None:
        """Index every event_id already in the ledger, and every trial's parameters."""
        async for msg in read_stream(self.js, headers_only=True):
            event_id = (msg.headers or {}).get("Nats-Msg-Id")
            if event_id:
                self.index.add(event_id, msg.seq)
            self.loaded_upto = msg.seq
        async for msg in read_stream(self.js, trial_level_wildcard(PARAMETERS_TYPE)):
            self._learn_trial(decode(msg.json()))
        log.info("writer_loaded", events=len(self.index), trials=sorted(self.trials))

    async def _refresh_trial(self, trial_id: str) -> None:
        """Re-read a trial's parameters; a burst of submissions for an unknown trial reads once."""
        now = time.monotonic()
        last = self._trial_misses.peek(trial_id)
        if last is not None and now - last < 1.0:
            return
        self._trial_misses.put(trial_id, now)
        try:
            subject = ledger_subject(trial_id, SPONSOR_SITE, TRIAL_PATIENT, PARAMETERS_TYPE)
        except ValueError:
            return  # not a trial id at all: no parameters to read
        async for msg in read_stream(self.js, subject):
            self._learn_trial(decode(msg.json()))

    def observe(self, seq: int, subject: str, event_id: str | None) -> None:
        """Another writer appended `seq`: index it and drop our now-stale patient cache."""
        if event_id:
            # indexed even when it is our own append: a publish that timed out may have stored it
            own = event_id in self._inflight or self.index.get(event_id) == seq
            self.index.add(event_id, seq)
            if own:
                return  # already reflected in the cache
        with contextlib.suppress(ValueError):  # not a ledger subject: no patient of ours
            key = parse_ledger_subject(subject)[:3]
            cached = self.patients.peek(key)
            if cached is not None and seq > cached.last_seq:
                cached.stale = True

    def _learn_trial(self, event: LedgerEvent) -> None:
        if isinstance(event, ProtocolParametersSet):
            known = self.trials.get(event.trial_id)
            if known is None or event.data.version > known.data.version:
                self.trials[event.trial_id] = event

    # -- intake -------------------------------------------------------------------------
    async def handle(self, subject: str, payload: bytes) -> dict[str, Any]:
        """One submission (an event or `{"events": [...]}`) → its reply (DESIGN.md)."""
        try:
            trial_id, site_id = parse_intake_subject(subject)
        except ValueError as exc:
            return rejected(None, [FieldError("subject", str(exc))])
        try:
            body = parse_submission(payload)
        except SubmissionUnreadable as exc:
            return rejected(None, [FieldError("body", str(exc))])
        if isinstance(body, dict) and "events" in body and "event_id" not in body:
            items = body["events"]
            if not isinstance(items, list) or not items:
                return rejected(
                    None, [FieldError("events", "a batch is a non-empty list of events")]
                )
            if len(items) > MAX_BATCH:
                return rejected(
                    None, [FieldError("events", f"a batch holds at most {MAX_BATCH} events")]
                )
            results = await self._judge_batch(trial_id, site_id, items, _may_be_large(payload))
            return BatchReply.model_validate({"results": results}).wire()
        with message_context(trial_id=trial_id, site_id=site_id, event=body):
            return await self._judge(trial_id, site_id, body, _may_be_large(payload))

    async def _judge_batch(
        self, trial_id: str, site_id: str, items: list[Any], measure: bool = True
    ) -> list[dict[str, Any]]:
        """Each event judged on its own; one patient's events in order, patients in parallel."""
        groups: dict[Any, list[int]] = {}
        for position, item in enumerate(items):
            key = item.get("patient_id") if isinstance(item, dict) else None
            groups.setdefault(key if isinstance(key, str) else position, []).append(position)
        results: list[dict[str, Any]] = [{} for _ in items]

        async def run(positions: list[int]) -> None:
            for position in positions:
                # each event's log lines name it (STYLE.md rule 9), in its own task's context
                with message_context(trial_id=trial_id, site_id=site_id, event=items[position]):
                    results[position] = await self._judge(
                        trial_id, site_id, items[position], measure
                    )

        await asyncio.gather(*(run(positions) for positions in groups.values()))
        return results

    async def _judge(
        self, trial_id: str, site_id: str, raw: Any, measure: bool = True
    ) -> dict[str, Any]:
        try:
            result = await self._judge_inner(trial_id, site_id, raw, measure)
        except Exception:
            # Never a silent drop: the submitter gets an answer, and resubmitting the same
            # event (same event_id) later tells whether it was recorded.
            log.exception("event_not_judged", trial_id=trial_id)
            event_id = raw.get("event_id") if isinstance(raw, dict) else None
            result = rejected(
                event_id,
                [
                    FieldError(
                        "event",
                        "the writer could not complete this submission; resubmit the same "
                        "event (same event_id) to learn whether it was recorded",
                    )
                ],
            )
        status = result["status"]
        setattr(self.counters, status, getattr(self.counters, status) + 1)
        return result

    async def _judge_inner(
        self, trial_id: str, site_id: str, raw: Any, measure: bool = True
    ) -> dict[str, Any]:
        if not isinstance(raw, dict):
            return rejected(None, [FieldError("event", "an event is a JSON object")])
        event_id = raw.get("event_id")
        problems = json_problems(raw)
        if problems:
            return rejected(event_id, problems)
        if measure and len(json.dumps(raw)) > MAX_EVENT_BYTES:
            return rejected(
                event_id, [FieldError("event", f"an event is at most {MAX_EVENT_BYTES} bytes")]
            )
        event = admit(raw)
        if isinstance(event, Rejected):
            return rejected(event_id, list(event.errors))
        event_id = str(event.event_id)
        if event.trial_id not in self.trials:
            await self._refresh_trial(event.trial_id)  # another writer may have registered it
        decision = envelope_decision(
            Submission(trial_id, site_id, event),
            GatheredFacts(known=await self._known(event)),
            self.trials.get(event.trial_id),
            self._today(),
        )
        if decision is not None:
            assert not isinstance(decision, Accepted)  # decided on history only
            return reply(event_id, decision)
        return await self._append(event)

    def _today(self) -> dt.date:
        return (self.now() + EARLIEST_OFFSET).date()

    async def _known(self, event: LedgerEvent) -> tuple[int, LedgerEvent] | None:
        """The event stored under this id and its seq, or None for an id never used."""
        seq = self.index.get(str(event.event_id))
        if seq is None:
            return None
        stored = await self._stored_at(seq)
        if stored is None or str(stored.event_id) != str(event.event_id):
            return None  # not where the index says: the patient's history will decide
        return seq, stored

    async def _stored_at(self, seq: int) -> LedgerEvent | None:
        try:
            msg = await self.js.get_msg(LEDGER_STREAM, seq, direct=True)
        except NotFoundError:
            return None
        return decode(json.loads(msg.data or b"{}"))

    def parameters(self, trial_id: str) -> ProtocolParameters:
        known = self.trials.get(trial_id)
        return known.data.parameters if known else ProtocolParameters()

    # -- append -------------------------------------------------------------------------
    async def append_writer_event(self, event: LedgerEvent) -> dict[str, Any]:
        """Append an event the writer makes itself (a seal): never submitted, same chain rules."""
        if event.event_type not in WRITER_ONLY_TYPES:
            raise ValueError(f"{event.event_type} events come through the intake")
        return await self._append(event)

    async def _append(self, event: LedgerEvent) -> dict[str, Any]:
        key: PatientKey = event.patient_key
        event_id = str(event.event_id)
        unacknowledged = False

        async def attempt() -> dict[str, Any]:
            nonlocal unacknowledged
            patient = await self._patient(key)
            decision = self._decide_on_history(patient, event)
            if not isinstance(decision, Accepted):
                stored = patient.event(event_id)
                if unacknowledged and isinstance(decision, Duplicate) and stored is not None:
                    # our append landed though its acknowledgement was lost
                    return EventVerdict(
                        event_id=event_id, status="accepted", seq=decision.seq, hash=stored.hash
                    ).wire()
                return reply(event_id, decision)
            warnings = list(decision.warnings)
            try:
                outcome = await self._publish(key, patient, event)
            except TimeoutError:
                # stored or not: the patient's tail (read next) tells, and a second
                # publish of an unstored event is deduplicated by JetStream if it lands
                unacknowledged = True
                raise
            if outcome is None:
                patient.stale = True  # another writer appended: read what it added
                raise LostRace
            if warnings and outcome["status"] == "accepted":  # additive to the reply
                outcome = EventVerdict(**outcome, warnings=problems(warnings)).wire()
            return outcome

        async with self._patient_lock(key):
            try:
                # a random pause, growing with each lost race, so two replicas that keep
                # appending to one patient take turns instead of one starving
                return await retried(
                    attempt,
                    retry_on=(LostRace, TimeoutError),
                    attempts=self.max_retries,
                    first_wait=0.002,
                    longest_wait=0.05,
                    jitter=True,
                )
            except (LostRace, TimeoutError):
                return rejected(
                    event_id, [FieldError("event", "the patient's history kept changing; retry")]
                )

    def _decide_on_history(self, patient: PatientLog, event: LedgerEvent) -> Decision:
        """The decider's second half on the history read for this very append, whose expected
        last sequence makes a replica that read a stale history re-read."""
        if isinstance(event, ProtocolParametersSet):
            for entry in patient.recorded:
                self._learn_trial(entry.event)
        return history_decision(
            event,
            GatheredFacts(log=patient),
            self.trials.get(event.trial_id),
            self._today(),
            self.check_ae,
        )

    async def _publish(
        self, key: PatientKey, patient: PatientLog, event: LedgerEvent
    ) -> dict[str, Any] | None:
        event_id = str(event.event_id)
        recorded_at = self.now().isoformat().replace("+00:00", "Z")
        body = event.model_dump(mode="json", exclude=set(WRITER_FIELDS))
        stored = seal_stored(body, recorded_at=recorded_at, prev_hash=patient.head_hash)
        payload = json.dumps(stored, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {
            "Nats-Msg-Id": event_id,
            "Nats-Expected-Last-Subject-Sequence": str(patient.last_seq),
            "Nats-Expected-Last-Subject-Sequence-Subject": patient_wildcard(*key),
        }
        if self.signer is not None:
            headers[SIGNATURE_HEADER] = self.signer(stored["hash"])
        subject = ledger_subject(*key, event.event_type)
        self._inflight.add(event_id)
        try:
            try:
                ack = await self.js.publish(subject, payload, headers=headers, timeout=10)
            except APIError as exc:
                if exc.err_code == WRONG_LAST_SEQUENCE:
                    self.counters.conflicts += 1
                    return None
                self.patients.pop(key)
                raise
            except Exception:
                # a timeout may hide a stored append: read the patient's tail before judging
                patient.stale = True
                raise
            if ack.duplicate:
                # stored within JetStream's window, perhaps for another patient or site
                self.index.add(event_id, ack.seq)
                self.patients.pop(key)
                original = await self._stored_at(ack.seq)
                if original is None:
                    return rejected(event_id, [FieldError("event_id", ID_IN_USE)])
                return same_event(event, ack.seq, original)
            # the stored form differs from the judged event only in the writer's fields
            stored_event = event.model_copy(
                update={
                    "recorded_at": parse_instant(recorded_at),
                    "prev_hash": stored["prev_hash"],
                    "hash": stored["hash"],
                }
            )
            patient.add(Recorded(ack.seq, stored_event), stored["hash"])
            self.index.add(event_id, ack.seq)
            self._learn_trial(stored_event)
            for listener in self.on_append:
                listener(ack.seq, stored)
            log.debug(
                "event_appended", event_id=event_id, seq=ack.seq, trial_id=key[0], patient_id=key[2]
            )
            return EventVerdict(
                event_id=event_id, status="accepted", seq=ack.seq, hash=stored["hash"]
            ).wire()
        finally:
            self._inflight.discard(event_id)

    async def _patient(self, key: PatientKey) -> PatientLog:
        """The patient's history, read once and then only what others appended after it
        (callers hold the patient's lock)."""
        cached = self.patients.get(key)
        if cached is not None and not cached.stale:
            return cached
        patient = cached or PatientLog()
        patient.stale = False
        self.counters.reloads += 1
        async for msg in read_stream(
            self.js, patient_wildcard(*key), start_seq=patient.last_seq + 1
        ):
            stored = msg.json()
            patient.add(Recorded(msg.seq, decode(stored)), str(stored.get("hash", ZERO_HASH)))
        self.patients.put(key, patient, evict=False)
        self.patients.recount()  # histories grow as appends land
        self.patients.evict()
        return patient

    @contextlib.asynccontextmanager
    async def _patient_lock(self, key: PatientKey) -> AsyncIterator[None]:
        """One append at a time per patient; the lock lives only while someone holds or
        awaits it, so the writer keeps no lock per patient it ever saw."""
        lock, users = self.locks.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self.locks[key]

    def stats(self) -> Mapping[str, int]:
        return {
            "accepted": self.counters.accepted,
            "duplicate": self.counters.duplicate,
            "rejected": self.counters.rejected,
            "indexed": len(self.index),
        }
