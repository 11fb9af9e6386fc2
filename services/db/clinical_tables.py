"""Read-model tables of the clinical projection (SQLAlchemy Core; migration 0002 creates them).

Every row is a pure function of the ledger (DESIGN.md rule 1): no wall-clock column; each
derived row names the ledger position (`at_seq`) and parameter version it was computed from.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Float,
    Index,
    Integer,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB

from services.db.tables import metadata


def _patient_columns() -> list[Column[Any]]:
    return [
        Column("trial_id", Text, nullable=False),
        Column("site_id", Text, nullable=False),
        Column("patient_id", Text, nullable=False),
    ]


def _stamp_columns() -> list[Column[Any]]:
    return [
        Column("parameters_version", Integer, nullable=False),
        Column("at_seq", BigInteger, nullable=False),
    ]


clinical_trial = Table(
    "clinical_trial",
    metadata,
    Column("trial_id", Text, primary_key=True),
    Column("parameters_version", Integer, nullable=False),
    Column("parameters_seq", BigInteger),
    Column("parameters", JSONB, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
)

clinical_patient = Table(
    "clinical_patient",
    metadata,
    *_patient_columns(),
    Column("startdt", Date),
    Column("treated", Boolean, nullable=False),
    Column("baseline_on", Date),
    Column("has_pvtt", Boolean, nullable=False),
    Column("subsequent_therapy_on", Date),
    *_stamp_columns(),
    PrimaryKeyConstraint("trial_id", "site_id", "patient_id"),
)

response_timepoint = Table(
    "response_timepoint",
    metadata,
    *_patient_columns(),
    Column("criterion", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("occurred_on", Date, nullable=False),
    Column("target_response", Text),
    Column("non_target_response", Text),
    Column("new_lesion", Boolean, nullable=False),
    Column("overall", Text, nullable=False),
    Column("target_sum_mm", Numeric),
    Column("pct_change_from_baseline", Float),
    Column("pct_change_from_nadir", Float),
    Column("pd_date", Date),
    Column("intrahepatic_pd", Boolean, nullable=False),
    Column("extrahepatic_pd", Boolean, nullable=False),
    Column("reader_call", Text),
    Column("disagrees", Boolean, nullable=False),
    Column("flags", JSONB, nullable=False),
    Column("srcseqs", JSONB, nullable=False),
    *_stamp_columns(),
    # migration 0004: in the best-response window (ADRS ANL01FL), else why not
    Column("analysed", Boolean, nullable=False, server_default=true()),
    Column("not_analysed_because", Text),
    PrimaryKeyConstraint("trial_id", "site_id", "patient_id", "criterion", "seq"),
)

best_response = Table(
    "best_response",
    metadata,
    *_patient_columns(),
    Column("criterion", Text, nullable=False),
    Column("treated", Boolean, nullable=False),
    Column("measurable", Boolean, nullable=False),
    Column("has_disease", Boolean, nullable=False),
    Column("baseline_sum_mm", Float),
    Column("bor", Text, nullable=False),
    Column("bor_on", Date),
    Column("bor_seq", BigInteger),
    Column("cbor", Text, nullable=False),
    Column("cbor_on", Date),
    Column("cbor_seq", BigInteger),
    Column("best_pct_change", Float),
    *_stamp_columns(),
    # migration 0004: the baseline's flags (`projections.criteria.baseline`) and their sentences
    Column("baseline_flags", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("baseline_notes", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    PrimaryKeyConstraint("trial_id", "site_id", "patient_id", "criterion"),
)

adtte = Table(
    "adtte",
    metadata,
    *_patient_columns(),
    Column("paramcd", Text, nullable=False),
    Column("param", Text, nullable=False),
    Column("startdt", Date, nullable=False),
    Column("adt", Date, nullable=False),
    Column("aval", Integer, nullable=False),
    Column("cnsr", Integer, nullable=False),
    Column("evntdesc", Text, nullable=False),
    Column("cnsdtdsc", Text),
    Column("srcseqs", JSONB, nullable=False),
    *_stamp_columns(),
    PrimaryKeyConstraint("trial_id", "site_id", "patient_id", "paramcd"),
    Index("ix_adtte_trial_paramcd", "trial_id", "paramcd"),
)

adam_record = Table(
    "adam_record",
    metadata,
    *_patient_columns(),
    Column("dataset", Text, nullable=False),
    Column("line", Integer, nullable=False),
    Column("cells", JSONB, nullable=False),
    PrimaryKeyConstraint("trial_id", "site_id", "patient_id", "dataset", "line"),
    Index("ix_adam_record_dataset", "trial_id", "dataset"),
)

PATIENT_TABLES = (clinical_patient, response_timepoint, best_response, adtte, adam_record)
