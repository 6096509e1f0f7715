"""A client of any Katib-compatible DBManager service (ours or upstream's db-manager).

One channel per address, reused across calls and threads (gRPC channels are thread-safe),
and a deadline on every call. Errors come back as ``ServiceError`` naming the call.
"""

from __future__ import annotations

import threading
from typing import Any, Iterable

import grpc

from katib.api.observation import MetricLog
from katib.errors import ServiceError
from katib.rpc import converters

__all__ = ["DBManagerClient", "DB_DEADLINE_SECONDS", "DEFAULT_ADDRESS"]

DB_DEADLINE_SECONDS = 30.0
# Upstream's default in-cluster address (KATIB_DB_MANAGER_SERVICE_IP.namespace:port).
DEFAULT_ADDRESS = "katib-db-manager.kubeflow:6789"


class DBManagerClient:
    def __init__(self, deadline: float = DB_DEADLINE_SECONDS) -> None:
        self.deadline = deadline
        self._channels: dict[str, grpc.Channel] = {}
        self._lock = threading.Lock()

    def _stub(self, address: str) -> Any:
        with self._lock:
            channel = self._channels.get(address)
            if channel is None:
                channel = self._channels[address] = grpc.insecure_channel(address)
        return converters.db_manager_stub(channel)

    def _call(self, address: str, method: str, request: Any, trial_name: str) -> Any:
        try:
            return getattr(self._stub(address), method)(request, timeout=self.deadline)
        except grpc.RpcError as err:
            raise ServiceError(f"db manager {address}: {method}({trial_name}) failed: "
                               f"{err.code().name}: {err.details()}") from None

    def report(self, address: str, trial_name: str, logs: Iterable[MetricLog]) -> None:
        self._call(address, "ReportObservationLog", converters.report_observation_log_request(trial_name, logs),
                   trial_name)

    def objective_logs(self, address: str, trial_name: str, metric_name: str = "") -> list[MetricLog]:
        reply = self._call(address, "GetObservationLog",
                           converters.get_observation_log_request(trial_name, metric_name), trial_name)
        return converters.observation_log_from_pb(reply.observation_log)

    def delete(self, address: str, trial_name: str) -> None:
        self._call(address, "DeleteObservationLog", converters.delete_observation_log_request(trial_name), trial_name)

    def close(self) -> None:
        with self._lock:
            for channel in self._channels.values():
                channel.close()
            self._channels.clear()
