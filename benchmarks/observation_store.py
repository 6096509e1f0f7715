"""Observation store: our indexed table versus upstream's unindexed one, same database.

    python benchmarks/observation_store.py [--rows 1000000] [--backends sqlite,postgresql,mysql]

For each backend it makes a scratch schema (PostgreSQL), database (MySQL) or file
(SQLite), bulk-loads ``--rows`` observation rows into both tables (COPY on PostgreSQL,
multi-row INSERTs on MySQL, executemany in one transaction on SQLite), then measures

* ReportObservationLog: rows/second of the DB work of the RPC, ``--reports`` reports of
  ``--batch`` rows each, one transaction per report. Ours: ``Store.report_observations``;
  upstream: one multi-row ``INSERT`` per report, as its db-manager builds it.
* GetObservationLog: latency of reading one trial's metric. Ours:
  ``Store.get_observations(trial, metric)`` (index range scan); upstream:
  ``SELECT time, metric_name, value FROM ... WHERE trial_name=? AND metric_name=? ORDER BY
  time`` on its schema (full table scan).

and prints one table with the ratio ours/upstream (higher is better for both columns: rows/s
for reports, speed-up for reads). Servers come from ``--postgres-url`` / ``--mysql-url``; an
unreachable one is reported and skipped. gRPC overhead is the same for both and left out.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from katib.api.observation import MetricLog  # noqa: E402
from katib.store import Store  # noqa: E402

UPSTREAM = "upstream_observation_logs"
UPSTREAM_DDL = {
    "mysql": f"CREATE TABLE {UPSTREAM} (trial_name VARCHAR(255) NOT NULL,"
             " id INT AUTO_INCREMENT PRIMARY KEY, time DATETIME(6),"
             " metric_name VARCHAR(255) NOT NULL, value TEXT NOT NULL)",
    "postgresql": f"CREATE TABLE {UPSTREAM} (trial_name VARCHAR(255) NOT NULL,"
                  " id serial PRIMARY KEY, time TIMESTAMP(6),"
                  " metric_name VARCHAR(255) NOT NULL, value TEXT NOT NULL)",
    "sqlite": f"CREATE TABLE {UPSTREAM} (trial_name VARCHAR(255) NOT NULL,"
              " id INTEGER PRIMARY KEY AUTOINCREMENT, time DATETIME,"
              " metric_name VARCHAR(255) NOT NULL, value TEXT NOT NULL)",
}
METRICS = ("loss", "accuracy")
STEPS = 100  # rows per trial and metric: one GetObservationLog returns this many
T0 = datetime(2024, 1, 1)


def _parts(url: str) -> dict[str, Any]:
    u = urlsplit(url)
    return {"host": u.hostname or "127.0.0.1", "port": u.port, "user": unquote(u.username or ""),
            "password": unquote(u.password or ""), "database": u.path.lstrip("/")}


@contextmanager
def scratch(backend: str, args: argparse.Namespace) -> Iterator[str]:
    """An empty database of ``backend``; dropped afterwards."""
    name = f"katib_bench_{uuid.uuid4().hex[:8]}"
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(dir=args.sqlite_dir) as d:
            yield f"sqlite:///{d}/bench.db"
    elif backend == "postgresql":
        import psycopg2

        p = _parts(args.postgres_url)
        admin = psycopg2.connect(host=p["host"], port=p["port"] or 5432, user=p["user"],
                                 password=p["password"], dbname=p["database"], connect_timeout=3)
        admin.autocommit = True
        admin.cursor().execute(f"CREATE SCHEMA {name}")
        try:
            sep = "&" if "?" in args.postgres_url else "?"
            yield f"{args.postgres_url}{sep}options=-csearch_path%3D{name}"
        finally:
            admin.cursor().execute(f"DROP SCHEMA {name} CASCADE")
            admin.close()
    elif backend == "mysql":
        import pymysql

        p = _parts(args.mysql_url)
        admin = pymysql.connect(host=p["host"], port=p["port"] or 3306, user=p["user"],
                                password=p["password"], connect_timeout=3, autocommit=True)
        admin.cursor().execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        try:
            yield urlsplit(args.mysql_url)._replace(path="/" + name).geturl()
        finally:
            admin.cursor().execute(f"DROP DATABASE {name}")
            admin.close()
    else:
        raise ValueError(backend)


def generate(rows: int) -> Iterator[tuple[str, datetime, str, str, int]]:
    """(trial_name, time, metric_name, value, step): trials of STEPS steps of each metric."""
    per_trial = STEPS * len(METRICS)
    for i in range(rows):
        trial, rest = divmod(i, per_trial)
        step, metric = divmod(rest, len(METRICS))
        yield (f"trial-{trial:07d}", T0 + timedelta(seconds=i, microseconds=i % 1000),
               METRICS[metric], f"{random.random():.6f}", step + 1)


class Raw:
    """A DBAPI connection from the store's pool, for the bulk load and upstream's SQL."""

    def __init__(self, store: Store, backend: str) -> None:
        self.backend = backend
        self.conn = store.engine.raw_connection()
        self.mark = "?" if backend == "sqlite" else "%s"

    def begin(self) -> None:
        if self.backend == "sqlite":  # the store runs the sqlite3 driver in autocommit mode
            self.conn.cursor().execute("BEGIN")

    def commit(self) -> None:
        if self.backend == "sqlite":
            self.conn.cursor().execute("COMMIT")
        else:
            self.conn.commit()

    def execute(self, sql: str, params: Any = ()) -> list[Any]:
        cur = self.conn.cursor()
        cur.execute(sql.replace("?", self.mark), params)
        return cur.fetchall() if cur.description else []

    def load(self, table: str, rows: int, with_step: bool) -> float:
        """Bulk-load ``rows`` generated rows into ``table``; returns seconds taken."""
        cols = "trial_name, time, metric_name, value" + (", step" if with_step else "")
        width = 5 if with_step else 4
        start = time.perf_counter()
        chunk: list[tuple[Any, ...]] = []
        for row in generate(rows):
            if self.backend == "sqlite":  # the text format SQLAlchemy stores and parses
                row = (row[0], row[1].strftime("%Y-%m-%d %H:%M:%S.%f"), *row[2:])
            chunk.append(row[:width])
            if len(chunk) == 50_000:
                self._load_chunk(table, cols, width, chunk)
                chunk = []
        if chunk:
            self._load_chunk(table, cols, width, chunk)
        if self.backend != "sqlite":
            self.execute(f"ANALYZE {'TABLE ' if self.backend == 'mysql' else ''}{table}")
            self.commit()
        return time.perf_counter() - start

    def _load_chunk(self, table: str, cols: str, width: int, chunk: list[tuple[Any, ...]]) -> None:
        self.begin()
        cur = self.conn.cursor()
        if self.backend == "postgresql":
            buf = io.StringIO("".join("\t".join(str(v) for v in r) + "\n" for r in chunk))
            cur.copy_expert(f"COPY {table} ({cols}) FROM STDIN", buf)
        else:  # PyMySQL rewrites this into multi-row INSERTs; sqlite3 prepares it once
            marks = ", ".join([self.mark] * width)
            cur.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", chunk)
        self.commit()

    def close(self) -> None:
        self.conn.close()


def new_logs(report: int, batch: int) -> list[MetricLog]:
    base = datetime(2025, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=report)
    # Positioned as collected rows are (the report number), so the insert checks for repeats.
    return [MetricLog(METRICS[i % 2], f"{random.random():.6f}", base + timedelta(microseconds=i), i + 1, i + 1)
            for i in range(batch)]


def bench_report(store: Store, raw: Raw, reports: int, batch: int) -> tuple[float, float]:
    """Rows per second for ours and upstream's way of storing a report."""
    start = time.perf_counter()
    for r in range(reports):
        store.report_observations(f"new-trial-{r}", new_logs(r, batch))
    ours = reports * batch / (time.perf_counter() - start)

    start = time.perf_counter()
    for r in range(reports):
        logs = new_logs(r, batch)
        values = ", ".join(["(?, ?, ?, ?)"] * len(logs))
        params: list[Any] = []
        for m in logs:
            stamp: Any = m.timestamp.replace(tzinfo=None)
            if raw.backend == "sqlite":
                stamp = stamp.strftime("%Y-%m-%d %H:%M:%S.%f")
            params += [f"new-trial-{r}", stamp, m.metric_name, m.value]
        raw.begin()
        raw.execute(f"INSERT INTO {UPSTREAM} (trial_name, time, metric_name, value) VALUES {values}",
                    params)
        raw.commit()
    upstream = reports * batch / (time.perf_counter() - start)
    return ours, upstream


def bench_get(store: Store, raw: Raw, trials: int, repeat: int, upstream_repeat: int
              ) -> tuple[float, float, int]:
    """Median latency in ms (ours, upstream) of reading one trial's metric; rows returned."""
    names = [f"trial-{random.randrange(trials):07d}" for _ in range(max(repeat, upstream_repeat))]
    store.get_observations(names[0], "loss")  # warm the pool and the cache for both
    ours = []
    for name in names[:repeat]:
        start = time.perf_counter()
        got = store.get_observations(name, "loss")
        ours.append(time.perf_counter() - start)
    query = (f"SELECT time, metric_name, value FROM {UPSTREAM} WHERE trial_name = ? AND "
             "metric_name = ? ORDER BY time")
    raw.begin()
    raw.execute(query, (names[0], "loss"))
    raw.commit()
    upstream = []
    for name in names[:upstream_repeat]:
        raw.begin()
        start = time.perf_counter()
        rows = raw.execute(query, (name, "loss"))
        upstream.append(time.perf_counter() - start)
        raw.commit()
        if len(rows) != len(got) and len(got) == STEPS:
            raise AssertionError(f"upstream read {len(rows)} rows, ours {len(got)}")
    return statistics.median(ours) * 1e3, statistics.median(upstream) * 1e3, len(got)


def run(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    with scratch(backend, args) as url:
        store = Store(url)
        raw = Raw(store, backend)
        raw.begin()
        raw.execute(UPSTREAM_DDL[backend])
        raw.commit()
        load_ours = raw.load("observation_logs", args.rows, with_step=True)
        load_upstream = raw.load(UPSTREAM, args.rows, with_step=False)
        trials = max(1, args.rows // (STEPS * len(METRICS)))
        get_ours, get_upstream, got = bench_get(store, raw, trials, args.gets, args.upstream_gets)
        rep_ours, rep_upstream = bench_report(store, raw, args.reports, args.batch)
        raw.close()
        store.close()
    return {"backend": backend, "rows": args.rows, "load_ours": load_ours,
            "load_upstream": load_upstream, "rep_ours": rep_ours, "rep_upstream": rep_upstream,
            "get_ours": get_ours, "get_upstream": get_upstream, "got": got}


def table(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    head = ("| backend | stored rows | bulk load s (ours / upstream) | Report rows/s ours | "
            "Report rows/s upstream | ratio | Get ms ours | Get ms upstream | speed-up |")
    lines = [head, "|" + "---|" * 9]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['backend']} | skipped: {r['error']} |" + " |" * 7)
            continue
        lines.append(
            f"| {r['backend']} | {r['rows']:,} | {r['load_ours']:.1f} / {r['load_upstream']:.1f} | "
            f"{r['rep_ours']:,.0f} | {r['rep_upstream']:,.0f} | {r['rep_ours'] / r['rep_upstream']:.2f}x | "
            f"{r['get_ours']:.2f} | {r['get_upstream']:.1f} | {r['get_upstream'] / r['get_ours']:,.0f}x |")
    lines.append("")
    lines.append(f"Report: {args.reports} reports of {args.batch} rows, one transaction each. "
                 f"Get: median of {args.gets} (ours) / {args.upstream_gets} (upstream) reads of one "
                 f"trial's metric ({STEPS} rows).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows stored before measuring")
    parser.add_argument("--backends", default="sqlite,postgresql,mysql")
    parser.add_argument("--postgres-url", default=os.environ.get(
        "KATIB_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--mysql-url", default=os.environ.get(
        "KATIB_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test"))
    parser.add_argument("--sqlite-dir", default=None, help="where the SQLite file goes (default tmp)")
    parser.add_argument("--reports", type=int, default=200)
    parser.add_argument("--batch", type=int, default=100, help="rows per report")
    parser.add_argument("--gets", type=int, default=50)
    parser.add_argument("--upstream-gets", type=int, default=10)
    args = parser.parse_args(argv)
    random.seed(1)
    results = []
    for backend in args.backends.split(","):
        print(f"{backend}: loading {args.rows:,} rows into each table ...", file=sys.stderr, flush=True)
        try:
            results.append(run(backend.strip(), args))
        except Exception as exc:  # noqa: BLE001 - an unreachable server is a row, not a crash
            if type(exc).__name__ not in ("OperationalError", "ConnectionRefusedError"):
                raise
            results.append({"backend": backend, "error": f"{type(exc).__name__}: {exc}".splitlines()[0]})
    print(table(results, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
