"""The writer's sealer: every N appends or T seconds, a signed `ledger_sealed` per trial.

What a seal commits to is read back from the ledger itself (from the previous position to
the head), not taken from this writer's memory: with several writers each one signs chain
heads that hold at `upto_seq` whoever appended them, so every seal checks against a replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from events import SPONSOR_SITE, TRIAL_PATIENT, decode
from events.subjects import parse_ledger_subject
from services.ledger.io import StoredMessage, read_stream
from services.security.seals import (
    SEAL_EVERY_EVENTS,
    SEAL_EVERY_SECONDS,
    seal_data,
    sign_event_hash,
)
from services.writer.intake import Writer

log = structlog.get_logger("sealer")

SEAL_TYPE = "ledger_sealed"


@dataclass
class TrialChains:
    """One trial's chain heads, event count and latest seal, as of the sealer's position."""

    heads: dict[str, str] = field(default_factory=dict)
    event_count: int = 0
    last_seal_hash: str | None = None
    last_event_seq: int = 0
    unsealed: bool = False
    # (seq, hash) of the trial's entries after its latest seal's upto_seq: the next seal's order
    since_seal: list[tuple[int, str]] = field(default_factory=list)


class Sealer:
    """Attach to a Writer: signs its events and appends seals in the background."""

    def __init__(
        self,
        writer: Writer,
        key: Ed25519PrivateKey,
        *,
        every_events: int = SEAL_EVERY_EVENTS,
        every_seconds: float = SEAL_EVERY_SECONDS,
        today: Callable[[], dt.date] = lambda: dt.datetime.now(dt.UTC).date(),
    ) -> None:
        self.writer = writer
        self.key = key
        self.every_events = every_events
        self.every_seconds = every_seconds
        self.today = today
        self.upto = 0
        self.trials: dict[str, TrialChains] = {}
        self.pending = 0
        self.sealed: list[int] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        writer.signer = lambda event_hash: sign_event_hash(key, event_hash)
        writer.on_append.append(self._appended)

    def _appended(self, seq: int, stored: dict[str, Any]) -> None:
        if stored.get("type") == SEAL_TYPE:
            return
        self.pending += 1
        if self.pending >= self.every_events:
            self._wake.set()

    async def start(self) -> None:
        # A writer that stopped uncleanly may have left events without a seal: the first
        # round reads the ledger and seals whatever no seal covers yet.
        self.pending = max(self.pending, 1)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """A last seal covers what this writer appended since the previous one."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.pending:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.seal(), 15)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.every_seconds)
            self._wake.clear()
            if not self.pending:
                continue
            try:
                await self.seal()
            except Exception:
                log.exception("seal_failed")
                self.pending = max(self.pending, 1)

    async def seal(self) -> list[int]:
        """Read the ledger up to its head, then seal every trial with unsealed events."""
        async with self._lock:
            self.pending = 0
            async for msg in read_stream(self.writer.js, start_seq=self.upto + 1):
                self._learn(msg)
            appended: list[int] = []
            for trial_id in sorted(t for t, chains in self.trials.items() if chains.unsealed):
                reply = await self.writer.append_writer_event(self._seal_event(trial_id))
                if reply["status"] != "accepted":
                    log.warning("seal_not_appended", trial_id=trial_id, reply=reply)
                    self.pending = max(self.pending, 1)
                    continue
                self.trials[trial_id].unsealed = False
                appended.append(int(reply["seq"]))
                log.info("ledger_sealed", trial_id=trial_id, seq=reply["seq"], upto_seq=self.upto)
            self.sealed.extend(appended)
            return appended

    def _learn(self, msg: StoredMessage) -> None:
        self.upto = msg.seq
        try:
            trial_id, site_id, patient_id, event_type = parse_ledger_subject(msg.subject)
        except ValueError:
            return
        stored = msg.json()
        chains = self.trials.setdefault(trial_id, TrialChains())
        chains.heads[f"{trial_id}.{site_id}.{patient_id}"] = str(stored.get("hash"))
        chains.event_count += 1
        chains.since_seal.append((msg.seq, str(stored.get("hash"))))
        if event_type == SEAL_TYPE:
            chains.last_seal_hash = str(stored.get("hash"))
            data = stored.get("data")
            upto = data.get("upto_seq") if isinstance(data, dict) else None
            if isinstance(upto, int):
                chains.since_seal = [entry for entry in chains.since_seal if entry[0] > upto]
                if upto >= chains.last_event_seq:
                    chains.unsealed = False
        else:
            chains.last_event_seq = msg.seq
            chains.unsealed = True

    def _seal_event(self, trial_id: str) -> Any:
        chains = self.trials[trial_id]
        data = seal_data(
            self.key,
            upto_seq=self.upto,
            event_count=chains.event_count,
            heads=chains.heads,
            previous_seal_hash=chains.last_seal_hash,
            order=[entry for entry in chains.since_seal if entry[0] <= self.upto],
        )
        return decode(
            {
                "event_id": str(uuid.uuid4()),
                "type": SEAL_TYPE,
                "schema_version": 1,
                "trial_id": trial_id,
                "site_id": SPONSOR_SITE,
                "patient_id": TRIAL_PATIENT,
                "occurred_on": self.today().isoformat(),
                "recorded_by": "writer",
                "data": data,
            },
            mode="strict",
        )
