"""Clinical flags: which response timepoints the analysis uses, and each baseline's flags.

response_timepoint.analysed / not_analysed_because: in the best-response window or why not
(after the data cut-off, after subsequent therapy, after the first PD, ...; ADRS ANL01FL).
best_response.baseline_flags / baseline_notes: the baseline's flags per criterion and their
sentences (no usable baseline and why, non-measurable target, > 5 targets, > 2 per organ).

Revision ID: 0004_clinical_flags
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004_clinical_flags"
down_revision = "0004_sae_follow_ups"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "response_timepoint",
        sa.Column("analysed", sa.Boolean, nullable=False, server_default=sa.true()),
    )
    op.add_column("response_timepoint", sa.Column("not_analysed_because", sa.Text))
    for name in ("baseline_flags", "baseline_notes"):
        op.add_column(
            "best_response",
            sa.Column(name, JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        )


def downgrade() -> None:
    op.drop_column("response_timepoint", "analysed")
    op.drop_column("response_timepoint", "not_analysed_because")
    op.drop_column("best_response", "baseline_flags")
    op.drop_column("best_response", "baseline_notes")
