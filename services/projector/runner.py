"""Exactly-once application of ledger messages to a projection (DESIGN.md rule 3).

Rows and checkpoint commit in one transaction; the ack follows the commit; a seq at or
below the checkpoint is skipped. A transient failure (PostgreSQL restarting, a lost
connection) is retried with bounded back-off, never dropped; an event that fails
deterministically (`services.projector.failures`) is found by halving the batch, parked with
its reason and reported, and the events after it go on: one bad event cannot stall the trial.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import NotFoundError
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from events import SPONSOR_SITE
from events.subjects import LEDGER_STREAM, LEDGER_SUBJECTS, parse_ledger_subject
from services.config.logs import message_context
from services.config.retry import retried
from services.db.tables import parked_events
from services.ledger.histories import Decoded, PatientHistories, Undecodable, decode_stored
from services.ledger.io import ack_position
from services.projector.failures import GaveUp, is_transient, reason, retrying, storable
from services.projector.patient_view import SEARCH_SCHEMA

log = structlog.get_logger("projector")
# How often an idle projection makes sure its durable is still there and still its own.
CONSUMER_CHECK_SECONDS = 1.0


class Projection(Protocol):
    name: str

    async def apply(
        self, conn: AsyncConnection, batch: list[Decoded], histories: PatientHistories
    ) -> None: ...


@dataclass(slots=True)
class Message:
    seq: int
    subject: str
    body: bytes
    # decoded once and shared when several projections apply the same messages (a rebuild)
    decoded: Decoded | str | None = None


def decode_message(message: Message) -> Decoded | str:
    """The decoded event, or why it cannot be read (then it is parked)."""
    try:
        stored = json.loads(message.body.decode())  # str: skips json's encoding detection
        if not isinstance(stored, dict):
            raise Undecodable("not a JSON object")
        return Decoded(
            message.seq, message.subject, stored, decode_stored(message.seq, stored), message.body
        )
    except (ValueError, Undecodable) as exc:
        return str(exc)


def stream_seq(msg: Any) -> int:
    """The stream seq from a JetStream message's ack subject
    (`$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.…`, with an optional domain and
    account hash in the newer form), read without building the whole metadata object."""
    return ack_position(msg.reply)[0]


@dataclass(frozen=True, slots=True)
class Partition:
    """One of `count` fixed slices of the patients: a patient always hashes to the same one,
    so its events are applied in ledger order by whichever instance holds the slice."""

    index: int
    count: int

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, key: tuple[str, str, str]) -> bool:
        digest = hashlib.sha256(".".join(key).encode()).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index

    def owns_subject(self, subject: str, *, keep_trial: bool = False) -> bool:
        """Whether the subject's patient is in this slice (with `keep_trial`, trial-level
        events count too: every partition follows the trial's parameters)."""
        try:
            trial_id, site_id, patient_id, _ = parse_ledger_subject(subject)
        except ValueError:
            return True
        if keep_trial and site_id == SPONSOR_SITE:
            return True
        return self.owns((trial_id, site_id, patient_id))


def bound_to(messages: Sequence[Message]) -> contextlib.AbstractContextManager[Any]:
    """Work on one message: every log line written meanwhile names it (its seq, event_id,
    trial, site and patient; STYLE.md rule 9). A batch of several names none of them."""
    if len({message.seq for message in messages}) != 1:
        return contextlib.nullcontext()
    message = messages[0]
    event: Any = None
    if isinstance(message.decoded, Decoded):
        event = message.decoded.stored
    else:
        with contextlib.suppress(ValueError, RecursionError):  # unreadable: parked, named by seq
            event = json.loads(message.body)
    return message_context(seq=message.seq, subject=message.subject, event=event)


class Gap(RuntimeError):
    """The consumer skipped ahead of the checkpoint: re-position it, apply nothing."""


class Applier:
    """Applies ordered ledger messages to one projection in one schema, exactly once."""

    def __init__(
        self,
        engine: AsyncEngine,
        schema: str,
        projection: Projection,
        histories: PatientHistories,
        *,
        contiguous: bool = True,
        partition: Partition | None = None,
    ) -> None:
        self.engine = engine
        self.schema = schema
        self.projection = projection
        self.histories = histories
        self.contiguous = contiguous
        self.partition = partition
        self.position = (
            projection.name if partition is None else f"{projection.name}#{partition.label}"
        )
        histories.partition = partition
        histories.position = self.position
        self._parked_known = False

    async def _begin(self, conn: AsyncConnection) -> int:
        await conn.execute(text(f'SET LOCAL search_path TO "{self.schema}"'))
        # A partition new to this build starts where the unpartitioned projection stopped, if
        # it ran here before: moving a build to partitioned instances repeats nothing.
        await conn.execute(
            text(
                "INSERT INTO projection_checkpoint (projection, last_seq) VALUES (:p, "
                "coalesce((SELECT last_seq FROM projection_checkpoint WHERE projection = :base AND :p <> :base), 0)) "
                "ON CONFLICT DO NOTHING"
            ),
            {"p": self.position, "base": self.projection.name},
        )
        row = await conn.execute(
            text("SELECT last_seq FROM projection_checkpoint WHERE projection = :p FOR UPDATE"),
            {"p": self.position},
        )
        return int(row.scalar_one())

    async def checkpoint(self) -> int:
        async with self.engine.begin() as conn:
            return await self._begin(conn)

    async def apply(self, messages: Sequence[Message]) -> int:
        """Apply what is new in `messages`; returns the checkpoint after the commit."""
        token = SEARCH_SCHEMA.set(self.schema)  # what `_begin` puts on the search_path
        try:
            return await self._apply(messages)
        finally:
            SEARCH_SCHEMA.reset(token)

    async def _apply(self, messages: Sequence[Message]) -> int:
        touched: set[Any] = set()
        parked: list[dict[str, Any]] = []
        try:
            async with self.engine.begin() as conn:
                checkpoint = await self._begin(conn)
                await self._know_parked(conn)
                # a fetch can mix redeliveries with new messages: order, de-duplicate, and
                # (for a live consumer) apply only the unbroken run after the checkpoint
                fresh = sorted(
                    {m.seq: m for m in messages if m.seq > checkpoint}.values(), key=lambda m: m.seq
                )
                if not fresh:
                    return checkpoint
                if self.contiguous:
                    run = [m for n, m in enumerate(fresh) if m.seq == checkpoint + 1 + n]
                    if not run:
                        raise Gap(f"checkpoint {checkpoint}, next message {fresh[0].seq}")
                    fresh = run
                last = fresh[-1].seq
                if self.partition is not None:
                    # other partitions' patients are not even decoded here
                    fresh = [
                        m for m in fresh if self.partition.owns_subject(m.subject, keep_trial=True)
                    ]
                decoded, parked = self._decode(fresh)
                touched = {item.key for item in decoded}
                self.histories.pinned = touched
                for key in touched:
                    await self.histories.ensure(key, checkpoint)
                for item in decoded:
                    self.histories.append(item)
                if self.partition is not None:
                    # every partition keeps the trial-level history (protocol parameters);
                    # each applies only its own patients' events
                    decoded = [
                        item
                        for item in decoded
                        if item.key[1] == SPONSOR_SITE or self.partition.owns(item.key)
                    ]
                    parked = [row for row in parked if self.partition.owns_subject(row["subject"])]
                if decoded:
                    await self.projection.apply(conn, decoded, self.histories)
                if parked:
                    await conn.execute(insert(parked_events), parked)
                await conn.execute(
                    text(
                        "UPDATE projection_checkpoint SET last_seq = :s, applied = applied + :n WHERE projection = :p"
                    ),
                    {"s": last, "n": len(decoded), "p": self.position},
                )
        except BaseException:
            self.histories.forget(touched)
            raise
        for row in parked:  # reported once committed
            self._alert(row)
        return last

    async def _know_parked(self, conn: AsyncConnection) -> None:
        """The seqs this projection has parked stay out of the patients' histories: a later
        event re-derives its patient without them (once per process; `park` adds the new)."""
        if self._parked_known:
            return
        rows = await conn.execute(
            text("SELECT seq FROM parked_event WHERE projection = :p"),
            {"p": self.projection.name},
        )
        self.histories.parked.update(int(seq) for (seq,) in rows)
        self._parked_known = True

    def _alert(self, row: dict[str, Any]) -> None:
        """The operator's alert: one error-level line per parked event (its error, never the
        event's content); `/api/trials/{trial}/projections` counts them."""
        self.histories.parked.add(row["seq"])
        trial_id: str | None = None
        patient_id: str | None = None
        with contextlib.suppress(ValueError):  # parked for its subject, perhaps
            trial_id, _, patient_id, _ = parse_ledger_subject(row["subject"])
        log.error(
            "event_parked",
            projection=self.projection.name,
            seq=row["seq"],
            event_id=row["event_id"],
            trial_id=trial_id,
            patient_id=patient_id,
            reason=row["reason"][:300],
        )

    def _decode(self, fresh: Sequence[Message]) -> tuple[list[Decoded], list[dict[str, Any]]]:
        decoded: list[Decoded] = []
        parked: list[dict[str, Any]] = []
        for message in fresh:
            if message.decoded is None:  # decoded once, shared by the projections on this consumer
                message.decoded = decode_message(message)
            outcome = message.decoded
            if isinstance(outcome, Decoded):
                decoded.append(outcome)
            else:
                parked.append(self._parked_row(message, outcome))
        return decoded, parked

    def _parked_row(self, message: Message, error: str) -> dict[str, Any]:
        event_id = None
        with contextlib.suppress(Exception):
            event_id = json.loads(message.body).get("event_id")
        return {
            "projection": self.projection.name,
            "seq": message.seq,
            "subject": storable(message.subject),
            "event_id": storable(event_id[:200]) if isinstance(event_id, str) else None,
            "reason": storable(error),
        }

    async def park(self, message: Message, error: str) -> int:
        """Set one event aside for good: recorded with its reason, reported, and the checkpoint
        moves past it. Returns the checkpoint."""
        row = self._parked_row(message, error)
        async with self.engine.begin() as conn:
            checkpoint = await self._begin(conn)
            if message.seq <= checkpoint:
                return checkpoint
            if self.partition is None or self.partition.owns_subject(message.subject):
                await conn.execute(insert(parked_events), [row])
            await conn.execute(
                text("UPDATE projection_checkpoint SET last_seq = :s WHERE projection = :p"),
                {"s": message.seq, "p": self.position},
            )
        self._alert(row)
        return message.seq

    async def apply_resilient(
        self, messages: Sequence[Message], stop: asyncio.Event | None = None
    ) -> int:
        """Apply; transient failures are retried with bounded back-off (then `GaveUp`, for
        the caller to report: nothing is parked for them); a deterministic failure is traced
        to its event by halving the batch, and that event is parked."""
        with bound_to(messages):
            return await self._apply_resilient(messages, stop)

    async def _apply_resilient(
        self, messages: Sequence[Message], stop: asyncio.Event | None
    ) -> int:
        try:
            return await self._apply_retrying(messages, stop)
        except (Gap, GaveUp):
            raise
        except Exception as exc:
            log.warning(
                "projection_batch_failed", projection=self.projection.name, error=reason(exc)
            )
            ordered = sorted({m.seq: m for m in messages}.values(), key=lambda m: m.seq)
            return await self._isolate(ordered, stop, exc)

    async def _apply_retrying(self, messages: Sequence[Message], stop: asyncio.Event | None) -> int:
        return await retrying(
            lambda: self.apply(messages), transient=self._transient, stop=stop, label=self.position
        )

    async def _transient(self, exc: BaseException) -> bool:
        return not isinstance(exc, Gap) and await is_transient(exc, self.engine)

    async def _isolate(
        self, messages: Sequence[Message], stop: asyncio.Event | None, failure: BaseException
    ) -> int:
        """Apply `messages` (in seq order) around the ones that fail on their own: halves,
        first then second (a live consumer's checkpoint stays contiguous), down to the one
        event at fault, which is parked. A few bad events among thousands cost a few dozen
        transactions, not one per event."""
        if len(messages) == 1:
            with bound_to(messages):
                return await self.park(messages[0], reason(failure))
        middle = len(messages) // 2
        checkpoint = 0
        for half in (messages[:middle], messages[middle:]):
            try:
                with bound_to(half):
                    checkpoint = await self._apply_retrying(half, stop)
            except (Gap, GaveUp):
                raise
            except Exception as exc:
                checkpoint = await self._isolate(half, stop, exc)
        return checkpoint


class LiveProjector:
    """One durable JetStream consumer feeding one or more projections in one schema.

    Several projections on one consumer (a partition's instance runs them all) share the
    read, the decoding and the decoded events, so each patient's folds are remembered across
    them; each still commits its own rows and checkpoint, and the consumer is acked only as far
    as every one of them has committed.
    """

    def __init__(
        self,
        js: JetStreamContext,
        applier: Applier | Sequence[Applier],
        *,
        batch: int = 500,
        filter_subject: str = LEDGER_SUBJECTS,
        wait: float = 0.05,
    ) -> None:
        self.js = js
        self.appliers = [applier] if isinstance(applier, Applier) else list(applier)
        self.batch = batch
        # How long a fetch may wait. nats-py's fetch, once it has to wait for the server, keeps
        # waiting until the batch is full or this runs out: when caught up, every event would
        # sit out this much before it is applied. What has piled up is fetched at once anyway.
        self.wait = wait
        self.filter_subject = filter_subject
        first = self.appliers[0]
        suffix = (
            "" if first.partition is None else f"_p{first.partition.index}of{first.partition.count}"
        )
        names = "_".join(a.projection.name for a in self.appliers)
        self.durable = f"proj_{first.schema}_{names}{suffix}"
        self.last_applied = 0
        self.consumer_recreations = 0  # found missing or rewritten, and made again

    @property
    def applier(self) -> Applier:
        return self.appliers[0]

    async def _subscribe(self, reset: bool = False) -> Any:
        checkpoints = [await applier.checkpoint() for applier in self.appliers]
        for applier, checkpoint in zip(self.appliers, checkpoints, strict=True):
            if checkpoint == 0:
                applier.histories.from_start = True
        start = min(checkpoints) + 1
        if reset:
            with contextlib.suppress(NotFoundError):
                await self.js.delete_consumer(LEDGER_STREAM, self.durable)
        try:
            info = await self.js.consumer_info(LEDGER_STREAM, self.durable)
            if self._drift(info.config) is not None:
                # made by an earlier version (explicit acks), or rewritten by someone else:
                # re-made at the checkpoint
                await self.js.delete_consumer(LEDGER_STREAM, self.durable)
                raise NotFoundError
        except NotFoundError:
            await self.js.add_consumer(
                LEDGER_STREAM,
                js_api.ConsumerConfig(
                    durable_name=self.durable,
                    filter_subject=self.filter_subject,
                    # the checkpoint is a position, so one ack covers every message up to it
                    ack_policy=js_api.AckPolicy.ALL,
                    ack_wait=120.0,
                    max_ack_pending=20_000,
                    deliver_policy=js_api.DeliverPolicy.BY_START_SEQUENCE,
                    opt_start_seq=start,
                ),
            )
        return await self.js.pull_subscribe_bind(self.durable, stream=LEDGER_STREAM)

    async def _subscribe_retrying(self, stop: asyncio.Event, reset: bool = False) -> Any:
        """`_subscribe`, retried while NATS is away or electing a new leader (a failover can
        answer a consumer request with an error for a few seconds)."""
        return await retried(
            lambda: self._subscribe(reset),
            stop=stop,
            on_retry=lambda exc, _n: log.warning(
                "projection_subscribe_retry", projection=self._names, error=str(exc)[:200]
            ),
        )

    @property
    def _names(self) -> str:
        return ",".join(a.projection.name for a in self.appliers)

    def _drift(self, config: js_api.ConsumerConfig) -> str | None:
        """How our durable differs from what we make (None: intact)."""
        if config.ack_policy != js_api.AckPolicy.ALL:
            return f"ack policy {config.ack_policy}"
        if config.filter_subject != self.filter_subject or config.filter_subjects:
            return f"filter {config.filter_subjects or config.filter_subject!r}"
        return None

    async def _consumer_problem(self) -> str | None:
        """'missing', a drift, or None (intact, or NATS cannot say right now)."""
        try:
            info = await self.js.consumer_info(LEDGER_STREAM, self.durable)
        except NotFoundError:
            return "missing"
        except Exception:
            return None
        return self._drift(info.config)

    async def _recreate_if_lost(self, sub: Any, stop: asyncio.Event) -> Any:
        """Issue 14 item 13: a durable that another credential deleted or rewrote is made
        again at the checkpoint (nothing is lost: the position is in PostgreSQL), loudly."""
        problem = await self._consumer_problem()
        if problem is None:
            return sub
        self.consumer_recreations += 1
        log.error(
            "projection_consumer_recreated",
            projection=self._names,
            durable=self.durable,
            reason=problem,
            recreations=self.consumer_recreations,
        )
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
        return await self._subscribe_retrying(stop, reset=True)

    async def run(self, stop: asyncio.Event) -> None:
        sub = await self._subscribe_retrying(stop)
        log.info("projection_started", projection=self._names, schema=self.applier.schema)
        loop = asyncio.get_running_loop()
        checked_at = loop.time()
        while not stop.is_set():
            try:
                msgs = await sub.fetch(self.batch, timeout=self.wait)
            except TimeoutError:  # nats-py's own subclass or asyncio's, whichever gave up
                if loop.time() - checked_at >= CONSUMER_CHECK_SECONDS:  # idle: still ours?
                    checked_at = loop.time()
                    sub = await self._recreate_if_lost(sub, stop)
                continue
            except Exception as exc:  # NATS reconnecting, or our consumer is gone
                log.warning("projection_fetch_failed", error=str(exc)[:200])
                sub = await self._recreate_if_lost(sub, stop)
                await asyncio.sleep(0.5)
                continue
            messages = [Message(stream_seq(m), m.subject, m.data) for m in msgs]
            # The projections commit independently, so they run side by side: while one
            # waits for PostgreSQL, another computes.
            try:
                outcomes = await asyncio.gather(
                    *(applier.apply_resilient(messages, stop) for applier in self.appliers),
                    return_exceptions=True,
                )
            except asyncio.CancelledError:
                break
            failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
            if any(isinstance(failure, asyncio.CancelledError) for failure in failures):
                break
            gap = next((failure for failure in failures if isinstance(failure, Gap)), None)
            if gap is not None:
                log.warning("projection_repositioned", projection=self._names, reason=str(gap))
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
                sub = await self._subscribe_retrying(stop, reset=True)
                continue
            if failures and stop.is_set():
                break  # a stop cut the retries short: nothing went wrong
            if failures:
                # the database or NATS outlasted the bounded retries: say so loudly, then
                # start again from the checkpoint (nothing was acked past it)
                log.error(
                    "projection_stalled",
                    projection=self._names,
                    error=reason(failures[0]),
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
                if stop.is_set():
                    return
                sub = await self._subscribe_retrying(stop, reset=True)
                continue
            self.last_applied = min(
                outcome for outcome in outcomes if not isinstance(outcome, BaseException)
            )
            # ack only what every committed checkpoint covers (one ack acknowledges everything
            # up to it); anything beyond was not applied everywhere, so the consumer is
            # re-positioned to deliver it again rather than acked away
            covered = [
                (message.seq, m)
                for m, message in zip(msgs, messages, strict=True)
                if message.seq <= self.last_applied
            ]
            if covered:
                with contextlib.suppress(Exception):
                    await max(covered, key=operator.itemgetter(0))[1].ack()
            if any(message.seq > self.last_applied for message in messages):
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
                sub = await self._subscribe_retrying(stop, reset=True)
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
