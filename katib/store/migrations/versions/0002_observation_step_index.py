"""Observation steps and the (trial_name, metric_name, time) index.

Upstream's table has no index, so every GetObservationLog scans all observations of every
trial ever run. Existing rows are kept; their step stays NULL (report order).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("observation_logs", sa.Column("step", sa.BigInteger(), nullable=True))
    op.create_index(
        "ix_observation_logs_trial_metric_time",
        "observation_logs",
        ["trial_name", "metric_name", "time"],
    )


def downgrade() -> None:
    op.drop_index("ix_observation_logs_trial_metric_time", table_name="observation_logs")
    with op.batch_alter_table("observation_logs") as batch:  # SQLite cannot drop columns
        batch.drop_column("step")
