"""Observation positions: one row per (trial, metric, position).

A runner killed between storing a batch of metrics and recording how far it read its log
read the same lines again and stored them twice. Rows now carry which report of the metric
they are, and a unique index makes the store keep the first copy. Existing rows keep a NULL
position, which never conflicts, so no row is dropped or rewritten by the upgrade.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("observation_logs", sa.Column("position", sa.BigInteger(), nullable=True))
    op.create_index(
        "ux_observation_logs_trial_metric_position",
        "observation_logs",
        ["trial_name", "metric_name", "position"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("ux_observation_logs_trial_metric_position", table_name="observation_logs")
    with op.batch_alter_table("observation_logs") as batch:  # SQLite cannot drop columns
        batch.drop_column("position")
