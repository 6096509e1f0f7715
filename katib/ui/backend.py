"""What the dashboard reads from and acts on: one ``KatibClient``, opened lazily and again
after a failure, and the settings the pages need (backend, namespace, whether actions are
allowed).

A store that cannot be opened or a cluster that cannot be reached must not take the server
down or show a stack trace: ``Dashboard.call`` turns the driver's errors into ``Unavailable``
with a message that names what was tried and how to fix it, and the next request tries again.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from katib.errors import KatibError

__all__ = ["Dashboard", "Settings", "Unavailable", "ClientFactory"]

log = logging.getLogger(__name__)

T = TypeVar("T")
ClientFactory = Callable[[], Any]  # returns a katib.sdk.client.KatibClient

# Errors of the layers below the client: the database driver, SQLAlchemy, the HTTP client of
# the Kubernetes API, its configuration loader. Anything else is a bug and is logged as one.
_BELOW = frozenset({"sqlalchemy", "sqlite3", "psycopg2", "pymysql", "MySQLdb", "urllib3", "kubernetes", "google",
                    "grpc", "alembic"})
_PASSWORD = re.compile(r"(://[^:/@]*):[^@/]*@")


class Unavailable(KatibError):
    """The store cannot be opened or read, or the cluster cannot be reached."""

    retryable = True


@dataclass(frozen=True)
class Settings:
    backend: str = "local"  # "local" | "kubernetes"
    namespace: str | None = None  # None: the client's (the kubeconfig context's, else "default")
    allow_actions: bool = True
    read_only_reason: str = ""  # why actions are not allowed, when they are not
    source: str = ""  # what is read: the store URL (password hidden) or the cluster context
    db_manager: str | None = None  # DB manager address for metrics on Kubernetes
    timeout: float = 10.0  # seconds for one call to the API server
    retry_after: float = 2.0  # after a failure to open the client, the next attempt waits this long

    @property
    def actions_note(self) -> str:
        """Why the action buttons are disabled, or "" when they are not."""
        if self.allow_actions:
            return ""
        why = f" ({self.read_only_reason})" if self.read_only_reason else ""
        return (f"read-only: this dashboard was started without --allow-actions{why}; start it with "
                "--allow-actions to create, change, stop or delete experiments")


def hide_password(url: str) -> str:
    return _PASSWORD.sub(r"\1:***@", url)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def is_infrastructure_error(exc: BaseException) -> bool:
    """An error of the database or the cluster connection, not of the dashboard's own code."""
    if isinstance(exc, (OSError, TimeoutError)):
        return True
    return any(cls.__module__.split(".")[0] in _BELOW for cls in type(exc).__mro__)


class Dashboard:
    """The client, opened on first use; ``call`` runs one read or action with it."""

    def __init__(self, client_factory: ClientFactory, settings: Settings) -> None:
        self.settings = settings
        self._factory = client_factory
        self._client: Any = None
        self._error: Unavailable | None = None
        self._failed_at = 0.0
        self._lock = threading.Lock()

    # -- the client ------------------------------------------------------------------------
    def client(self) -> Any:
        with self._lock:
            if self._client is not None:
                return self._client
            if self._error is not None and time.monotonic() - self._failed_at < self.settings.retry_after:
                raise self._error
            try:
                self._client = self._factory()
            except Exception as exc:  # noqa: BLE001 - any failure to open is reported, not raised as is
                self._error = Unavailable(self._open_failed(exc))
                self._failed_at = time.monotonic()
                log.warning("%s", self._error, exc_info=log.isEnabledFor(logging.DEBUG))
                raise self._error from None
            self._error = None
            return self._client

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(client, *args, **kwargs)``; a database or connection error becomes Unavailable."""
        client = self.client()
        try:
            return fn(client, *args, **kwargs)
        except KatibError:
            raise
        except Exception as exc:
            if not is_infrastructure_error(exc):
                raise
            raise Unavailable(self._read_failed(exc)) from None

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                try:
                    self._client.close()
                except Exception:  # noqa: BLE001 - closing at shutdown: nothing left to tell
                    log.debug("closing the client failed", exc_info=True)
                self._client = None

    @property
    def local(self) -> bool:
        return self.settings.backend == "local"

    @property
    def namespace(self) -> str:
        """The namespace pages show unless they name another."""
        if self.settings.namespace:
            return self.settings.namespace
        with self._lock:
            client = self._client
        return str(getattr(client, "namespace", None) or "default")

    # -- messages --------------------------------------------------------------------------
    def _open_failed(self, exc: BaseException) -> str:
        if self.local:
            return (f"Cannot open the store {self.settings.source or ''}: {first_line(exc)}. Check the URL and that "
                    "the database is reachable, or start katib ui with another --db URL (or KATIB_DB_URL).")
        return (f"Cannot connect to Kubernetes{' (' + self.settings.source + ')' if self.settings.source else ''}: "
                f"{first_line(exc)}. Pass --kubeconfig PATH (and --context NAME), or --in-cluster inside a pod.")

    def _read_failed(self, exc: BaseException) -> str:
        if self.local:
            return (f"Cannot read the store {self.settings.source or ''}: {first_line(exc)}. Check that the database "
                    "is reachable; this page retries on its own.")
        return (f"Cannot reach the Kubernetes API server{' (' + self.settings.source + ')' if self.settings.source else ''}"
                f": {first_line(exc)}. Check that the cluster is up and reachable; this page retries on its own.")
