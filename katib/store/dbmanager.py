"""``katib db-manager``: Katib's ``api.v1.beta1.DBManager`` gRPC service on the Store.

A drop-in for upstream's katib-db-manager (reference §10): the same three RPCs, the same
environment variables, ``grpc.health.v1.Health`` for ``""`` and ``"grpc.health.v1.Health"``
answered by running ``SELECT 1``, reflection, 2 GiB messages. What differs: timestamps keep
microseconds both ways, reads use the (trial, metric, time) index instead of scanning the
whole table, DB_NAME may also be ``sqlite`` (the embedded default), and ``KATIB_DB_URL``
names any SQLAlchemy URL.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import wraps
from typing import Any, TypeVar

from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from katib.errors import FieldError, ServiceError, ValidationError
from katib.metrics.parsers import parse_rfc3339
from katib.metrics.values import is_non_finite
from katib.rpc import converters
from katib.rpc import server as rpc_server
from katib.store.engine import DB_URL_ENV, default_url
from katib.store.store import Store

__all__ = ["DBManagerService", "serve", "url_from_env", "main", "DEFAULT_PORT", "HEALTH_NAMES"]

log = logging.getLogger(__name__)

DEFAULT_PORT = 6789
# Upstream answers health checks for "" and this name only.
HEALTH_NAMES = ("grpc.health.v1.Health",)

F = TypeVar("F", bound=Callable[..., Any])


def _database_errors(method: F) -> F:
    """A database that is down or overloaded is UNAVAILABLE (retryable), not INTERNAL."""

    @wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except DBAPIError as exc:
            if exc.connection_invalidated or isinstance(exc, (OperationalError, InterfaceError)):
                raise ServiceError(f"database unavailable: {exc.orig}", retryable=True) from exc
            raise

    return wrapper  # type: ignore[return-value]


def _time(text: str, field: str) -> datetime | None:
    if not text:
        return None
    stamp = parse_rfc3339(text)
    if stamp is None:
        raise ValidationError([FieldError(field, f"{text!r} is not an RFC3339 timestamp "
                                                 "(e.g. 2006-01-02T15:04:05.123456Z)")])
    return stamp


class DBManagerService(rpc_server.DBManagerServicer):
    """The three DBManager RPCs on a Store's observation table."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @_database_errors
    def ReportObservationLog(self, request: Any, context: Any) -> Any:  # noqa: N802
        if not request.trial_name:
            raise ValidationError([FieldError("trialName", "must name the trial")])
        logs = converters.report_request_logs(request)
        # A value that is a number but not finite (nan, inf) is no metric value
        # (katib.metrics.values); upstream's collectors send them, and one would otherwise
        # become the best of an experiment read back by a controller.
        refused = [row for row in logs if is_non_finite(row.value)]
        if refused:
            log.warning("trial %s: not storing %d value(s) that are not finite numbers, e.g. %s=%s",
                        request.trial_name, len(refused), refused[0].metric_name, refused[0].value)
            logs = [row for row in logs if not is_non_finite(row.value)]
        self.store.report_observations(request.trial_name, logs)
        return converters.report_observation_log_reply()

    @_database_errors
    def GetObservationLog(self, request: Any, context: Any) -> Any:  # noqa: N802
        logs = self.store.get_observations(
            request.trial_name,
            request.metric_name or None,  # empty: every metric, as upstream
            _time(request.start_time, "startTime"),
            _time(request.end_time, "endTime"),
        )
        return converters.get_observation_log_reply(logs)

    @_database_errors
    def DeleteObservationLog(self, request: Any, context: Any) -> Any:  # noqa: N802
        self.store.delete_observations(request.trial_name)
        return converters.delete_observation_log_reply()

    def healthy(self) -> bool:
        try:
            self.store.ping()
            return True
        except Exception as exc:  # noqa: BLE001 - any failure means not serving
            log.warning("health check: SELECT 1 failed: %s", exc)
            return False


def serve(store: Store, port: int = DEFAULT_PORT, *, host: str = "::",
          max_workers: int = 16) -> rpc_server.ManagedServer:
    """Start serving ``store`` without blocking; ``.port`` is the bound port (0 picks one)."""
    server = rpc_server.new_server(max_workers)
    servicer = DBManagerService(store)
    converters.add_db_manager_servicer(server, servicer)
    health = rpc_server.add_health(server, HEALTH_NAMES, probe=servicer.healthy)
    rpc_server.add_reflection(server, [converters.DB_MANAGER_SERVICE])
    bound = rpc_server.bind(server, host, port)
    managed = rpc_server.ManagedServer(server, bound, health)
    managed.start()
    log.info("DB manager listening on port %d (%s)", bound, store.url.render_as_string())
    return managed


def url_from_env(env: Mapping[str, str] = os.environ) -> str | URL:
    """The database upstream's environment variables name.

    ``DB_NAME=mysql|postgres`` builds the URL from ``DB_USER``, ``DB_PASSWORD`` and the
    ``KATIB_MYSQL_DB_*`` / ``KATIB_POSTGRESQL_DB_*`` variables with upstream's defaults;
    ``DB_NAME=sqlite`` or unset means ``KATIB_DB_URL``, else the embedded SQLite file.
    """
    db = env.get("DB_NAME", "").strip().lower()
    password = env.get("DB_PASSWORD") or None
    if db == "mysql":
        return URL.create(
            "mysql+pymysql", username=env.get("DB_USER") or "root", password=password,
            host=env.get("KATIB_MYSQL_DB_HOST") or "katib-mysql",
            port=int(env.get("KATIB_MYSQL_DB_PORT") or 3306),
            database=env.get("KATIB_MYSQL_DB_DATABASE") or "katib",
            query={"charset": "utf8mb4"},
        )
    if db in ("postgres", "postgresql"):
        return URL.create(
            "postgresql+psycopg2", username=env.get("DB_USER") or "katib", password=password,
            host=env.get("KATIB_POSTGRESQL_DB_HOST") or "katib-postgres",
            port=int(env.get("KATIB_POSTGRESQL_DB_PORT") or 5432),
            database=env.get("KATIB_POSTGRESQL_DB_DATABASE") or "katib",
            query={"sslmode": env.get("KATIB_POSTGRESQL_SSL_MODE") or "disable"},
        )
    if db in ("", "sqlite"):
        return env.get(DB_URL_ENV) or default_url()
    raise ValueError(f"DB_NAME: {db!r} is not one of mysql, postgres, sqlite")


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def open_store(url: str | URL, skip_init: bool, connect_timeout: float,
               retry_every: float = 5.0) -> Store:
    """Connect (and migrate unless ``skip_init``), retrying like upstream until
    ``connect_timeout`` seconds have passed: the database often starts after us."""
    deadline = time.monotonic() + connect_timeout
    while True:
        store = Store(url, skip_init=True)
        try:
            store.ping()
            if skip_init:
                _check_schema(store)
            else:
                store.migrate()
            return store
        except DBAPIError as exc:
            store.close()
            if time.monotonic() + retry_every > deadline:
                raise ServiceError(f"cannot reach the database at "
                                   f"{store.url.render_as_string()}: {exc.orig}") from exc
            log.warning("database not reachable yet (%s); retrying in %.0fs", exc.orig, retry_every)
            time.sleep(retry_every)


def _check_schema(store: Store) -> None:
    """SKIP_DB_INITIALIZATION: only probe, as upstream does; a stale schema is an error."""
    from katib.store.migrate import current_revision, head_revision

    current, head = current_revision(store.engine), head_revision()
    if current != head:
        raise ServiceError(
            f"SKIP_DB_INITIALIZATION is set but the schema is at revision {current or 'none'}, "
            f"not {head}; unset it once so that the DB manager migrates the schema",
            retryable=False)


def main(argv: Sequence[str] | None = None) -> int:
    """``katib db-manager [--port 6789]``: serve until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(
        prog="katib db-manager",
        description="Serve observation logs over gRPC (api.v1.beta1.DBManager). The database "
                    "comes from DB_NAME (mysql|postgres|sqlite) and upstream's variables, or "
                    "KATIB_DB_URL.")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="default 6789; 0 picks one")
    parser.add_argument("--host", default="::", help="address to listen on; default all")
    parser.add_argument("--connect-timeout", type=float, default=60.0,
                        help="seconds to keep retrying the database at start (default 60)")
    parser.add_argument("--grace", type=float, default=10.0,
                        help="seconds to finish calls on shutdown")
    parser.add_argument("--db-url", help="SQLAlchemy URL; overrides the environment")
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:  # run directly, not through the katib CLI
        logging.basicConfig(level=logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    url = args.db_url or url_from_env()
    store = open_store(url, _truthy(os.environ.get("SKIP_DB_INITIALIZATION")), args.connect_timeout)
    server = serve(store, args.port, host=args.host)
    print(f"DB manager listening on port {server.port}", flush=True)  # scripts read the port
    try:
        rpc_server.run_until_signal(server, args.grace)
    finally:
        store.close()
    log.info("DB manager stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
