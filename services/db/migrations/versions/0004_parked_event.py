"""Parked events say why and since when: `error` becomes `reason`, `parked_at` added
(issue 14 item 6: park the event with its reason, alert, go on).

Revision ID: 0004_parked_event
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import TIMESTAMP

revision = "0004_parked_event"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.alter_column("parked_event", "error", new_column_name="reason")
    op.add_column(
        "parked_event",
        sa.Column(
            "parked_at", TIMESTAMP(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )


def downgrade() -> None:
    op.drop_column("parked_event", "parked_at")
    op.alter_column("parked_event", "reason", new_column_name="error")
