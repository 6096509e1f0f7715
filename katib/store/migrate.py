"""Schema migrations, run programmatically (Store does it at start unless ``skip_init``).

Several processes may start at once against one database; the upgrade runs under a lock
so that exactly one of them migrates and the others find the schema current: SQLite's
write lock (``BEGIN IMMEDIATE``), PostgreSQL's transaction advisory lock, MySQL's named
lock (MySQL commits DDL implicitly, so a transaction would not serialize it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

from katib.store.engine import WRITE

__all__ = ["HEAD", "VERSION_TABLE", "upgrade", "downgrade", "current_revision", "head_revision"]

log = logging.getLogger(__name__)

HEAD = "head"
VERSION_TABLE = "katib_alembic_version"  # not alembic's default name: the DB may be shared
_LOCK_NAME = "katib_store_migrations"
_PG_LOCK_KEY = 0x6B617469620001  # arbitrary, fixed: "katib" + 1


def _config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:
        raise RuntimeError("the store's migrations have no head revision")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; None for an empty database."""
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return ctx.get_current_revision()


def upgrade(engine: Engine, revision: str = HEAD) -> None:
    """Bring the schema to ``revision`` (default: the newest), keeping all data."""
    target = head_revision() if revision == HEAD else revision
    if current_revision(engine) == target:
        return
    _run(engine, lambda cfg: command.upgrade(cfg, revision))


def downgrade(engine: Engine, revision: str) -> None:
    """Take the schema back to ``revision`` ("base" drops every table)."""
    _run(engine, lambda cfg: command.downgrade(cfg, revision))


def _run(engine: Engine, step: Callable[[Config], None]) -> None:
    with engine.connect() as conn:
        conn = conn.execution_options(**{WRITE: True})
        dialect = conn.dialect.name
        with conn.begin():
            if dialect == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
            elif dialect in ("mysql", "mariadb"):
                conn.exec_driver_sql(f"SELECT GET_LOCK('{_LOCK_NAME}', 300)")
            try:
                log.info("migrating the store schema (%s)", engine.url.render_as_string())
                step(_config(conn))
            finally:
                if dialect in ("mysql", "mariadb"):
                    conn.exec_driver_sql(f"SELECT RELEASE_LOCK('{_LOCK_NAME}')")
