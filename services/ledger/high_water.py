"""The writer's high-water mark: the last seq it was acknowledged, kept outside the stream.

JetStream can lose a stream's tail without a word (a corrupt block recovered without its
index drops every message after it; a deleted stream starts again at seq 1), and a ledger
that is merely shorter still replays and hashes clean. What the ledger cannot vouch for
must be vouched for elsewhere: the writer records the highest seq JetStream acknowledged to
it (with that event's id and hash) and the latest seal it appended in
`<data dir>/ledger-high-water.json`. `verify` compares the ledger against it, and a writer
refuses to start on a ledger whose head is below it.

Why a file in the data dir and not PostgreSQL: the writer has no database (it needs only
NATS, by design), the data dir already holds its signing key, and a file keeps working when
PostgreSQL is down. Several writers sharing a data dir merge under a lock (highest wins). In
a distributed deployment the data dir must be a persistent volume for the mark to survive.

Durability: appends are acknowledged to sites without waiting for this file; a background
task writes it (fsync, atomic rename) within `flush_seconds` of each append and at stop.
The mark is therefore a lower bound of what was acknowledged, at most that far behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from nats.js import JetStreamContext

from services.ledger.backwards import refuse_if_behind
from services.ledger.io import ledger_head

log = structlog.get_logger("writer")

MARK_FILE = "ledger-high-water.json"
SEAL_TYPE = "ledger_sealed"


def mark_path(data_dir: Path) -> Path:
    return data_dir / MARK_FILE


@dataclass(frozen=True)
class HighWaterMark:
    seq: int = 0
    event_id: str | None = None
    hash: str | None = None
    # The latest seal this writer appended, as stored (signed data inside): evidence a
    # data-dir editor cannot forge, only remove.
    seal_seq: int = 0
    seal: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "event_id": self.event_id,
            "hash": self.hash,
            "seal_seq": self.seal_seq,
            "seal": self.seal,
        }

    def merged(self, other: HighWaterMark) -> HighWaterMark:
        top = self if self.seq >= other.seq else other
        sealed = self if self.seal_seq >= other.seal_seq else other
        return HighWaterMark(top.seq, top.event_id, top.hash, sealed.seal_seq, sealed.seal)


def read_mark(data_dir: Path) -> HighWaterMark | None:
    """The recorded mark, or None when this data dir never had a writer."""
    path = mark_path(data_dir)
    if not path.exists():
        return None
    raw = json.loads(path.read_text())
    if not isinstance(raw, dict) or not isinstance(raw.get("seq"), int):
        raise ValueError(f"{path} is not a high-water mark")
    seal = raw.get("seal")
    return HighWaterMark(
        seq=raw["seq"],
        event_id=raw.get("event_id"),
        hash=raw.get("hash"),
        seal_seq=int(raw.get("seal_seq") or 0),
        seal=seal if isinstance(seal, dict) else None,
    )


def write_mark(data_dir: Path, mark: HighWaterMark) -> HighWaterMark:
    """Merge `mark` into the file (another writer may share it) and make it durable."""
    path = mark_path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / f"{MARK_FILE}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        known = read_mark(data_dir)
        merged = mark if known is None else known.merged(mark)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w") as handle:
            handle.write(json.dumps(merged.as_dict(), sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
        directory = os.open(data_dir, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    return merged


class HighWaterRecorder:
    """Listens to the writer's appends; writes the mark in the background."""

    def __init__(self, data_dir: Path, flush_seconds: float = 0.2) -> None:
        self.data_dir = data_dir
        self.flush_seconds = flush_seconds
        self.mark = HighWaterMark()
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def appended(self, seq: int, stored: dict[str, Any]) -> None:
        """The writer's on_append listener: JetStream acknowledged `seq`."""
        mark = self.mark
        if seq > mark.seq:
            mark = HighWaterMark(
                seq, str(stored.get("event_id")), str(stored.get("hash")), mark.seal_seq, mark.seal
            )
        if stored.get("type") == SEAL_TYPE and seq > mark.seal_seq:
            mark = HighWaterMark(mark.seq, mark.event_id, mark.hash, seq, dict(stored))
        self.mark = mark
        self._dirty.set()

    async def start(self, js: JetStreamContext) -> None:
        """Refuse a ledger shorter than the mark; then keep the mark up to date."""
        known = read_mark(self.data_dir)
        if known is not None:
            refuse_if_behind(
                await ledger_head(js),
                known.seq,
                "the writer",
                f"the writer's high-water mark ({mark_path(self.data_dir)})",
            )
            self.mark = known
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await asyncio.to_thread(write_mark, self.data_dir, self.mark)
            except OSError:
                log.exception("high_water_mark_not_written", path=str(mark_path(self.data_dir)))
            await asyncio.sleep(self.flush_seconds)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.mark.seq:
            await asyncio.to_thread(write_mark, self.data_dir, self.mark)
