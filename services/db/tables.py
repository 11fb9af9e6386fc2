"""Read-model schema (SQLAlchemy Core). Alembic migrations in services/db/migrations create it.

Every read model lives in one PostgreSQL schema (a "build"); `ledger_meta.active_build`
names the one the API reads. A rebuild fills a fresh schema aside, then switches the pointer.
No table holds a wall-clock column but `parked_event.parked_at` (an operator's "since when"),
which digests and comparisons leave out: a rebuild must give identical rows (DESIGN.md rule 1).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP

# One MetaData for every read-model table (core, clinical, safety): the single description
# of a build's schema that the migrations must agree with.
metadata = MetaData()


def read_model_metadata() -> MetaData:
    """Every read-model table, whichever modules the caller has imported so far."""
    # the projections' table modules add their tables to `metadata` when imported
    from services.db import clinical_tables, safety_tables  # noqa: F401

    return metadata


META_SCHEMA = "ledger_meta"
DEFAULT_BUILD = "live"

checkpoints = Table(
    "projection_checkpoint",
    metadata,
    Column("projection", Text, primary_key=True),
    Column("last_seq", BigInteger, nullable=False),
    Column("applied", BigInteger, nullable=False, server_default="0"),
)

parked_events = Table(
    "parked_event",
    metadata,
    Column("projection", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("subject", Text, nullable=False),
    Column("event_id", Text),
    Column("reason", Text, nullable=False),
    # when it was parked, for the operator; the one wall-clock column, left out of digests
    Column("parked_at", TIMESTAMP(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("projection", "seq"),
)

event_index = Table(
    "event_index",
    metadata,
    Column("seq", BigInteger, primary_key=True),
    Column("event_id", Text, nullable=False, unique=True),
    Column("trial_id", Text, nullable=False, index=True),
    Column("site_id", Text, nullable=False),
    Column("patient_id", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("schema_version", Integer, nullable=False),
    Column("occurred_on", Date, nullable=False),
    Column("recorded_at", TIMESTAMP(timezone=True), nullable=False),
    Column("recorded_by", Text, nullable=False),
    Column("reason", Text),
    Column("hash", Text, nullable=False),
    Column("prev_hash", Text, nullable=False),
    Column("body", JSONB, nullable=False),
    Index("ix_event_index_patient", "trial_id", "site_id", "patient_id", "seq"),
)

patient_state = Table(
    "patient_state",
    metadata,
    Column("trial_id", Text, nullable=False),
    Column("site_id", Text, nullable=False),
    Column("patient_id", Text, nullable=False),
    Column("status", Text),
    Column("bclc_stage", Text),
    Column("child_pugh", Text),
    Column("ecog", Integer),
    Column("baseline_pvtt", Boolean),
    Column("baseline_extrahepatic_spread", Boolean),
    Column("enrolled_on", Date),
    Column("startdt", Date),
    Column("last_dose_on", Date),
    Column("haic_cycles", Integer, nullable=False),
    Column("pd1_infusions", Integer, nullable=False),
    Column("pd1_status", Text),
    Column("lenvatinib_status", Text),
    Column("lenvatinib_dose_mg", Float),
    Column("scans", Integer, nullable=False),
    Column("last_scan_on", Date),
    Column("worst_ae_grade", Integer),
    Column("death_on", Date),
    Column("last_known_alive_on", Date),
    Column("subsequent_therapy_on", Date),
    Column("discontinued_on", Date),
    Column("withdrawn_on", Date),
    Column("event_count", Integer, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("last_hash", Text),
    PrimaryKeyConstraint("trial_id", "site_id", "patient_id"),
)

audit_trail = Table(
    "audit_trail",
    metadata,
    Column("seq", BigInteger, primary_key=True),
    Column("trial_id", Text, nullable=False),
    Column("site_id", Text, nullable=False),
    Column("patient_id", Text, nullable=False),
    Column("event_id", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("occurred_on", Date, nullable=False),
    Column("recorded_at", Text),
    Column("recorded_by", Text, nullable=False),
    Column("reason", Text),
    Column("hash", Text),
    Column("prev_hash", Text),
    Column("status", Text, nullable=False),
    Column("target_event_id", Text),
    Column("target_seq", BigInteger),
    Column("amended_by", JSONB),
    Column("changes", JSONB),
    Index("ix_audit_trail_patient", "trial_id", "site_id", "patient_id"),
)

# A rebuild must reproduce every other table's rows exactly; these two are positions/bookkeeping.
NOT_DIGESTED = frozenset({"projection_checkpoint", "alembic_version"})
# Wall-clock columns of digested tables: when, not what, so left out of digests and compares.
NOT_DIGESTED_COLUMNS = {"parked_event": ("parked_at",)}
