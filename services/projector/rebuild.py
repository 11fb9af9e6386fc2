"""Rebuild every read model from the ledger into a fresh schema; digests and comparison.

`trial-ledger replay [--as-of TIME]` rebuilds "as known at TIME": only events the ledger
had recorded at or before it. Digests are order-independent hashes of a table's rows, so two
builds agree exactly when their rows do.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from nats.js import JetStreamContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.common import memo
from projections.common.calendar import parse_instant
from services.db.migrate import check_schema_name, migrate
from services.db.tables import NOT_DIGESTED, NOT_DIGESTED_COLUMNS
from services.ledger.histories import PatientHistories
from services.ledger.io import ledger_head, read_ordered
from services.projector.runner import Applier, Message, Partition, Projection, decode_message

Progress = Callable[[int], None]


@dataclass
class RebuildReport:
    schema: str
    as_of: str | None
    events: int
    last_seq: int
    seconds: float
    digests: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def _recorded_by(as_of: dt.datetime | None) -> Callable[[dict[str, Any]], bool] | None:
    if as_of is None:
        return None
    limit = as_of.astimezone(dt.UTC)

    def include(stored: dict[str, Any]) -> bool:
        recorded = stored.get("recorded_at")
        if not isinstance(recorded, str):
            return False
        return parse_instant(recorded) <= limit

    return include


async def drop_schema(engine: AsyncEngine, schema: str) -> None:
    check_schema_name(schema)
    async with engine.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


@dataclass(frozen=True)
class Helpers:
    """Helper processes for a rebuild, one per further partition of the patients.

    The patients are split into `count` partitions by the hash the live partitioned projectors
    use; this process builds the first and each helper another, all reading the ledger up to
    the same seq into the same schema. Python derives the read models on one core at a time,
    so on a machine with more than one core this is how a rebuild uses them.
    """

    count: int
    nats_url: str
    database_url: str
    creds: str | None = None


def default_workers() -> int:
    """Processes for a rebuild: one per CPU core, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


async def rebuild(
    js: JetStreamContext,
    engine: AsyncEngine,
    schema: str,
    projections: Sequence[Projection],
    *,
    as_of: dt.datetime | None = None,
    batch: int = 50_000,
    progress: Progress | None = None,
    stop_seq: int | None = None,
    timed: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext,
    helpers: Helpers | None = None,
) -> RebuildReport:
    """Fill `schema` (dropped first) with every projection, from the ledger's first seq.

    `timed` wraps the timed part (the read and the writes, not the migration or the digests):
    a bench measures CPU over exactly what `events_per_s` covers."""
    parts: HelperProcesses | None = None
    partition: Partition | None = None
    if helpers is not None and helpers.count > 1:
        from services.projector.app import all_projections

        if [type(p) for p in projections] != [type(p) for p in all_projections()]:
            raise ValueError("a rebuild with helper processes builds every standard projection")
        # every partition reads up to the same seq
        stop_seq = stop_seq if stop_seq is not None else await ledger_head(js)
        partition = Partition(0, helpers.count)
        # started first, so that their start-up overlaps the migration; they write nothing
        # before they are told the schema is ready
        parts = HelperProcesses(helpers, schema, stop_seq, as_of, batch)
    try:
        if parts is not None:
            await parts.start()
        await drop_schema(engine, schema)
        await migrate(engine, schema)
        with timed():
            began = time.perf_counter()
            if parts is not None:
                await parts.go()
            own = await fill(
                js,
                engine,
                schema,
                projections,
                as_of=as_of,
                batch=batch,
                progress=progress,
                stop_seq=stop_seq,
                partition=partition,
            )
            count = own.events
            if parts is not None:
                count += await parts.collect()
                await _merge_checkpoints(engine, schema, [p.name for p in projections], count)
            seconds = time.perf_counter() - began
    finally:
        if parts is not None:
            await parts.kill()
    report = RebuildReport(schema, own.as_of, count, own.last_seq, seconds)
    report.digests = await digests(engine, schema)
    return report


async def fill(
    js: JetStreamContext,
    engine: AsyncEngine,
    schema: str,
    projections: Sequence[Projection],
    *,
    as_of: dt.datetime | None = None,
    batch: int = 50_000,
    progress: Progress | None = None,
    stop_seq: int | None = None,
    partition: Partition | None = None,
    ready: Callable[[], Awaitable[None]] | None = None,
) -> RebuildReport:
    """Apply the ledger from its first seq to the (migrated, empty) `schema`: every patient,
    or with `partition` that partition's patients and the trial-level events. `events` counts
    the events this partition accounts for: over all partitions they add up to the whole.
    `ready`, if given, is awaited before anything is written."""
    include = _recorded_by(as_of)
    appliers = [
        Applier(
            engine,
            schema,
            projection,
            PatientHistories(
                js, capacity=batch, max_events=2 * batch, include=include, from_start=True
            ),
            contiguous=False,
            partition=partition,
        )
        for projection in projections
    ]
    count = 0
    last_seq = 0
    chunk: list[Message] = []

    async def flush() -> None:
        nonlocal ready
        for message in chunk:
            message.decoded = decode_message(message)
        if ready is not None:
            await ready()
            ready = None
        # side by side: one projection computes while another's rows go into PostgreSQL;
        # all of them finish before a failure is raised, so nothing writes after the rebuild ends
        outcomes = await asyncio.gather(
            *(applier.apply_resilient(chunk) for applier in appliers), return_exceptions=True
        )
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        if failures:
            raise failures[0]
        chunk.clear()

    began = time.perf_counter()
    # every projection folds the same decoded entries: each patient is folded once per batch
    with memo.configured(keys=batch, entries=2 * batch):
        async for messages in read_ordered(js, stop_seq=stop_seq):
            for msg in messages:
                last_seq = msg.seq
                # exactly one partition accounts for each event; every one applies the
                # trial-level events (protocol parameters), and none decodes another's patients
                mine = True
                if partition is not None:
                    mine = partition.owns_subject(msg.subject)
                    if not (mine or partition.owns_subject(msg.subject, keep_trial=True)):
                        continue
                if include is not None and not include(_peek(msg.body)):
                    continue
                chunk.append(Message(msg.seq, msg.subject, msg.body))
                count += mine
                if len(chunk) >= batch:
                    await flush()
                    if progress is not None:
                        progress(count)
        if chunk:
            await flush()
    if ready is not None:
        await ready()
    seconds = time.perf_counter() - began
    return RebuildReport(schema, as_of.isoformat() if as_of else None, count, last_seq, seconds)


class HelperProcesses:
    """The helper processes of one rebuild (`services.projector.rebuild_part`), partitions 1
    to `count - 1`: started, told once the schema is ready ("go" on their stdin), and
    collected; a helper that fails fails the rebuild. Their log goes to this process's
    stderr."""

    def __init__(
        self, helpers: Helpers, schema: str, head: int, as_of: dt.datetime | None, batch: int
    ) -> None:
        self.helpers = helpers
        self.arguments = ["--schema", schema, "--stop-seq", str(head), "--batch", str(batch)]
        if as_of is not None:
            self.arguments += ["--as-of", as_of.isoformat()]
        self.processes: list[asyncio.subprocess.Process] = []

    async def start(self) -> None:
        env = {
            **os.environ,
            "LEDGER_NATS_URL": self.helpers.nats_url,
            "LEDGER_DATABASE_URL": self.helpers.database_url,
            "LEDGER_REBUILD_CREDS": self.helpers.creds or "",
        }
        for index in range(1, self.helpers.count):
            self.processes.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "services.projector.rebuild_part",
                    *self.arguments,
                    "--partition",
                    f"{index}/{self.helpers.count}",
                    env=env,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                )
            )

    async def go(self) -> None:
        for process in self.processes:
            assert process.stdin is not None
            with contextlib.suppress(ConnectionError):  # one that died is reported by collect
                process.stdin.write(b"go\n")
                await process.stdin.drain()

    async def collect(self) -> int:
        """Wait for every helper; the events they account for."""
        outputs = await asyncio.gather(*(process.communicate() for process in self.processes))
        events = 0
        for process, (out, _) in zip(self.processes, outputs, strict=True):
            lines = out.decode(errors="replace").strip().splitlines()
            if process.returncode != 0 or not lines:
                raise RuntimeError(
                    f"a rebuild helper failed (exit {process.returncode}); its log is above"
                )
            events += int(json.loads(lines[-1])["events"])
        return events

    async def kill(self) -> None:
        """Stop whatever is still running (after a failure or a cancellation)."""
        for process in self.processes:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()


async def _merge_checkpoints(
    engine: AsyncEngine, schema: str, names: Sequence[str], events: int
) -> None:
    """One checkpoint per projection in place of its partitions': the newest seq any of them
    applied, and the events applied (all of them but the parked ones, as in one process)."""
    async with engine.begin() as conn:
        await conn.execute(text(f'SET LOCAL search_path TO "{check_schema_name(schema)}"'))
        for name in names:
            await conn.execute(
                text(
                    "WITH parts AS (DELETE FROM projection_checkpoint "
                    "WHERE split_part(projection, '#', 1) = :p AND projection <> :p "
                    "RETURNING last_seq) "
                    "INSERT INTO projection_checkpoint (projection, last_seq, applied) "
                    "SELECT :p, max(last_seq), :n - (SELECT count(*) FROM parked_event "
                    "WHERE projection = :p) FROM parts HAVING count(*) > 0 "
                    "ON CONFLICT (projection) DO UPDATE SET last_seq = excluded.last_seq, "
                    "applied = excluded.applied"
                ),
                {"p": name, "n": events},
            )


def _peek(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


async def read_model_tables(engine: AsyncEngine, schema: str) -> list[str]:
    """Every table of a build but the checkpoint (a position) and Alembic's bookkeeping."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = :s "
                "AND table_type = 'BASE TABLE' ORDER BY table_name"
            ),
            {"s": schema},
        )
        return [name for (name,) in rows if name not in NOT_DIGESTED]


async def digests(
    engine: AsyncEngine, schema: str, tables: Sequence[str] | None = None
) -> dict[str, dict[str, Any]]:
    """Per table: row count and an order-independent MD5 over the rows' text forms."""
    check_schema_name(schema)
    result: dict[str, dict[str, Any]] = {}
    tables = tables if tables is not None else await read_model_tables(engine, schema)
    async with engine.connect() as conn:
        for table in tables:
            exists = (
                await conn.execute(
                    text(
                        "SELECT 1 FROM information_schema.tables WHERE table_schema = :s AND table_name = :t"
                    ),
                    {"s": schema, "t": table},
                )
            ).scalar()
            if not exists:
                continue
            rows = await _digested_rows(conn, schema, table)
            row = (
                await conn.execute(
                    text(
                        f"SELECT count(*), md5(coalesce(string_agg(h, '' ORDER BY h), '')) "
                        f"FROM (SELECT md5(t::text) AS h FROM {rows} t) rows"
                    )
                )
            ).one()
            result[table] = {"rows": int(row[0]), "digest": str(row[1])}
    return result


async def _digested_rows(conn: Any, schema: str, table: str) -> str:
    """The table as digests see it (a FROM item): without its wall-clock columns."""
    volatile = NOT_DIGESTED_COLUMNS.get(table)
    if not volatile:
        return f'"{schema}"."{table}"'
    names = (
        await conn.execute(
            text(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = :s AND table_name = :t ORDER BY ordinal_position"
            ),
            {"s": schema, "t": table},
        )
    ).scalars()
    columns = ", ".join(f'"{name}"' for name in names if name not in volatile)
    return f'(SELECT {columns} FROM "{schema}"."{table}")'


async def compare(
    engine: AsyncEngine, left: str, right: str, tables: Sequence[str] | None = None, limit: int = 50
) -> dict[str, list[dict[str, Any]]]:
    """Rows present in one build and not the other, per table (empty lists: identical)."""
    check_schema_name(left)
    check_schema_name(right)
    differences: dict[str, list[dict[str, Any]]] = {}
    tables = tables if tables is not None else await read_model_tables(engine, left)
    async with engine.connect() as conn:
        for table in tables:
            rows: list[dict[str, Any]] = []
            for only, a, b in (("only_in_" + left, left, right), ("only_in_" + right, right, left)):
                mine, theirs = (
                    await _digested_rows(conn, a, table),
                    await _digested_rows(conn, b, table),
                )
                found = await conn.execute(
                    text(
                        f"SELECT row_to_json(t)::text FROM (SELECT * FROM {mine} x "
                        f"EXCEPT ALL SELECT * FROM {theirs} y) t LIMIT {int(limit)}"
                    )
                )
                rows.extend({"side": only, "row": value} for (value,) in found)
            differences[table] = rows
    return differences
