"""Database URLs for the store tests: SQLite, PostgreSQL and MySQL.

Each test gets a scratch database of its own (a file for SQLite, a fresh schema for
PostgreSQL, a fresh database for MySQL) that is dropped afterwards, so parallel and
repeated runs never see each other's rows. Servers come from ``KATIB_TEST_POSTGRES_URL`` and
``KATIB_TEST_MYSQL_URL`` (defaults: this machine's). An unreachable server skips its tests,
unless ``KATIB_TEST_REQUIRE_DB=1``, which turns the skip into a failure (CI sets it).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

POSTGRES_URL = os.environ.get(
    "KATIB_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("KATIB_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
REQUIRE_DB = os.environ.get("KATIB_TEST_REQUIRE_DB") == "1"

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.db),
    pytest.param("mysql", id="mysql", marks=pytest.mark.db),
]


def _parts(url: str) -> dict[str, Any]:
    u = urlsplit(url)
    return {
        "host": u.hostname or "127.0.0.1",
        "port": u.port,
        "user": unquote(u.username or ""),
        "password": unquote(u.password or ""),
        "database": u.path.lstrip("/"),
    }


def _unreachable(backend: str, url: str, error: Exception) -> None:
    env = "KATIB_TEST_POSTGRES_URL" if backend == "postgresql" else "KATIB_TEST_MYSQL_URL"
    message = (f"{backend} server unreachable at {url} ({type(error).__name__}: {error}); "
               f"set {env} to a reachable server")
    if REQUIRE_DB:
        pytest.fail(message + " (KATIB_TEST_REQUIRE_DB=1 makes this a failure)", pytrace=False)
    pytest.skip(message + ", or KATIB_TEST_REQUIRE_DB=1 to fail instead")


@contextmanager
def _postgres() -> Iterator[str]:
    import psycopg2

    p = _parts(POSTGRES_URL)
    try:
        conn = psycopg2.connect(host=p["host"], port=p["port"] or 5432, user=p["user"],
                                password=p["password"], dbname=p["database"] or "postgres",
                                connect_timeout=3)
    except psycopg2.OperationalError as e:
        _unreachable("postgresql", POSTGRES_URL, e)
    conn.autocommit = True
    schema = f"katib_t_{uuid.uuid4().hex[:12]}"
    with conn.cursor() as cur:
        cur.execute(f'CREATE SCHEMA "{schema}"')
    try:
        sep = "&" if "?" in POSTGRES_URL else "?"
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with conn.cursor() as cur:
            cur.execute(f'DROP SCHEMA "{schema}" CASCADE')
        conn.close()


@contextmanager
def _mysql() -> Iterator[str]:
    import pymysql

    p = _parts(MYSQL_URL)
    try:
        conn = pymysql.connect(host=p["host"], port=p["port"] or 3306, user=p["user"],
                               password=p["password"], connect_timeout=3, autocommit=True)
    except pymysql.err.OperationalError as e:
        _unreachable("mysql", MYSQL_URL, e)
    database = f"katib_t_{uuid.uuid4().hex[:12]}"
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    try:
        u = urlsplit(MYSQL_URL)
        yield u._replace(path="/" + database).geturl()
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE `{database}`")
        conn.close()


@contextmanager
def scratch_db(backend: str, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database of ``backend``, dropped on exit."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / f'katib-{uuid.uuid4().hex[:8]}.db'}"
    elif backend == "postgresql":
        with _postgres() as url:
            yield url
    elif backend == "mysql":
        with _mysql() as url:
            yield url
    else:
        raise ValueError(f"unknown backend {backend!r}")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, tmp_path: Path) -> Iterator[str]:
    with scratch_db(backend, tmp_path) as url:
        yield url


@pytest.fixture
def store(db_url: str) -> Iterator[Any]:
    from katib.store import Store

    s = Store(db_url)
    try:
        yield s
    finally:
        s.close()
