"""Read models of the clinical endpoints: parameters per trial, responses, ADTTE, ADaM rows.

Revision ID: 0002
Revises: 0001
"""

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

PATIENT = ("trial_id", "site_id", "patient_id")


def _patient() -> list[sa.Column[Any]]:
    return [sa.Column(name, sa.Text, nullable=False) for name in PATIENT]


def _stamp() -> list[sa.Column[Any]]:
    return [
        sa.Column("parameters_version", sa.Integer, nullable=False),
        sa.Column("at_seq", sa.BigInteger, nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "clinical_trial",
        sa.Column("trial_id", sa.Text, primary_key=True),
        sa.Column("parameters_version", sa.Integer, nullable=False),
        sa.Column("parameters_seq", sa.BigInteger),
        sa.Column("parameters", JSONB, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "clinical_patient",
        *_patient(),
        sa.Column("startdt", sa.Date),
        sa.Column("treated", sa.Boolean, nullable=False),
        sa.Column("baseline_on", sa.Date),
        sa.Column("has_pvtt", sa.Boolean, nullable=False),
        sa.Column("subsequent_therapy_on", sa.Date),
        *_stamp(),
        sa.PrimaryKeyConstraint(*PATIENT),
    )
    op.create_table(
        "response_timepoint",
        *_patient(),
        sa.Column("criterion", sa.Text, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("occurred_on", sa.Date, nullable=False),
        sa.Column("target_response", sa.Text),
        sa.Column("non_target_response", sa.Text),
        sa.Column("new_lesion", sa.Boolean, nullable=False),
        sa.Column("overall", sa.Text, nullable=False),
        sa.Column("target_sum_mm", sa.Numeric),
        sa.Column("pct_change_from_baseline", sa.Float),
        sa.Column("pct_change_from_nadir", sa.Float),
        sa.Column("pd_date", sa.Date),
        sa.Column("intrahepatic_pd", sa.Boolean, nullable=False),
        sa.Column("extrahepatic_pd", sa.Boolean, nullable=False),
        sa.Column("reader_call", sa.Text),
        sa.Column("disagrees", sa.Boolean, nullable=False),
        sa.Column("flags", JSONB, nullable=False),
        sa.Column("srcseqs", JSONB, nullable=False),
        *_stamp(),
        sa.PrimaryKeyConstraint(*PATIENT, "criterion", "seq"),
    )
    op.create_table(
        "best_response",
        *_patient(),
        sa.Column("criterion", sa.Text, nullable=False),
        sa.Column("treated", sa.Boolean, nullable=False),
        sa.Column("measurable", sa.Boolean, nullable=False),
        sa.Column("has_disease", sa.Boolean, nullable=False),
        sa.Column("baseline_sum_mm", sa.Float),
        sa.Column("bor", sa.Text, nullable=False),
        sa.Column("bor_on", sa.Date),
        sa.Column("bor_seq", sa.BigInteger),
        sa.Column("cbor", sa.Text, nullable=False),
        sa.Column("cbor_on", sa.Date),
        sa.Column("cbor_seq", sa.BigInteger),
        sa.Column("best_pct_change", sa.Float),
        *_stamp(),
        sa.PrimaryKeyConstraint(*PATIENT, "criterion"),
    )
    op.create_table(
        "adtte",
        *_patient(),
        sa.Column("paramcd", sa.Text, nullable=False),
        sa.Column("param", sa.Text, nullable=False),
        sa.Column("startdt", sa.Date, nullable=False),
        sa.Column("adt", sa.Date, nullable=False),
        sa.Column("aval", sa.Integer, nullable=False),
        sa.Column("cnsr", sa.Integer, nullable=False),
        sa.Column("evntdesc", sa.Text, nullable=False),
        sa.Column("cnsdtdsc", sa.Text),
        sa.Column("srcseqs", JSONB, nullable=False),
        *_stamp(),
        sa.PrimaryKeyConstraint(*PATIENT, "paramcd"),
    )
    op.create_index("ix_adtte_trial_paramcd", "adtte", ["trial_id", "paramcd"])
    op.create_table(
        "adam_record",
        *_patient(),
        sa.Column("dataset", sa.Text, nullable=False),
        sa.Column("line", sa.Integer, nullable=False),
        sa.Column("cells", JSONB, nullable=False),
        sa.PrimaryKeyConstraint(*PATIENT, "dataset", "line"),
    )
    op.create_index("ix_adam_record_dataset", "adam_record", ["trial_id", "dataset"])


def downgrade() -> None:
    for table in (
        "adam_record",
        "adtte",
        "best_response",
        "response_timepoint",
        "clinical_patient",
        "clinical_trial",
    ):
        op.drop_table(table)
