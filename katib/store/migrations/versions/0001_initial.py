"""Experiments, trials, and observation_logs exactly as upstream's db-manager creates it.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Types are spelled out here, not imported from models: a migration must not change when
# the models move on.
TIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
NAME = sa.String(255)
MYSQL: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("namespace", NAME, nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.Column("uid", sa.String(64), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("status", sa.JSON(), nullable=True),
        sa.Column("created", TIME, nullable=False),
        sa.Column("updated", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_experiments"),
        sa.UniqueConstraint("namespace", "name", name="uq_experiments_namespace_name"),
        **MYSQL,
    )
    op.create_table(
        "trials",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("namespace", NAME, nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.Column("experiment_id", ROW_ID, nullable=False),
        sa.Column("uid", sa.String(64), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("status", sa.JSON(), nullable=True),
        sa.Column("created", TIME, nullable=False),
        sa.Column("updated", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_trials"),
        sa.UniqueConstraint("namespace", "name", name="uq_trials_namespace_name"),
        sa.ForeignKeyConstraint(
            ["experiment_id"], ["experiments.id"],
            name="fk_trials_experiment_id_experiments", ondelete="CASCADE",
        ),
        **MYSQL,
    )
    op.create_index("ix_trials_experiment_id_state", "trials", ["experiment_id", "state"])
    # Upstream's DDL: no index besides the primary key. A database upstream's db-manager
    # created has this table already: adopt it with its rows (0002 adds what it lacks).
    if sa.inspect(op.get_bind()).has_table("observation_logs"):
        return
    op.create_table(
        "observation_logs",
        sa.Column("trial_name", NAME, nullable=False),
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("time", TIME, nullable=True),
        sa.Column("metric_name", NAME, nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_observation_logs"),
        **MYSQL,
    )


def downgrade() -> None:
    op.drop_table("observation_logs")
    op.drop_table("trials")
    op.drop_table("experiments")
