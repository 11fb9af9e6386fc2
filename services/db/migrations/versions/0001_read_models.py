"""Read models of the ledger core: checkpoints, parked events, event index, patient state,
audit trail.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "projection_checkpoint",
        sa.Column("projection", sa.Text, primary_key=True),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("applied", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_table(
        "parked_event",
        sa.Column("projection", sa.Text, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("event_id", sa.Text),
        sa.Column("error", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("projection", "seq"),
    )
    op.create_table(
        "event_index",
        sa.Column("seq", sa.BigInteger, primary_key=True),
        sa.Column("event_id", sa.Text, nullable=False, unique=True),
        sa.Column("trial_id", sa.Text, nullable=False, index=True),
        sa.Column("site_id", sa.Text, nullable=False),
        sa.Column("patient_id", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("schema_version", sa.Integer, nullable=False),
        sa.Column("occurred_on", sa.Date, nullable=False),
        sa.Column("recorded_at", TIMESTAMP(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.Text, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("hash", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.Text, nullable=False),
        sa.Column("body", JSONB, nullable=False),
    )
    op.create_index(
        "ix_event_index_patient", "event_index", ["trial_id", "site_id", "patient_id", "seq"]
    )
    op.create_table(
        "patient_state",
        sa.Column("trial_id", sa.Text, nullable=False),
        sa.Column("site_id", sa.Text, nullable=False),
        sa.Column("patient_id", sa.Text, nullable=False),
        sa.Column("status", sa.Text),
        sa.Column("bclc_stage", sa.Text),
        sa.Column("child_pugh", sa.Text),
        sa.Column("ecog", sa.Integer),
        sa.Column("baseline_pvtt", sa.Boolean),
        sa.Column("baseline_extrahepatic_spread", sa.Boolean),
        sa.Column("enrolled_on", sa.Date),
        sa.Column("startdt", sa.Date),
        sa.Column("last_dose_on", sa.Date),
        sa.Column("haic_cycles", sa.Integer, nullable=False),
        sa.Column("pd1_infusions", sa.Integer, nullable=False),
        sa.Column("pd1_status", sa.Text),
        sa.Column("lenvatinib_status", sa.Text),
        sa.Column("lenvatinib_dose_mg", sa.Float),
        sa.Column("scans", sa.Integer, nullable=False),
        sa.Column("last_scan_on", sa.Date),
        sa.Column("worst_ae_grade", sa.Integer),
        sa.Column("death_on", sa.Date),
        sa.Column("last_known_alive_on", sa.Date),
        sa.Column("subsequent_therapy_on", sa.Date),
        sa.Column("discontinued_on", sa.Date),
        sa.Column("withdrawn_on", sa.Date),
        sa.Column("event_count", sa.Integer, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("last_hash", sa.Text),
        sa.PrimaryKeyConstraint("trial_id", "site_id", "patient_id"),
    )
    op.create_table(
        "audit_trail",
        sa.Column("seq", sa.BigInteger, primary_key=True),
        sa.Column("trial_id", sa.Text, nullable=False),
        sa.Column("site_id", sa.Text, nullable=False),
        sa.Column("patient_id", sa.Text, nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("occurred_on", sa.Date, nullable=False),
        sa.Column("recorded_at", sa.Text),
        sa.Column("recorded_by", sa.Text, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("hash", sa.Text),
        sa.Column("prev_hash", sa.Text),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("target_event_id", sa.Text),
        sa.Column("target_seq", sa.BigInteger),
        sa.Column("amended_by", JSONB),
        sa.Column("changes", JSONB),
    )
    op.create_index("ix_audit_trail_patient", "audit_trail", ["trial_id", "site_id", "patient_id"])


def downgrade() -> None:
    for table in (
        "audit_trail",
        "patient_state",
        "event_index",
        "parked_event",
        "projection_checkpoint",
    ):
        op.drop_table(table)
