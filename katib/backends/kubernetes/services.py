"""The services the controller calls: suggestions, and the observation database.

Suggestions: an algorithm runs in the controller's process (the default; no server to
deploy) unless ``--suggestion-address ALGO=HOST:PORT`` maps its name to a service that
speaks upstream's ``api.v1.beta1.Suggestion`` protocol: any upstream image, one of ours, or
a plug-in of the user's. Mapping a name that no built-in algorithm has is how a new
algorithm is plugged in. Remote calls have a deadline and retry what can be retried
(``RemoteSuggester``).

Early stopping: in-process likewise, unless ``--earlystopping-address NAME=HOST:PORT`` maps
the experiment's early-stopping algorithm to a service speaking ``api.v1.beta1.EarlyStopping``
(``RemoteEarlyStopper``: one client per address, deadlines and retries); the controller then
applies that service's rules (``remote_earlystopping``). The service reads completed trials'
logs from the DB manager, so it needs ``--db-manager-address``.

Observations: optional. With ``--db-manager-address`` rows go to a DBManager over gRPC
(deadline and retries on every call); with ``--db URL`` straight into our SQL store. Without
either the controller still works: observations live in each Trial's status.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any, Callable, Protocol

from katib.api.model import Experiment
from katib.api.observation import MetricLog
from katib.errors import ServiceError

__all__ = ["ObservationDB", "DBManagerClient", "StoreDB", "Services", "call_with_retries"]

log = logging.getLogger(__name__)


class ObservationDB(Protocol):
    def report(self, trial_name: str, rows: Sequence[MetricLog]) -> None: ...

    def get(self, trial_name: str, metric_name: str = "") -> list[MetricLog]: ...

    def delete(self, trial_name: str) -> None: ...


def call_with_retries(what: str, fn: Callable[[], Any], *, retries: int = 4, backoff: float = 0.25,
                      max_backoff: float = 5.0, retryable: Callable[[Exception], bool]) -> Any:
    """``fn()``, tried again after ``backoff``, 2x``backoff``, ... while ``retryable(error)``."""
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - re-raised unless retryable
            if attempt >= retries or not retryable(exc):
                raise
            pause = min(backoff * 2 ** attempt, max_backoff)
            attempt += 1
            log.warning("%s failed (%s); retry %d/%d in %.2fs", what, exc, attempt, retries, pause)
            time.sleep(pause)


class DBManagerClient:
    """An ``api.v1.beta1.DBManager`` client: one channel, a deadline on each call, retries on
    UNAVAILABLE / DEADLINE_EXCEEDED / RESOURCE_EXHAUSTED."""

    def __init__(self, address: str, timeout: float = 10.0, retries: int = 4) -> None:
        import grpc

        from katib.rpc import converters

        self.address = address
        self.timeout = timeout
        self.retries = retries
        self._grpc = grpc
        self._converters = converters
        self._channel = grpc.insecure_channel(address)
        self._stub = converters.db_manager_stub(self._channel)

    def _call(self, name: str, request: Any) -> Any:
        from katib.rpc.errors import RETRYABLE_CODES

        method = getattr(self._stub, name)

        def retryable(exc: Exception) -> bool:
            return isinstance(exc, self._grpc.RpcError) and exc.code() in RETRYABLE_CODES  # type: ignore[attr-defined]

        try:
            return call_with_retries(f"db manager {self.address} {name}",
                                     lambda: method(request, timeout=self.timeout),
                                     retries=self.retries, retryable=retryable)
        except self._grpc.RpcError as exc:
            raise ServiceError(f"db manager {self.address}: {name} failed: {exc.code().name}: {exc.details()}",
                               retryable=exc.code() in RETRYABLE_CODES) from None

    def report(self, trial_name: str, rows: Sequence[MetricLog]) -> None:
        if rows:
            self._call("ReportObservationLog", self._converters.report_observation_log_request(trial_name, rows))

    def get(self, trial_name: str, metric_name: str = "") -> list[MetricLog]:
        reply = self._call("GetObservationLog", self._converters.get_observation_log_request(trial_name, metric_name))
        return self._converters.observation_log_from_pb(reply.observation_log)  # type: ignore[no-any-return]

    def delete(self, trial_name: str) -> None:
        self._call("DeleteObservationLog", self._converters.delete_observation_log_request(trial_name))

    def close(self) -> None:
        self._channel.close()


class StoreDB:
    """Observations straight into our SQL store (``katib.store``), for a controller that
    shares a database with ``katib`` commands, and for tests."""

    def __init__(self, url: str) -> None:
        from katib.store import Store

        self.store = Store(url)

    def report(self, trial_name: str, rows: Sequence[MetricLog]) -> None:
        if rows:
            self.store.report_observations(trial_name, rows)

    def get(self, trial_name: str, metric_name: str = "") -> list[MetricLog]:
        return list(self.store.get_observations(trial_name, metric_name or None))

    def delete(self, trial_name: str) -> None:
        self.store.delete_observations(trial_name)

    def close(self) -> None:
        self.store.close()


class Services:
    """Suggesters per experiment and the observation database, as configured."""

    def __init__(self, suggestion_addresses: dict[str, str] | None = None, db: ObservationDB | None = None,
                 *, suggestion_timeout: float = 60.0, suggestion_retries: int = 4,
                 earlystopping_addresses: dict[str, str] | None = None,
                 db_manager_address: str | None = None) -> None:
        self.suggestion_addresses = dict(suggestion_addresses or {})
        self.earlystopping_addresses = dict(earlystopping_addresses or {})
        if self.earlystopping_addresses and not db_manager_address:
            raise ValueError("a remote early-stopping service reads completed trials' logs from a DB "
                             "manager: give its address (--db-manager-address) too")
        self.db_manager_address = db_manager_address or ""
        self.db = db
        self.suggestion_timeout = suggestion_timeout
        self.suggestion_retries = suggestion_retries
        self._remote: dict[str, Any] = {}
        self._lock = threading.Lock()

    def known_algorithms(self) -> set[str]:
        from suggestion import registry

        return set(registry.names()) | set(self.suggestion_addresses)

    def is_remote(self, algorithm: str | None) -> bool:
        return bool(algorithm) and algorithm in self.suggestion_addresses

    def suggester_for(self, exp: Experiment) -> Any:
        """A Suggester for the experiment's algorithm. In-process: a fresh one per
        experiment (dropping it drops the algorithm's memory, which is how resume policy
        Never releases it). Remote: one client per address, shared."""
        name = exp.spec.algorithm.algorithm_name if exp.spec.algorithm else None
        if name and name in self.suggestion_addresses:
            address = self.suggestion_addresses[name]
            with self._lock:
                remote = self._remote.get(address)
                if remote is None:
                    from katib.rpc.suggestion_client import RemoteSuggester

                    remote = self._remote[address] = RemoteSuggester(
                        address, timeout=self.suggestion_timeout, retries=self.suggestion_retries)
            return remote
        from suggestion.inprocess import InProcessSuggester

        return InProcessSuggester(max_sessions=1)

    def known_early_stopping(self) -> set[str]:
        from earlystop import registry

        return set(registry.names()) | set(self.earlystopping_addresses)

    def early_stopping_client(self, algorithm: str | None) -> Any:
        """The shared RemoteEarlyStopper for an algorithm mapped to an address, else None."""
        address = self.earlystopping_addresses.get(algorithm or "")
        if address is None:
            return None
        key = "earlystopping:" + address
        with self._lock:
            client = self._remote.get(key)
            if client is None:
                from katib.rpc.earlystopping_client import RemoteEarlyStopper

                client = self._remote[key] = RemoteEarlyStopper(
                    address, timeout=self.suggestion_timeout, retries=self.suggestion_retries)
            return client

    def early_stopper_for(self, exp: Experiment) -> Any:
        """The experiment's early stopping (an ``earlystopping.EarlyStopping``), or None."""
        es = exp.spec.early_stopping
        if es is None:
            return None
        client = self.early_stopping_client(es.algorithm_name)
        if client is not None:
            from katib.backends.kubernetes.remote_earlystopping import RemoteEarlyStopping

            return RemoteEarlyStopping(client, exp, self.db_manager_address)
        from katib.backends.kubernetes.earlystopping import EarlyStopper

        return EarlyStopper.for_experiment(exp)

    def close(self) -> None:
        with self._lock:
            for remote in self._remote.values():
                remote.close()
            self._remote.clear()
        close = getattr(self.db, "close", None)
        if close is not None:
            close()
