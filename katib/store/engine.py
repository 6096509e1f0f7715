"""Where the store lives and how to connect to it.

SQLite (the embedded default) is opened in WAL mode with a busy timeout and foreign keys on,
because several processes write at once: the runner, and trial processes pushing metrics.
Write transactions start with ``BEGIN IMMEDIATE`` so that a writer waits for the lock up
front (the busy timeout applies) instead of failing half-way when a read lock cannot be
upgraded, which SQLite reports as "database is locked" without waiting.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.pool import StaticPool

__all__ = ["DB_URL_ENV", "default_url", "resolve_url", "make_engine", "WRITE"]

log = logging.getLogger(__name__)

DB_URL_ENV = "KATIB_DB_URL"
# Execution option that marks a connection's transactions as writes (see module docstring).
WRITE = "katib_write"


def default_url() -> str:
    """``$KATIB_DB_URL``, else ``katib.db`` in ``$KATIB_HOME`` (default ``~/.katib``), where
    local runs also keep their trial directories."""
    home = os.environ.get("KATIB_HOME", "~/.katib")
    return os.environ.get(DB_URL_ENV) or f"sqlite:///{Path(home) / 'katib.db'}"


def resolve_url(url: str | URL | None = None) -> URL:
    """Parse ``url`` (default: ``default_url()``); for SQLite files, expand ``~`` and create
    the directory, so that a fresh laptop needs no setup."""
    parsed = make_url(url or default_url())
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        path = Path(os.path.expanduser(parsed.database))
        path.parent.mkdir(parents=True, exist_ok=True)
        parsed = parsed.set(database=str(path))
    return parsed


def make_engine(url: URL, busy_timeout: float = 30.0, **kwargs: Any) -> Engine:
    """An engine with a connection pool suited to the backend; thread-safe."""
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, busy_timeout, **kwargs)
    options: dict[str, Any] = {
        "pool_pre_ping": True,  # servers drop idle connections (MySQL wait_timeout)
        "pool_recycle": 1800,
        "pool_size": 5,
        "max_overflow": 10,
    }
    driver = url.get_driver_name()
    if driver in ("psycopg2", "pymysql", "mysqldb"):
        options["connect_args"] = {"connect_timeout": 10}
    options.update(kwargs)
    return create_engine(url, **options)


def _sqlite_engine(url: URL, busy_timeout: float, **kwargs: Any) -> Engine:
    memory = url.database in (None, "", ":memory:")
    options: dict[str, Any] = {
        # Connections move between threads through the pool; each is used by one at a time.
        "connect_args": {"check_same_thread": False, "timeout": busy_timeout},
    }
    if memory:
        options["poolclass"] = StaticPool  # one shared connection, else each sees its own DB
    options.update(kwargs)
    engine = create_engine(url, **options)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from the driver so that we can say BEGIN IMMEDIATE.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            if not memory:
                _set_wal(cur, busy_timeout)
                cur.execute("PRAGMA synchronous=NORMAL")  # durable enough in WAL, much faster
            cur.execute("PRAGMA foreign_keys=ON")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _set_wal(cur: Any, busy_timeout: float) -> None:
    """Switch the database to WAL. Switching a new database's journal mode needs an exclusive
    lock, and SQLite answers "database is locked" at once, without waiting busy_timeout, when
    another connection (a `katib get` beside a starting `katib run`) holds any lock on it;
    so retry here, for as long as any other statement would wait."""
    deadline = time.monotonic() + busy_timeout
    delay = 0.01
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
