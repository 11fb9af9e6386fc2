"""The core projection: event index, patient state and audit trail."""

from __future__ import annotations

import datetime as dt
import functools
import json
import operator
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from typing import Any

from sqlalchemy import JSON, Column, Table, TextClause, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from events import SPONSOR_SITE
from projections.common.calendar import parse_instant
from projections.fold.audit import audit_trail
from projections.fold.history import Recorded, effective_history
from projections.fold.patient import fold_ledger
from services.db.tables import audit_trail as audit_table
from services.db.tables import event_index, patient_state
from services.ledger.histories import Decoded, PatientHistories, PatientKey

STATE_COLUMNS = (
    "status",
    "bclc_stage",
    "child_pugh",
    "ecog",
    "baseline_pvtt",
    "baseline_extrahepatic_spread",
    "enrolled_on",
    "startdt",
    "last_dose_on",
    "haic_cycles",
    "pd1_infusions",
    "pd1_status",
    "lenvatinib_status",
    "lenvatinib_dose_mg",
    "scans",
    "last_scan_on",
    "worst_ae_grade",
    "death_on",
    "last_known_alive_on",
    "subsequent_therapy_on",
    "discontinued_on",
    "withdrawn_on",
    "event_count",
    "last_seq",
    "last_hash",
)


def _parse_time(value: str) -> dt.datetime:
    return parse_instant(value)


def index_row(item: Decoded) -> dict[str, Any]:
    stored = item.stored
    return {
        "seq": item.seq,
        "event_id": stored["event_id"],
        "trial_id": stored["trial_id"],
        "site_id": stored["site_id"],
        "patient_id": stored["patient_id"],
        "type": stored["type"],
        "schema_version": stored.get("schema_version", 1),
        "occurred_on": dt.date.fromisoformat(stored["occurred_on"]),
        "recorded_at": _parse_time(stored["recorded_at"]),
        "recorded_by": stored["recorded_by"],
        "reason": stored.get("reason"),
        "hash": stored["hash"],
        "prev_hash": stored["prev_hash"],
        "body": RawJson(item.body.decode()) if item.body else stored,
    }


class RawJson(str):
    """JSON text already encoded (the ledger's own bytes): COPY passes it through."""

    __slots__ = ()


class CoreProjection:
    """Every ledger event indexed; each touched patient re-derived from its effective history.

    Writes are set-based (one statement per table per batch): a rebuild touches thousands of
    patients per batch, and a round trip per patient would dominate.
    """

    name = "core"

    async def apply(
        self, conn: AsyncConnection, batch: list[Decoded], histories: PatientHistories
    ) -> None:
        # trial-level events reach every partition; one of them owns their index rows
        await copy_rows(
            conn, event_index, [index_row(item) for item in batch if histories.owns(item.key)]
        )
        touched = sorted(
            {item.key for item in batch if item.key[1] != SPONSOR_SITE and histories.owns(item.key)}
        )
        if not touched:
            return
        amended = {item.key for item in batch if item.stored.get("type") in AMENDING}
        new_seqs = {item.seq for item in batch}
        states: list[dict[str, Any]] = []
        audit_rows: list[dict[str, Any]] = []
        for key in touched:
            recorded = histories.get(key)
            states.append(state_row(key, recorded))
            # Only a correction or retraction changes earlier rows; otherwise the new entries'
            # rows are all there is to add, and they depend on nothing before them.
            if key in amended:
                audit_rows.extend(audit_rows_for(key, recorded))
            else:
                audit_rows.extend(audit_rows_for(key, [r for r in recorded if r.seq in new_seqs]))
        await conn.execute(_UPSERT_STATE, states)
        if amended:
            await delete_patients(conn, (audit_table,), sorted(amended))
        if audit_rows:
            await copy_rows(conn, audit_table, audit_rows)


def _upsert_state() -> Any:
    statement = pg_insert(patient_state)
    return statement.on_conflict_do_update(
        index_elements=["trial_id", "site_id", "patient_id"],
        set_={column: statement.excluded[column] for column in STATE_COLUMNS},
    )


_UPSERT_STATE = _upsert_state()  # built once: constructing it per batch costs more than it seems
AMENDING = frozenset({"event_corrected", "event_retracted"})


# The schema the current transaction's search_path names, when whoever began the transaction
# set it (the Applier does, per task): COPY needs the schema by name, and asking PostgreSQL
# costs a round trip per table per batch.
SEARCH_SCHEMA: ContextVar[str | None] = ContextVar("search_schema", default=None)


async def delete_patients(
    conn: AsyncConnection, tables: Sequence[Table], keys: Sequence[PatientKey]
) -> None:
    """Delete every row of `keys`' patients from `tables`, in one statement and round trip."""
    if keys:
        trials, sites, patients = (list(column) for column in zip(*keys, strict=True))
        await conn.execute(
            _delete_statement(tuple(table.name for table in tables)),
            {"trials": trials, "sites": sites, "patients": patients},
        )


@functools.cache
def _delete_statement(tables: tuple[str, ...]) -> TextClause:
    """One data-modifying CTE per table over the keys (unqualified: the search_path's schema);
    built once per set of tables, so nothing is compiled per batch."""

    def delete_from(table: str) -> str:
        return (
            f'DELETE FROM "{table}" AS t USING keys AS k WHERE t.trial_id = k.trial_id '
            "AND t.site_id = k.site_id AND t.patient_id = k.patient_id"
        )

    keys = (
        "keys AS (SELECT * FROM unnest(CAST(:trials AS text[]), CAST(:sites AS text[]), "
        "CAST(:patients AS text[])) AS k(trial_id, site_id, patient_id))"
    )
    parts = [keys, *(f"d{n} AS ({delete_from(table)})" for n, table in enumerate(tables[:-1]))]
    return text(f"WITH {', '.join(parts)} {delete_from(tables[-1])}")


async def copy_rows(conn: AsyncConnection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Bulk-load rows with PostgreSQL COPY inside the current transaction (the build's schema
    is on the search_path): many times faster than INSERT for a batch of thousands of rows.

    JSONB values are encoded as SQLAlchemy would encode them (None as JSON null unless the
    column says otherwise), so rows read back the same whichever way they were written."""
    if not rows:
        return
    columns = list(rows[0])
    take = operator.itemgetter(*columns) if len(columns) > 1 else (lambda row: (row[columns[0]],))
    records = [take(row) for row in rows]
    encoders = [
        (i, encoder)
        for i, name in enumerate(columns)
        if (encoder := _encoder(table.c[name])) is not None
    ]
    if encoders:  # only the JSONB cells need encoding; the driver takes the rest as they are
        records = [_encoded(record, encoders) for record in records]
    raw = await conn.get_raw_connection()
    schema = SEARCH_SCHEMA.get()
    if schema is None:
        schema = (await conn.execute(text("SELECT current_schema()"))).scalar_one()
    driver = raw.driver_connection
    assert driver is not None, "an asyncpg connection"
    await driver.copy_records_to_table(
        table.name, records=records, columns=columns, schema_name=schema
    )


def _encoded(
    record: tuple[Any, ...], encoders: list[tuple[int, Callable[[Any], Any]]]
) -> tuple[Any, ...]:
    cells = list(record)
    for i, encode in encoders:
        cells[i] = encode(cells[i])
    return tuple(cells)


# One encoder for every cell: `json.dumps` with options builds a new one per call.
_JSON = json.JSONEncoder(separators=(",", ":")).encode


def _encoder(column: Column[Any]) -> Callable[[Any], Any] | None:
    if not isinstance(column.type, JSON):
        return None
    none_as_null = column.type.none_as_null

    def encode(value: Any) -> Any:
        if value is None and none_as_null:
            return None
        if isinstance(value, RawJson):
            return str(value)
        return _JSON(value)

    return encode


def state_row(key: PatientKey, recorded: list[Recorded]) -> dict[str, Any]:
    state = fold_ledger(recorded)
    trial_id, site_id, patient_id = key
    row: dict[str, Any] = {"trial_id": trial_id, "site_id": site_id, "patient_id": patient_id}
    row.update({column: getattr(state, column) for column in STATE_COLUMNS})
    row["event_count"] = row["event_count"] or 0
    row["last_seq"] = row["last_seq"] or 0
    return row


def audit_rows_for(key: PatientKey, recorded: list[Recorded]) -> list[dict[str, Any]]:
    trial_id, site_id, patient_id = key
    rows = []
    for audit in audit_trail(effective_history(recorded), recorded):
        rows.append(
            {
                "seq": audit.seq,
                "trial_id": trial_id,
                "site_id": site_id,
                "patient_id": patient_id,
                "event_id": audit.event_id,
                "type": audit.type,
                "occurred_on": audit.occurred_on,
                "recorded_at": None if audit.recorded_at is None else audit.recorded_at.isoformat(),
                "recorded_by": audit.recorded_by,
                "reason": audit.reason,
                "hash": audit.hash,
                "prev_hash": audit.prev_hash,
                "status": audit.status,
                "target_event_id": audit.target_event_id,
                "target_seq": audit.target_seq,
                "amended_by": list(audit.amended_by) or None,
                "changes": [change.as_dict() for change in audit.changes] or None,
            }
        )
    return rows
