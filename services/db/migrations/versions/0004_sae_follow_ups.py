"""SAE alert history: follow-up alerts beside initial ones (kind, follows, reasons), clocks that
may be unknown (data-quality flags), and expectedness that may not be assessed yet.

Revision ID: 0004_sae_follow_ups
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004_sae_follow_ups"
down_revision = "0004_parked_event"
branch_labels = None
depends_on = None

EMPTY = sa.text("'[]'::jsonb")


def upgrade() -> None:
    op.add_column("sae_clock", sa.Column("kind", sa.Text, nullable=False, server_default="initial"))
    op.add_column("sae_clock", sa.Column("follows", sa.Text))
    for name in ("reasons", "data_quality", "not_yet_assessed"):
        op.add_column("sae_clock", sa.Column(name, JSONB, nullable=False, server_default=EMPTY))
    op.alter_column("sae_clock", "awareness_at", nullable=True)
    op.alter_column("sae_clock", "acknowledgement_due", nullable=True)
    op.alter_column("ae_episode", "expected", nullable=True)


def downgrade() -> None:
    op.alter_column("ae_episode", "expected", nullable=False)
    op.alter_column("sae_clock", "acknowledgement_due", nullable=False)
    op.alter_column("sae_clock", "awareness_at", nullable=False)
    for name in ("not_yet_assessed", "data_quality", "reasons", "follows", "kind"):
        op.drop_column("sae_clock", name)
