"""Composition root of the safety alerter: LEDGER in, one ALERTS message per SAE (and one per
escalation of it) out.

A durable JetStream consumer reads the AE-relevant ledger entries in seq order. For each one
the patient's history as of that entry decides which alerts must exist
(`services.alerter.decisions`); each missing alert is published with Nats-Msg-Id = alert_id and
its PubAck awaited BEFORE the ledger message is acked. A crash between the two re-delivers
the entry, and the re-derived alert is recognised (index of ALERTS rebuilt at start, plus the
stream's duplicate window), so an alert is never lost and never sent twice.

nats-py is used directly rather than FastStream: the ack must follow a PubAck of another
stream, per message and in order, which is plain code here and a fight with auto-acks there.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import NotFoundError
from pydantic import ValidationError

from events import ProtocolParametersSet, decode
from events.subjects import (
    ALERTS_STREAM,
    ALERTS_SUBJECTS,
    LEDGER_STREAM,
    alert_subject,
    type_wildcard,
)
from services.alerter.decisions import (
    AE_HEADER,
    ALERT_FILTER_SUBJECTS,
    KIND_HEADER,
    PARAMETERS_TYPE,
    Alert,
    KnownAlerts,
    TrialParameters,
    decide_entry,
    is_alert_input,
    new_alerts,
)
from services.config.logs import message_context
from services.config.retry import retried, waited_for
from services.config.settings import Settings
from services.ledger.backwards import refuse_alerts_ahead
from services.ledger.connection import connect
from services.ledger.histories import Decoded, PatientHistories, Undecodable, decode_stored
from services.ledger.io import ensure_streams, read_stream
from services.security.nats_auth import ALERTER_DURABLE

log = structlog.get_logger("alerter")

DURABLE = ALERTER_DURABLE
# How often the alerter makes sure its consumer is still there and still its own (issue 14,
# item 13): another credential may have deleted or rewritten it.
CONSUMER_CHECK_SECONDS = 1.0
Clock = Callable[[], dt.datetime]


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def consumer_config(durable: str, start: int) -> js_api.ConsumerConfig:
    """The alerter's durable consumer on the ledger: AE-relevant entries from seq `start`."""
    return js_api.ConsumerConfig(
        durable_name=durable,
        filter_subjects=ALERT_FILTER_SUBJECTS,
        ack_policy=js_api.AckPolicy.EXPLICIT,
        deliver_policy=js_api.DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=start,
        ack_wait=30.0,
        max_ack_pending=10_000,
    )


def consumer_drift(config: js_api.ConsumerConfig, durable: str) -> str | None:
    """How a consumer differs from the one the alerter makes (None: it is ours, intact)."""
    expected = consumer_config(durable, 1)
    if sorted(config.filter_subjects or ()) != sorted(expected.filter_subjects or ()):
        return f"filter changed to {config.filter_subjects or config.filter_subject!r}"
    if config.ack_policy != expected.ack_policy:
        return f"ack policy changed to {config.ack_policy}"
    return None


@dataclass
class AlerterApp:
    nc: Client
    durable: str = DURABLE
    now: Clock = _utc_now
    batch: int = 256
    known: KnownAlerts = field(default_factory=KnownAlerts)
    parameters: TrialParameters = field(default_factory=TrialParameters)
    raised: int = 0
    last_seq: int = 0
    # Times the consumer was found missing or rewritten and made again (an operator's figure).
    consumer_recreations: int = 0
    _settled_seq: int = 0  # the last entry acked after its alerts were PubAcked
    _verified_seq: int = 0  # _settled_seq when the consumer was last seen intact
    _task: asyncio.Task[None] | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _histories: PatientHistories | None = None
    _decided: tuple[int, tuple[Alert, ...]] = (0, ())

    @property
    def js(self) -> JetStreamContext:
        return self.nc.jetstream()

    async def start(self) -> None:
        js = self.js
        await ensure_streams(js)
        await refuse_alerts_ahead(js)
        self._histories = PatientHistories(js, capacity=5000, include=is_alert_input)
        await self._index_alerts()
        await self._load_parameters()
        sub = await self._subscribe()
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run(sub))
        log.info("alerter_started", known_alerts=len(self.known), durable=self.durable)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._task, 10)
            self._task = None
        with contextlib.suppress(Exception):
            await self.nc.drain()

    async def _index_alerts(self) -> None:
        """Every alert ever published, from ALERTS headers (cheap: no bodies)."""
        async for msg in read_stream(
            self.js, ALERTS_SUBJECTS, stream=ALERTS_STREAM, headers_only=True
        ):
            headers = msg.headers or {}
            self.known.add(
                headers.get("Nats-Msg-Id"), headers.get(AE_HEADER), headers.get(KIND_HEADER)
            )

    async def _load_parameters(self) -> None:
        async for msg in read_stream(self.js, type_wildcard(PARAMETERS_TYPE)):
            self._learn_parameters(msg.seq, msg.json())

    def _learn_parameters(self, seq: int, stored: dict[str, Any]) -> None:
        try:
            event = decode(stored)
        except (ValidationError, ValueError):
            log.warning("parameters_undecodable", seq=seq)
            return
        if isinstance(event, ProtocolParametersSet):
            self.parameters.learn(event.trial_id, seq, event.data.parameters)

    async def _subscribe(self) -> Any:
        """(Re)create the durable consumer at its ack floor.

        A process killed mid-batch leaves delivered-but-unacked entries that JetStream would
        hand out again only after `ack_wait`, behind newer ones; deciding from newer entries
        first would judge an older one against the wrong history. Restarting at the first
        unacked entry keeps strict seq order; entries re-read past the floor publish nothing
        new (KnownAlerts). One alerter runs per system: a second would reset this consumer.
        """
        js = self.js
        start = 1
        try:
            info = await js.consumer_info(LEDGER_STREAM, self.durable)
            start = int(info.ack_floor.stream_seq) + 1
            await js.delete_consumer(LEDGER_STREAM, self.durable)
        except NotFoundError:
            pass  # first start: from the ledger's first entry, so no SAE predates the alerter
        await js.add_consumer(LEDGER_STREAM, consumer_config(self.durable, start))
        self._settled_seq = self._verified_seq = start - 1
        return await js.pull_subscribe_bind(self.durable, stream=LEDGER_STREAM)

    async def _run(self, sub: Any) -> None:
        loop = asyncio.get_running_loop()
        checked_at = loop.time()
        while not self._stop.is_set():
            try:
                msgs = await sub.fetch(self.batch, timeout=0.5)
            except TimeoutError:  # nats-py raises its own subclass or asyncio's
                msgs = []
            except Exception as exc:  # NATS reconnecting, or our consumer is gone
                log.warning("alerter_fetch_failed", error=str(exc)[:200])
                sub = await self._ensure_consumer(sub)
                await asyncio.sleep(0.25)
                continue
            for msg in msgs:
                if not await self._settle(msg):
                    return
            if loop.time() - checked_at >= CONSUMER_CHECK_SECONDS:
                checked_at = loop.time()
                sub = await self._ensure_consumer(sub)
        with contextlib.suppress(Exception):
            await sub.unsubscribe()

    async def _ensure_consumer(self, sub: Any) -> Any:
        """Our consumer, as we made it; made again if it vanished or was rewritten.

        What was settled while the consumer might already have been altered is read again:
        from the last entry settled while it was last seen intact. Alerts already published
        are known (KnownAlerts), so re-reading never alerts twice; an SAE a rewritten filter
        held back is alerted now.
        """
        try:
            info = await self.js.consumer_info(LEDGER_STREAM, self.durable)
            problem = consumer_drift(info.config, self.durable)
        except NotFoundError:
            problem = "missing"
        except Exception:  # NATS away: the next check will tell
            return sub
        if problem is None:
            self._verified_seq = self._settled_seq
            return sub
        start = self._verified_seq + 1
        try:
            with contextlib.suppress(NotFoundError):
                await self.js.delete_consumer(LEDGER_STREAM, self.durable)
            await self.js.add_consumer(LEDGER_STREAM, consumer_config(self.durable, start))
            fresh = await self.js.pull_subscribe_bind(self.durable, stream=LEDGER_STREAM)
        except Exception as exc:  # NATS away: the next check tries again
            log.warning("sae_alert_consumer_recreate_retry", error=str(exc)[:200])
            return sub
        self.consumer_recreations += 1
        log.error(
            "sae_alert_consumer_recreated",
            durable=self.durable,
            reason=problem,
            from_seq=start,
            recreations=self.consumer_recreations,
        )
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
        # Decide again from `start`: the histories reload from the ledger as they are needed.
        self.last_seq, self._decided = start - 1, (0, ())
        self._histories = PatientHistories(self.js, capacity=5000, include=is_alert_input)
        self._settled_seq = self._verified_seq = start - 1
        return fresh

    async def _settle(self, msg: Msg) -> bool:
        """Publish what the entry calls for, then ack it; False when stopping mid-way."""
        seq = int(msg.metadata.sequence.stream)
        try:  # ALERTS unreachable: keep trying until stopped, never ack unsent
            await retried(
                lambda: self.handle(seq, msg.subject, msg.data),
                stop=self._stop,
                first_wait=0.1,
                on_retry=lambda exc, _n: log.warning(
                    "sae_alert_publish_retry", error=str(exc)[:200]
                ),
            )
        except Exception:
            if self._stop.is_set():
                return False
            raise
        with contextlib.suppress(Exception):
            await msg.ack()
        self._settled_seq = max(self._settled_seq, seq)
        return True

    async def handle(self, seq: int, subject: str, body: bytes) -> list[Alert]:
        """One ledger entry: the alerts it newly calls for, each published and PubAcked.

        Safe to call again for the same entry after a failure: the decision is kept, and
        what was already published is known.
        """
        with message_context(seq=seq, subject=subject):
            due = await self.decide(seq, subject, body)
            published: list[Alert] = []
            for alert in new_alerts(due, self.known):
                await self._publish(alert)
                published.append(alert)
            return published

    async def decide(self, seq: int, subject: str, body: bytes) -> tuple[Alert, ...]:
        """The alerts the patient's history as of `seq` calls for (published or not)."""
        if seq == self._decided[0]:
            return self._decided[1]
        if seq < self.last_seq:
            return ()  # redelivered: its alerts were published before we moved on
        try:
            stored = json.loads(body.decode())
            if not isinstance(stored, dict):
                raise Undecodable("not a JSON object")
            decoded = Decoded(seq, subject, stored, decode_stored(seq, stored))
        except (ValueError, Undecodable) as exc:
            log.warning("alert_input_undecodable", seq=seq, error=str(exc)[:200])
            return self._decide(seq, ())
        with message_context(event=stored):
            return await self._decide_entry(seq, stored, decoded)

    async def _decide_entry(
        self, seq: int, stored: dict[str, Any], decoded: Decoded
    ) -> tuple[Alert, ...]:
        if stored.get("type") == PARAMETERS_TYPE:
            self._learn_parameters(seq, stored)
            return self._decide(seq, ())
        assert self._histories is not None, "start() the alerter first"
        await self._histories.ensure(decoded.key, seq - 1)
        self._histories.append(decoded)
        trial_id = decoded.key[0]
        decision = decide_entry(
            self._histories.get(decoded.key),
            decoded.recorded,
            lambda at_seq: self.parameters.at(trial_id, at_seq),
        )
        if decision.failure is not None:
            # A history the rules cannot read fails the same way every time: report it loudly
            # (the projector parks the same entry) rather than stall every other patient. The
            # entry is in the history now, so a retry must not run this twice.
            log.error(
                "sae_alert_decision_failed",
                seq=seq,
                trial_id=trial_id,
                patient_id=decoded.key[2],
                error=decision.failure,
            )
        due = decision.due
        return self._decide(seq, due)

    def _decide(self, seq: int, due: tuple[Alert, ...]) -> tuple[Alert, ...]:
        self.last_seq = seq
        self._decided = (seq, due)
        return due

    async def _publish(self, alert: Alert) -> None:
        body = json.dumps(alert.message(self.now()), separators=(",", ":")).encode()
        ack = await self.js.publish(
            alert_subject(alert.trial_id, alert.site_id),
            body,
            stream=ALERTS_STREAM,
            timeout=10,
            headers={
                "Nats-Msg-Id": alert.alert_id,
                AE_HEADER: alert.ae_event_id,
                KIND_HEADER: alert.kind,
            },
        )
        self.known.add(alert.alert_id, alert.ae_event_id, alert.kind)
        if ack.duplicate:
            log.info("sae_alert_already_sent", alert_id=alert.alert_id, alerts_seq=ack.seq)
            return
        self.raised += 1
        log.info(
            "sae_alert_raised",
            alert_id=alert.alert_id,
            kind=alert.kind,
            follows=alert.clock.follows,
            data_quality=list(alert.clock.data_quality),
            trial_id=alert.trial_id,
            site_id=alert.site_id,
            patient_id=alert.patient_id,
            seq=alert.clock.ae_seq,
            trigger_seq=alert.clock.trigger_seq,
            expedited_days=alert.clock.expedited_days,
            late_entry=alert.clock.late_entry,
            alerts_seq=ack.seq,
        )

    async def pending(self) -> int:
        """Ledger entries not yet settled by the alerter (0 = caught up)."""
        info = await self.js.consumer_info(LEDGER_STREAM, self.durable)
        return int(info.num_pending) + int(info.num_ack_pending)

    async def _caught_up(self) -> bool:
        return await self.pending() == 0

    async def wait_caught_up(self, timeout: float = 60.0) -> None:
        if await waited_for(self._caught_up, timeout, 0.05):
            return
        raise TimeoutError(
            f"alerter not caught up after {timeout}s: {await self.pending()} pending"
        )


async def create_app(
    settings: Settings, *, durable: str = DURABLE, now: Clock = _utc_now
) -> AlerterApp:
    """Nothing connects at import time; `start()` indexes ALERTS and begins consuming."""
    settings.require("alerter")
    assert settings.nats_url  # for the type checker: require() checked it
    nc = await connect(settings.nats_url, settings.creds_for("alerter"), name="alerter")
    return AlerterApp(nc, durable=durable, now=now)
