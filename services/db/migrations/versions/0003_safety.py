"""Safety read model: parameters by seq, per-patient treatment dates and death, AE episodes,
SAE clocks (services/db/safety_tables.py).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "safety_parameters",
        sa.Column("trial_id", sa.Text, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("parameters", JSONB, nullable=False),
        sa.PrimaryKeyConstraint("trial_id", "seq"),
    )
    op.create_table(
        "safety_patient",
        sa.Column("trial_id", sa.Text, nullable=False),
        sa.Column("site_id", sa.Text, nullable=False),
        sa.Column("patient_id", sa.Text, nullable=False),
        sa.Column("startdt", sa.Date),
        sa.Column("last_dose_on", sa.Date),
        sa.Column("death_seq", sa.BigInteger),
        sa.Column("death_on", sa.Date),
        sa.Column("death_cause", sa.Text),
        sa.Column("parameters_version", sa.Integer),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("trial_id", "site_id", "patient_id"),
    )
    op.create_table(
        "ae_episode",
        sa.Column("ae_event_id", sa.Text, primary_key=True),
        sa.Column("trial_id", sa.Text, nullable=False),
        sa.Column("site_id", sa.Text, nullable=False),
        sa.Column("patient_id", sa.Text, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("term", sa.Text, nullable=False),
        sa.Column("verbatim", sa.Text),
        sa.Column("soc", sa.Text),
        sa.Column("onset", sa.Date, nullable=False),
        sa.Column("grades", JSONB, nullable=False),
        sa.Column("worst_grade", sa.Integer, nullable=False),
        sa.Column("current_grade", sa.Integer, nullable=False),
        sa.Column("serious", sa.Boolean, nullable=False),
        sa.Column("seriousness", JSONB, nullable=False),
        sa.Column("serious_trigger", sa.Text),
        sa.Column("serious_trigger_event_id", sa.Text),
        sa.Column("serious_trigger_seq", sa.BigInteger),
        sa.Column("fatal", sa.Boolean, nullable=False),
        sa.Column("attribution", JSONB, nullable=False),
        sa.Column("related_agents", JSONB, nullable=False),
        sa.Column("expected", sa.Boolean, nullable=False),
        sa.Column("immune_related", sa.Boolean, nullable=False),
        sa.Column("susar", sa.Boolean, nullable=False),
        sa.Column("action_taken", sa.Text, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("resolved_on", sa.Date),
        sa.Column("pre_existing", sa.Boolean, nullable=False),
        sa.Column("treatment_emergent", sa.Boolean, nullable=False),
        sa.Column("dose_modification_seqs", JSONB, nullable=False),
        sa.Column("discontinuation_seqs", JSONB, nullable=False),
        sa.Column("seqs", JSONB, nullable=False),
        sa.Column("parameters_version", sa.Integer),
    )
    op.create_index("ix_ae_episode_patient", "ae_episode", ["trial_id", "site_id", "patient_id"])
    op.create_table(
        "sae_clock",
        sa.Column("alert_id", sa.Text, primary_key=True),
        sa.Column("trial_id", sa.Text, nullable=False),
        sa.Column("site_id", sa.Text, nullable=False),
        sa.Column("patient_id", sa.Text, nullable=False),
        sa.Column("ae_event_id", sa.Text, nullable=False),
        sa.Column("ae_seq", sa.BigInteger, nullable=False),
        sa.Column("term", sa.Text, nullable=False),
        sa.Column("grade", sa.Integer, nullable=False),
        sa.Column("seriousness", JSONB, nullable=False),
        sa.Column("trigger", sa.Text, nullable=False),
        sa.Column("trigger_event_id", sa.Text, nullable=False),
        sa.Column("trigger_seq", sa.BigInteger, nullable=False),
        sa.Column("awareness_at", TIMESTAMP(timezone=True), nullable=False),
        sa.Column("site_aware_at", TIMESTAMP(timezone=True)),
        sa.Column("late_entry", sa.Boolean),
        sa.Column("susar", sa.Boolean, nullable=False),
        sa.Column("fatal_or_life_threatening", sa.Boolean, nullable=False),
        sa.Column("expedited_days", sa.Integer),
        sa.Column("acknowledgement_due", sa.Date, nullable=False),
        sa.Column("report_due", sa.Date),
        sa.Column("acknowledged_at", TIMESTAMP(timezone=True)),
        sa.Column("acknowledgement_seqs", JSONB, nullable=False),
        sa.Column("report_submitted_on", sa.Date),
    )
    op.create_index("ix_sae_clock_patient", "sae_clock", ["trial_id", "site_id", "patient_id"])


def downgrade() -> None:
    for table in ("sae_clock", "ae_episode", "safety_patient", "safety_parameters"):
        op.drop_table(table)
