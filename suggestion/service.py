"""The gRPC Suggestion service: every algorithm of the registry behind Katib's
``api.v1.beta1.Suggestion`` API, usable by upstream's controller as a drop-in suggestion
image, and by ours.

Start it with ``katib suggestion serve --port 6789`` or ``python -m suggestion.service``;
in code, ``serve(port)`` returns a started server and ``run_forever(port)`` blocks until
SIGTERM/SIGINT and then shuts down gracefully.

What differs from upstream's services, on purpose:

- One process serves every algorithm and any number of experiments; each experiment gets
  its own algorithm instance in an LRU-bounded cache (``suggestion.inprocess.SessionCache``).
- Each GetSuggestions call reads the whole trial list (that is what the protocol sends) but
  decodes fully and tells the algorithm only the trials that are new or changed state, so
  the algorithm's cost grows with new trials, not with all trials.
- A restarted service rebuilds the algorithm from the request's trials; it never fails with
  "unknown trial".
- When the algorithm has nothing more to suggest the call fails with OUT_OF_RANGE
  "search space exhausted". Our controller ends the experiment as
  ``ExperimentSuggestionEndReached`` on it; upstream's controller keeps retrying.
- A reply holds exactly ``current_request_number`` assignments, as upstream's controller
  requires. An algorithm that must wait for running trials first (hyperband between rungs)
  fails the call with FAILED_PRECONDITION instead, and every controller simply asks again
  later. The one exception is a finite space with fewer points left than asked for (grid
  without ``maxTrialCount``): the reply holds those points, and our controllers accept it.
- Algorithms named in ``KATIB_SUGGESTION_ADDRESSES`` (``name=host:port,...``) are forwarded,
  request and reply unchanged, to that upstream-compatible suggestion server.
"""

from __future__ import annotations

import argparse
import logging
import os
import threading
from typing import Any, Mapping, Sequence

import grpc

from katib.api.model import AlgorithmSpec, Experiment
from katib.api.space import SearchSpace
from katib.errors import SearchSpaceExhausted, ValidationError
from katib.rpc import converters
from katib.rpc.server import (
    SUGGESTION_HEALTH_NAME,
    SUGGESTION_SERVICE,
    ManagedServer,
    SuggestionServicer,
    add_health,
    add_reflection,
    add_suggestion_servicer,
    bind,
    new_server,
    run_until_signal,
)
from katib.rpc.suggestion_client import RemoteSuggester
from suggestion.base import Algorithm
from suggestion.inprocess import SessionCache

__all__ = ["SuggestionService", "serve", "run_forever", "main", "parse_addresses", "ADDRESSES_ENV"]

log = logging.getLogger(__name__)

ADDRESSES_ENV = "KATIB_SUGGESTION_ADDRESSES"
DEFAULT_PORT = 6789  # upstream's suggestion-api port
DEFAULT_GRACE = 10.0


def parse_addresses(text: str) -> dict[str, str]:
    """``"myalgo=host:port,other=host:port"`` -> ``{"myalgo": "host:port", ...}``."""
    addresses = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, address = item.partition("=")
        if not sep or not name.strip() or not address.strip():
            raise ValueError(f"{ADDRESSES_ENV}: {item!r} is not name=host:port")
        addresses[name.strip()] = address.strip()
    return addresses


class SuggestionService(SuggestionServicer):  # type: ignore[misc]
    """The servicer. ``algorithms`` restricts the local algorithms (None: the registry);
    ``remotes`` maps algorithm names to suggestion servers to forward to (None: read
    ``KATIB_SUGGESTION_ADDRESSES``)."""

    def __init__(self, algorithms: Mapping[str, type[Algorithm]] | None = None,
                 remotes: Mapping[str, str] | None = None, *, max_sessions: int = 256,
                 remote_timeout: float = 60.0) -> None:
        self.sessions = SessionCache(algorithms, max_sessions)
        if remotes is None:
            remotes = parse_addresses(os.environ.get(ADDRESSES_ENV, ""))
        self.remotes = dict(remotes)
        self.remote_timeout = remote_timeout
        self._clients: dict[str, RemoteSuggester] = {}
        self._clients_lock = threading.Lock()

    def _remote(self, experiment: Experiment) -> RemoteSuggester | None:
        name = experiment.spec.algorithm.algorithm_name if experiment.spec.algorithm else None
        address = self.remotes.get(name or "")
        if address is None:
            return None
        with self._clients_lock:
            client = self._clients.get(address)
            if client is None:
                client = self._clients[address] = RemoteSuggester(address, timeout=self.remote_timeout)
            return client

    def ValidateAlgorithmSettings(self, request: Any, context: grpc.ServicerContext) -> Any:
        experiment = converters.experiment_from_pb(request.experiment)
        remote = self._remote(experiment)
        if remote is not None:
            return remote.forward_validate(request, timeout=context.time_remaining())
        self.sessions.validate(experiment)
        return converters.validate_reply()

    def GetSuggestions(self, request: Any, context: grpc.ServicerContext) -> Any:
        experiment = converters.experiment_from_pb(request.experiment)
        remote = self._remote(experiment)
        if remote is not None:
            return remote.forward_suggestions(request, timeout=context.time_remaining())
        n = request.current_request_number
        if n < 0:
            raise ValidationError(f"currentRequestNumber must not be negative, got {n}")
        space = SearchSpace.from_experiment(experiment.spec)
        objective = experiment.spec.objective
        metric = (objective.objective_metric_name if objective else None) or ""

        def status(trial: Any) -> tuple[str, str, float | None]:
            return (trial.name, *converters.trial_status_from_pb(trial, metric))

        def decode(trial: Any, s: SearchSpace) -> Any:
            return converters.trial_result_from_pb(trial, s, metric)

        try:
            assignments, state = self.sessions.suggest(experiment, space, request.trials, n,
                                                       status=status, decode=decode)
        except SearchSpaceExhausted as exc:
            detail = f": {exc}" if str(exc) else ""
            raise SearchSpaceExhausted(f"search space exhausted{detail}") from exc
        algorithm = converters.merge_settings(experiment.spec.algorithm or AlgorithmSpec(), state)
        return converters.suggestions_to_pb(assignments, space, algorithm)

    def close(self) -> None:
        with self._clients_lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()


def serve(port: int, host: str = "0.0.0.0", algorithms: Mapping[str, type[Algorithm]] | None = None, *,
          remotes: Mapping[str, str] | None = None, max_workers: int = 16,
          max_sessions: int = 256) -> ManagedServer:
    """Start the Suggestion service (with health and reflection) on host:port and return
    the running server; ``port=0`` picks a free port, see ``server.port``."""
    server = new_server(max_workers)
    servicer = SuggestionService(algorithms, remotes, max_sessions=max_sessions)
    add_suggestion_servicer(server, servicer)
    health = add_health(server, (SUGGESTION_HEALTH_NAME, SUGGESTION_SERVICE))
    add_reflection(server, (SUGGESTION_SERVICE,))
    bound = bind(server, host, port)
    server.start()
    log.info("suggestion service listening on %s:%d (remote algorithms: %s)", host, bound,
             ", ".join(f"{k}={v}" for k, v in servicer.remotes.items()) or "none")
    return ManagedServer(server, bound, health)


def run_forever(port: int = DEFAULT_PORT, host: str = "0.0.0.0", grace: float = DEFAULT_GRACE) -> None:
    """Serve until SIGTERM or SIGINT, then let calls in flight finish within ``grace`` s."""
    server = serve(port, host)
    # Logging may be quiet (the CLI's default level); operators and scripts read this line.
    print(f"suggestion service listening on {host}:{server.port}", flush=True)
    run_until_signal(server, grace)
    log.info("suggestion service stopped")


def main(argv: Sequence[str] | None = None) -> int:
    """``katib suggestion serve`` / ``python -m suggestion.service``."""
    parser = argparse.ArgumentParser(
        prog="katib suggestion serve",
        description="Serve every search algorithm over Katib's gRPC Suggestion API "
                    f"(algorithms named in {ADDRESSES_ENV} are forwarded).")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT})")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    parser.add_argument("--grace", type=float, default=DEFAULT_GRACE,
                        help=f"seconds calls in flight get to finish on SIGTERM (default {DEFAULT_GRACE:g})")
    args = parser.parse_args(argv)
    run_forever(args.port, args.host, args.grace)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    raise SystemExit(main())
