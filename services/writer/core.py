"""The writer: judges each submission, appends accepted events to LEDGER exactly once.

Correctness across several writer instances rests on JetStream, not on this process:
every append carries the patient's expected last sequence (optimistic concurrency over the
patient's subject wildcard) and `Nats-Msg-Id` = event_id. A stale cache can only cost a
retry, never a wrong chain, a lost event or a second entry.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from nats.js import JetStreamContext
from nats.js.errors import APIError
from pydantic import ValidationError

from events import (
    EVENT_CLASSES,
    SPONSOR_SITE,
    TRIAL_PATIENT,
    ZERO_HASH,
    LedgerEvent,
    NewerSchemaVersion,
    ProtocolParameters,
    ProtocolParametersSet,
    SaeAcknowledged,
    UnknownEventType,
    decode,
    seal_stored,
)
from events.catalogue import TRIAL_LEVEL_TYPES, WRITER_ONLY_TYPES
from events.subjects import ledger_subject, parse_intake_subject, patient_wildcard
from projections.history import Recorded
from projections.intake_rules import (
    AeCheck,
    FieldError,
    PatientFacts,
    check_event,
    error_path,
    extend_facts,
    patient_facts,
    trial_date_errors,
)
from projections.intake_warnings import baseline_warnings
from projections.sae_alerts import acknowledgement_errors
from services.ledger_io import read_stream
from services.logs import message_context
from services.security.seals import SIGNATURE_HEADER

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
WRITER_FIELDS = ("recorded_at", "prev_hash", "hash")
# The latest calendar date anywhere on Earth (UTC+14): a site's "today" is never in our future.
EARLIEST_OFFSET = dt.timedelta(hours=14)

PatientKey = tuple[str, str, str]
# Safety officers submit acknowledgements on intake.<trial>._safety (never a site's intake).
SAFETY_INTAKE = "_safety"


@dataclass
class PatientLog:
    recorded: list[Recorded] = field(default_factory=list)
    last_seq: int = 0
    head_hash: str = ZERO_HASH
    seqs: dict[str, int] = field(default_factory=dict)
    _facts: PatientFacts | None = None

    def add(self, entry: Recorded, head_hash: str) -> None:
        self.recorded.append(entry)
        self.last_seq = entry.seq
        self.head_hash = head_hash
        self.seqs[str(entry.event.event_id)] = entry.seq
        self._facts = extend_facts(self._facts, entry) if self._facts is not None else None

    def facts(self) -> PatientFacts:
        """The rules' view of the patient, kept up to date append by append."""
        if self._facts is None:
            self._facts = patient_facts(self.recorded)
        return self._facts


class BoundedIndex:
    """The most recent `size` event_ids with their seqs (least recently set evicted first)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._ids: OrderedDict[str, int] = OrderedDict()

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def __getitem__(self, event_id: str) -> int:
        return self._ids[event_id]

    def __setitem__(self, event_id: str, seq: int) -> None:
        self._ids[event_id] = seq
        self._ids.move_to_end(event_id)
        if len(self._ids) > self.size:
            self._ids.popitem(last=False)

    def __len__(self) -> int:
        return len(self._ids)

    def get(self, event_id: str, default: int | None = None) -> int | None:
        return self._ids.get(event_id, default)

    def setdefault(self, event_id: str, seq: int) -> int:
        if event_id not in self._ids:
            self[event_id] = seq
        return self._ids[event_id]

    def clear(self) -> None:
        self._ids.clear()


@dataclass
class Counters:
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    conflicts: int = 0
    reloads: int = 0


def rejected(event_id: Any, errors: list[FieldError]) -> dict[str, Any]:
    return {
        "event_id": event_id if isinstance(event_id, str) else None,
        "status": "rejected",
        "errors": [e.as_dict() for e in errors],
    }


def validation_errors(exc: ValidationError) -> list[FieldError]:
    return [FieldError(error_path(e["loc"]), e["msg"]) for e in exc.errors(include_url=False)]


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
        index_size: int = 50_000,
        max_retries: int = 20,
    ) -> None:
        self.js = js
        self.check_ae = check_ae
        self.now = now
        self.cache_patients = cache_patients
        self.cache_events = cache_events
        self._cached_events = 0
        self.max_retries = max_retries
        # Recent event_ids → seq: the fast path for duplicates. Bounded, so memory does not grow
        # with the ledger; the patient's own history (below) answers for anything older.
        self.index: BoundedIndex = BoundedIndex(index_size)
        self.trials: dict[str, ProtocolParametersSet] = {}
        self.patients: OrderedDict[PatientKey, PatientLog] = OrderedDict()
        self.locks: dict[PatientKey, asyncio.Lock] = {}
        self.counters = Counters()
        self._trial_misses: dict[str, float] = {}
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
                self.index[event_id] = msg.seq
        async for msg in read_stream(
            self.js, f"ledger.*.{SPONSOR_SITE}.{TRIAL_PATIENT}.protocol_parameters_set"
        ):
            self._learn_trial(decode(msg.json()))
        log.info("writer_loaded", events=len(self.index), trials=sorted(self.trials))

    async def _refresh_trial(self, trial_id: str) -> None:
        """Re-read a trial's parameters; a burst of submissions for an unknown trial reads once."""
        now = time.monotonic()
        if now - self._trial_misses.get(trial_id, -10.0) < 1.0:
            return
        self._trial_misses[trial_id] = now
        if len(self._trial_misses) > 10_000:
            self._trial_misses.clear()
        subject = f"ledger.{trial_id}.{SPONSOR_SITE}.{TRIAL_PATIENT}.protocol_parameters_set"
        async for msg in read_stream(self.js, subject):
            self._learn_trial(decode(msg.json()))

    def observe(self, seq: int, subject: str, event_id: str | None) -> None:
        """Another writer appended `seq`: index it and drop our now-stale patient cache."""
        if event_id:
            if event_id in self._inflight or self.index.get(event_id) == seq:
                return  # our own append, already reflected in the cache
            self.index.setdefault(event_id, seq)
        parts = subject.split(".")
        if len(parts) == 5:
            key = (parts[1], parts[2], parts[3])
            cached = self.patients.get(key)
            if cached is not None and seq > cached.last_seq:
                del self.patients[key]

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
            body = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            return rejected(None, [FieldError("body", f"not valid JSON: {exc}")])
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
            return {
                "results": await self._judge_batch(trial_id, site_id, items, _may_be_large(payload))
            }
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
        result = await self._judge_inner(trial_id, site_id, raw, measure)
        status = result["status"]
        setattr(self.counters, status, getattr(self.counters, status) + 1)
        return result

    async def _judge_inner(
        self, trial_id: str, site_id: str, raw: Any, measure: bool = True
    ) -> dict[str, Any]:
        if not isinstance(raw, dict):
            return rejected(None, [FieldError("event", "an event is a JSON object")])
        event_id = raw.get("event_id")
        if isinstance(event_id, str) and event_id in self.index:
            return {"event_id": event_id, "status": "duplicate", "seq": self.index[event_id]}
        if measure and len(json.dumps(raw)) > MAX_EVENT_BYTES:
            return rejected(
                event_id, [FieldError("event", f"an event is at most {MAX_EVENT_BYTES} bytes")]
            )
        forbidden = [
            FieldError(name, "set by the writer, never by a site")
            for name in WRITER_FIELDS
            if name in raw
        ]
        if forbidden:
            return rejected(event_id, forbidden)
        if raw.get("type") in WRITER_ONLY_TYPES:
            return rejected(
                event_id,
                [FieldError("type", f"{raw['type']} events are written by the writer only")],
            )
        try:
            event = decode(raw, mode="strict")
        except UnknownEventType:
            known = ", ".join(sorted(EVENT_CLASSES))
            return rejected(
                event_id,
                [FieldError("type", f"unknown event type {raw.get('type')!r}; known: {known}")],
            )
        except NewerSchemaVersion as exc:
            return rejected(event_id, [FieldError("schema_version", str(exc))])
        except ValidationError as exc:
            return rejected(event_id, validation_errors(exc))
        event_id = str(event.event_id)
        if event.trial_id not in self.trials:
            await self._refresh_trial(event.trial_id)  # another writer may have registered it
        errors = self._envelope_rules(trial_id, site_id, event)
        if errors:
            if event.site_id == site_id and event.trial_id == trial_id:
                # a resubmission long after the fact may now fail a rule: the patient's own
                # history is the authority on whether this event is already in the ledger
                known = (await self._patient(event.patient_key)).seqs.get(event_id)
                if known is not None:
                    return {"event_id": event_id, "status": "duplicate", "seq": known}
            return rejected(event_id, errors)
        return await self._append(event)

    def _envelope_rules(self, trial_id: str, site_id: str, event: LedgerEvent) -> list[FieldError]:
        errors: list[FieldError] = []
        if event.trial_id != trial_id:
            errors.append(
                FieldError(
                    "trial_id", f"submitted on trial {trial_id}'s intake but names {event.trial_id}"
                )
            )
        acknowledgement = event.event_type == "sae_acknowledged"
        if site_id == SAFETY_INTAKE:
            if not acknowledgement:
                errors.append(
                    FieldError(
                        "type", "the safety officers' intake takes sae_acknowledged events only"
                    )
                )
        elif acknowledgement:
            errors.append(
                FieldError(
                    "type",
                    f"acknowledgements come from safety officers, on intake.{trial_id}.{SAFETY_INTAKE}",
                )
            )
        elif event.site_id != site_id:
            errors.append(
                FieldError(
                    "site_id",
                    f"site {site_id} may only submit events of its own site, not {event.site_id}",
                )
            )
        trial_level = event.event_type in TRIAL_LEVEL_TYPES
        if trial_level != (event.site_id == SPONSOR_SITE and event.patient_id == TRIAL_PATIENT):
            errors.append(
                FieldError(
                    "site_id",
                    f"trial-level events use site {SPONSOR_SITE} and patient {TRIAL_PATIENT}; patient events never do",
                )
            )
        params = self.trials.get(event.trial_id)
        if trial_level:
            errors += trial_date_errors(event, (self.now() + EARLIEST_OFFSET).date())
        if isinstance(event, ProtocolParametersSet):
            current = params.data.version if params else 0
            if event.data.version <= current:
                errors.append(
                    FieldError(
                        "data.version", f"parameters version must be above the current {current}"
                    )
                )
        elif params is None:
            errors.append(
                FieldError(
                    "trial_id",
                    f"unknown trial {event.trial_id}: its protocol parameters are not in the ledger",
                )
            )
        elif params.data.parameters.sites and event.site_id not in params.data.parameters.sites:
            errors.append(
                FieldError("site_id", f"{event.site_id} is not a site of trial {event.trial_id}")
            )
        return errors

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
        lock = self.locks.setdefault(key, asyncio.Lock())
        async with lock:
            for _attempt in range(self.max_retries):
                patient = await self._patient(key)
                if event_id in patient.seqs:
                    return {
                        "event_id": event_id,
                        "status": "duplicate",
                        "seq": patient.seqs[event_id],
                    }
                warnings: list[FieldError] = []
                if event.event_type not in TRIAL_LEVEL_TYPES:
                    today = (self.now() + EARLIEST_OFFSET).date()
                    facts = patient.facts()
                    errors = check_event(
                        facts, event, self.parameters(event.trial_id), today, self.check_ae
                    )
                    if isinstance(event, SaeAcknowledged):  # only an alert ever raised
                        errors += acknowledgement_errors(patient.recorded, event, today)
                    if errors:
                        return rejected(event_id, errors)
                    warnings = baseline_warnings(facts, event, self.parameters(event.trial_id))
                outcome = await self._publish(key, patient, event)
                if outcome is not None:
                    if warnings and outcome["status"] == "accepted":  # additive to the reply
                        outcome["warnings"] = [w.as_dict() for w in warnings]
                    return outcome
                self.patients.pop(key, None)  # stale: another writer appended; re-read
        return rejected(
            event_id, [FieldError("event", "the patient's history kept changing; retry")]
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
                self.patients.pop(key, None)
                raise
            except Exception:
                # a timeout may hide a stored append: forget what we think the head is
                self.patients.pop(key, None)
                raise
            if ack.duplicate:
                self.index[event_id] = ack.seq
                self.patients.pop(key, None)
                return {"event_id": event_id, "status": "duplicate", "seq": ack.seq}
            # the stored form differs from the judged event only in the writer's fields
            stored_event = event.model_copy(
                update={
                    "recorded_at": dt.datetime.fromisoformat(recorded_at.replace("Z", "+00:00")),
                    "prev_hash": stored["prev_hash"],
                    "hash": stored["hash"],
                }
            )
            patient.add(Recorded(ack.seq, stored_event), stored["hash"])
            self.index[event_id] = ack.seq
            self._learn_trial(stored_event)
            for listener in self.on_append:
                listener(ack.seq, stored)
            log.debug(
                "event_appended", event_id=event_id, seq=ack.seq, trial_id=key[0], patient_id=key[2]
            )
            return {
                "event_id": event_id,
                "status": "accepted",
                "seq": ack.seq,
                "hash": stored["hash"],
            }
        finally:
            self._inflight.discard(event_id)

    async def _patient(self, key: PatientKey) -> PatientLog:
        cached = self.patients.get(key)
        if cached is not None:
            self.patients.move_to_end(key)
            return cached
        patient = PatientLog()
        self.counters.reloads += 1
        async for msg in read_stream(self.js, patient_wildcard(*key)):
            stored = msg.json()
            patient.add(Recorded(msg.seq, decode(stored)), str(stored.get("hash", ZERO_HASH)))
        self.patients[key] = patient
        self._cached_events = sum(len(p.recorded) for p in self.patients.values())
        while len(self.patients) > 1 and (
            len(self.patients) > self.cache_patients or self._cached_events > self.cache_events
        ):
            _, evicted = self.patients.popitem(last=False)
            self._cached_events -= len(evicted.recorded)
        return patient

    def stats(self) -> Mapping[str, int]:
        return {
            "accepted": self.counters.accepted,
            "duplicate": self.counters.duplicate,
            "rejected": self.counters.rejected,
            "indexed": len(self.index),
        }
