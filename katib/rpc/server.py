"""Server plumbing shared by our gRPC services (suggestion, early stopping, DB manager).

Services outside ``katib.rpc`` never import the generated modules; they subclass the
servicer bases re-exported here and register through these functions.
"""

from __future__ import annotations

import logging
import signal
import threading
from concurrent import futures
from types import FrameType
from typing import Any, Callable, Iterable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from katib.rpc import api_pb2, api_pb2_grpc
from katib.rpc.errors import ErrorInterceptor

__all__ = [
    "SuggestionServicer", "EarlyStoppingServicer", "DBManagerServicer",
    "SUGGESTION_SERVICE", "SUGGESTION_HEALTH_NAME", "new_server", "add_suggestion_servicer",
    "add_health", "add_reflection", "bind", "ManagedServer", "run_until_signal",
]

log = logging.getLogger(__name__)

SuggestionServicer = api_pb2_grpc.SuggestionServicer
EarlyStoppingServicer = api_pb2_grpc.EarlyStoppingServicer
DBManagerServicer = api_pb2_grpc.DBManagerServicer

SUGGESTION_SERVICE: str = api_pb2.DESCRIPTOR.services_by_name["Suggestion"].full_name
# The name upstream's readiness and liveness probes ask for (not the proto package name).
SUGGESTION_HEALTH_NAME = "manager.v1beta1.Suggestion"

# Upstream's controller ships every trial in each GetSuggestions request; the 4 MiB gRPC
# default caps an experiment at a few thousand trials, so accept what the DB manager accepts.
MAX_MESSAGE_BYTES = 2**31 - 1


def new_server(max_workers: int = 16) -> grpc.Server:
    """A thread-pool server whose handlers may raise KatibError (see katib.rpc.errors)."""
    return grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
        interceptors=[ErrorInterceptor()],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            # gRPC sets SO_REUSEPORT by default, letting a second server share a busy port
            # and steal half its calls; fail loudly instead.
            ("grpc.so_reuseport", 0),
        ],
    )


def add_suggestion_servicer(server: grpc.Server, servicer: api_pb2_grpc.SuggestionServicer) -> None:
    api_pb2_grpc.add_SuggestionServicer_to_server(servicer, server)


class _ProbedHealth(health.HealthServicer):
    """Health whose Check also runs ``probe`` (the DB manager's ``SELECT 1``): a registered
    service answers NOT_SERVING while the probe fails, as upstream's db-manager does."""

    def __init__(self, probe: Callable[[], bool]) -> None:
        super().__init__(experimental_non_blocking=True)
        self._probe = probe

    def Check(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC method name
        reply = super().Check(request, context)
        if reply.status == health_pb2.HealthCheckResponse.SERVING and not self._probe():
            return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.NOT_SERVING)
        return reply


def add_health(server: grpc.Server, names: Iterable[str],
               probe: Callable[[], bool] | None = None) -> health.HealthServicer:
    """Register the standard health service with ``""`` and ``names`` SERVING. Call
    ``enter_graceful_shutdown()`` on the result before stopping, so probes see NOT_SERVING.
    With ``probe``, each Check also calls it and answers NOT_SERVING when it returns False."""
    servicer = (_ProbedHealth(probe) if probe is not None
                else health.HealthServicer(experimental_non_blocking=True))
    for name in ("", *names):
        servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    return servicer


def add_reflection(server: grpc.Server, service_names: Iterable[str]) -> None:
    names = (*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME)
    reflection.enable_server_reflection(names, server)


def bind(server: grpc.Server, host: str, port: int) -> int:
    """Listen on host:port without TLS and return the port (useful with port 0)."""
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:  # newer grpcio raises instead of returning 0
        raise OSError(f"cannot listen on {address}: {exc}") from exc
    if bound == 0:
        raise OSError(f"cannot listen on {address}")
    return bound


class ManagedServer(grpc.Server):
    """A started ``grpc.Server`` that knows its bound ``port`` and its ``health`` servicer;
    ``stop`` first reports NOT_SERVING so load balancers and probes drain it."""

    def __init__(self, server: grpc.Server, port: int, health_servicer: health.HealthServicer) -> None:
        self.server = server
        self.port = port
        self.health = health_servicer

    def add_generic_rpc_handlers(self, generic_rpc_handlers: Any) -> None:
        self.server.add_generic_rpc_handlers(generic_rpc_handlers)

    def add_registered_method_handlers(self, service_name: Any, method_handlers: Any) -> None:
        self.server.add_registered_method_handlers(service_name, method_handlers)

    def add_insecure_port(self, address: str) -> int:
        return self.server.add_insecure_port(address)

    def add_secure_port(self, address: str, server_credentials: grpc.ServerCredentials) -> int:
        return self.server.add_secure_port(address, server_credentials)

    def start(self) -> None:
        self.server.start()

    def stop(self, grace: float | None) -> threading.Event:
        self.health.enter_graceful_shutdown()
        return self.server.stop(grace)

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        return self.server.wait_for_termination(timeout)


def run_until_signal(server: grpc.Server, grace: float) -> None:
    """Block until SIGTERM or SIGINT, then stop ``server`` letting calls in flight finish
    within ``grace`` seconds (Kubernetes sends SIGTERM and waits terminationGracePeriod).
    Must run in the main thread, where Python delivers signals."""
    stopping = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        if stopping.is_set():
            return
        stopping.set()
        log.info("received %s; stopping within %.1fs", signal.Signals(signum).name, grace)
        server.stop(grace)  # returns at once; wait_for_termination below sees the end

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.wait_for_termination()
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
