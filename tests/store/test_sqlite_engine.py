"""The SQLite engine under contention, as when `katib get` runs beside a starting `katib run`."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from katib.store.engine import make_engine


def test_connecting_waits_for_a_lock_on_a_new_database_instead_of_failing(tmp_path: Path) -> None:
    # A brand-new database is not in WAL mode yet; switching it needs an exclusive lock, and
    # SQLite refuses that at once ("database is locked") while another connection writes.
    path = tmp_path / "katib.db"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE t (x)")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO t VALUES (1)")
    released = threading.Event()

    def commit_soon() -> None:
        time.sleep(0.5)
        writer.execute("COMMIT")
        released.set()

    thread = threading.Thread(target=commit_soon)
    thread.start()
    try:
        engine = make_engine(make_url(f"sqlite:///{path}"), busy_timeout=10)
        with engine.connect() as conn:
            mode = conn.execute(text("PRAGMA journal_mode")).scalar()
            rows = conn.execute(text("SELECT x FROM t")).scalars().all()
        assert released.is_set()  # it waited for the writer rather than failing
        assert mode == "wal" and rows == [1]
        engine.dispose()
    finally:
        thread.join()
        writer.close()
