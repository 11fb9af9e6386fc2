"""Rebuild every read model from the ledger into a fresh schema; digests and comparison.

`trial-ledger replay [--as-of TIME]` rebuilds "as known at TIME": only events the ledger
had recorded at or before it. Digests are order-independent hashes of a table's rows, so two
builds agree exactly when their rows do.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nats.js import JetStreamContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from projections import memo
from services.db import NOT_DIGESTED
from services.ledger_io import read_ordered
from services.migrate import check_schema_name, migrate
from services.projector.histories import PatientHistories
from services.projector.runner import Applier, Message, Projection, decode_message

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
        return dt.datetime.fromisoformat(recorded.replace("Z", "+00:00")) <= limit

    return include


async def drop_schema(engine: AsyncEngine, schema: str) -> None:
    check_schema_name(schema)
    async with engine.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


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
) -> RebuildReport:
    """Fill `schema` (dropped first) with every projection, from the ledger's first seq."""
    await drop_schema(engine, schema)
    await migrate(engine, schema)
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
        )
        for projection in projections
    ]
    began = time.perf_counter()
    count = 0
    last_seq = 0
    chunk: list[Message] = []

    async def flush() -> None:
        for message in chunk:
            message.decoded = decode_message(message)
        # side by side: one projection computes while another's rows go into PostgreSQL;
        # all of them finish before a failure is raised, so nothing writes after the rebuild ends
        outcomes = await asyncio.gather(
            *(applier.apply_resilient(chunk) for applier in appliers), return_exceptions=True
        )
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        if failures:
            raise failures[0]
        chunk.clear()

    # every projection folds the same decoded entries: each patient is folded once per batch
    with memo.configured(keys=batch, entries=2 * batch):
        async for messages in read_ordered(js, stop_seq=stop_seq):
            for msg in messages:
                last_seq = msg.seq
                if include is not None and not include(_peek(msg.body)):
                    continue
                chunk.append(Message(msg.seq, msg.subject, msg.body))
                count += 1
                if len(chunk) >= batch:
                    await flush()
                    if progress is not None:
                        progress(count)
        if chunk:
            await flush()
    seconds = time.perf_counter() - began
    report = RebuildReport(schema, as_of.isoformat() if as_of else None, count, last_seq, seconds)
    report.digests = await digests(engine, schema)
    return report


def _peek(body: bytes) -> dict[str, Any]:
    import json

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
            row = (
                await conn.execute(
                    text(
                        f"SELECT count(*), md5(coalesce(string_agg(h, '' ORDER BY h), '')) "
                        f'FROM (SELECT md5(t::text) AS h FROM "{schema}"."{table}" t) rows'
                    )
                )
            ).one()
            result[table] = {"rows": int(row[0]), "digest": str(row[1])}
    return result


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
                found = await conn.execute(
                    text(
                        f'SELECT row_to_json(t)::text FROM (SELECT * FROM "{a}"."{table}" '
                        f'EXCEPT ALL SELECT * FROM "{b}"."{table}") t LIMIT {int(limit)}'
                    )
                )
                rows.extend({"side": only, "row": value} for (value,) in found)
            differences[table] = rows
    return differences
