"""Tables of the store, as SQLAlchemy 2 models.

``observation_logs`` keeps upstream's name and columns (trial_name, id, time, metric_name,
value), so upstream's db-manager can read the table, and adds what upstream lacks: a
nullable ``step``, the (trial_name, metric_name, time) index that turns every
GetObservationLog from a full table scan into an index range scan (reference §13 item 18),
and a nullable ``position`` with a unique (trial_name, metric_name, position) index: which
report of the metric a row is (``MetricLog.position``), so that a collector that reads a
log again after a crash, or a push that is retried, stores nothing twice. Rows without a
position (upstream's) are never repeats: NULLs are distinct in a unique index on every
backend. Trial names in it are not namespaced, as upstream's.

Times are naive UTC with microsecond precision on every backend (MySQL needs DATETIME(6)).
On MySQL every table uses the binary collation: names are case-sensitive, as in Kubernetes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["Base", "ExperimentRow", "TrialRow", "ObservationRow", "metadata", "NAME_LENGTH"]

NAME_LENGTH = 255
# Explicit constraint names so that migrations can refer to them on every backend.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
MYSQL_TABLE = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}

Time = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid alias), not BIGINT.
RowId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


metadata = Base.metadata


class ExperimentRow(Base):
    __tablename__ = "experiments"
    __table_args__ = (UniqueConstraint("namespace", "name"), MYSQL_TABLE)

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    namespace: Mapped[str] = mapped_column(String(NAME_LENGTH))
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    uid: Mapped[str] = mapped_column(String(64))
    meta: Mapped[dict[str, Any]] = mapped_column(JSON)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created: Mapped[datetime] = mapped_column(Time)
    updated: Mapped[datetime] = mapped_column(Time)


class TrialRow(Base):
    __tablename__ = "trials"
    __table_args__ = (
        UniqueConstraint("namespace", "name"),
        Index("ix_trials_experiment_id_state", "experiment_id", "state"),
        MYSQL_TABLE,
    )

    # Increasing with creation: listing by id is listing in creation order.
    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    namespace: Mapped[str] = mapped_column(String(NAME_LENGTH))
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    experiment_id: Mapped[int] = mapped_column(
        RowId, ForeignKey("experiments.id", ondelete="CASCADE")
    )
    uid: Mapped[str] = mapped_column(String(64))
    # Upstream's classification (Succeeded, Running, Pending, ...), kept in step with status.
    state: Mapped[str] = mapped_column(String(32))
    meta: Mapped[dict[str, Any]] = mapped_column(JSON)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created: Mapped[datetime] = mapped_column(Time)
    updated: Mapped[datetime] = mapped_column(Time)


class ObservationRow(Base):
    __tablename__ = "observation_logs"
    __table_args__ = (
        Index("ix_observation_logs_trial_metric_time", "trial_name", "metric_name", "time"),
        Index("ux_observation_logs_trial_metric_position", "trial_name", "metric_name", "position",
              unique=True),
        MYSQL_TABLE,
    )

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    trial_name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    time: Mapped[datetime | None] = mapped_column(Time, nullable=True)
    metric_name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    value: Mapped[str] = mapped_column(Text)
    step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    position: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
