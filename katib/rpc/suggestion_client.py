"""``RemoteSuggester``: a client of any upstream-compatible Suggestion service.

One channel per client, reused for every call (upstream's controller dials anew per call).
Each attempt has a deadline; UNAVAILABLE, DEADLINE_EXCEEDED and RESOURCE_EXHAUSTED are
retried with exponential backoff, so a suggestion server that restarts between two calls
costs a short wait, not a failed experiment. Errors come back as KatibError: OUT_OF_RANGE
as SearchSpaceExhausted, INVALID_ARGUMENT as SettingsError, the rest as ServiceError.

Like upstream's controller, the client keeps the algorithm settings a service hands back
(``GetSuggestionsReply.algorithm``, e.g. hyperband's progress) per experiment and merges them
over the experiment's settings in the next request.
"""

from __future__ import annotations

import logging
import threading
from typing import Sequence

import grpc

from katib.api.model import Experiment, Trial
from katib.api.space import SearchSpace
from katib.errors import ServiceError
from katib.rpc import api_pb2, api_pb2_grpc, converters
from katib.rpc.errors import error_from_rpc
from katib.rpc.retrying import RetryingClient
from suggestion.base import Assignment, TrialResult

__all__ = ["RemoteSuggester"]

log = logging.getLogger(__name__)

_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 2**31 - 1),
    ("grpc.max_send_message_length", 2**31 - 1),
    # A service that comes back after a long outage is reached within seconds: gRPC's default
    # reconnect backoff grows to 120 s, during which every call fails fast as UNAVAILABLE.
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 5000),
]


class RemoteSuggester(RetryingClient):
    """A ``Suggester`` (see suggestion.suggester) backed by a remote Suggestion service
    (timeouts and retries: see ``katib.rpc.retrying.RetryingClient``)."""

    service = "suggestion service"
    channel_options = _CHANNEL_OPTIONS

    def __init__(self, address: str, timeout: float = 60.0, retries: int = 4, *,
                 backoff: float = 0.25, max_backoff: float = 5.0,
                 channel: grpc.Channel | None = None) -> None:
        super().__init__(address, timeout, retries, backoff=backoff, max_backoff=max_backoff, channel=channel)
        self._stub = api_pb2_grpc.SuggestionStub(self._channel)
        self._state: dict[str, dict[str, str]] = {}  # experiment name -> settings handed back
        self._state_lock = threading.Lock()

    # --- domain API --------------------------------------------------------------------

    def validate(self, experiment: Experiment) -> None:
        try:
            self.forward_validate(converters.validate_request(experiment))
        except grpc.RpcError as exc:
            raise error_from_rpc(exc) from None

    def suggest(self, experiment: Experiment, trials: Sequence[Trial | TrialResult], n: int) -> list[Assignment]:
        space = SearchSpace.from_experiment(experiment.spec)
        with self._state_lock:
            state = dict(self._state.get(experiment.name, {}))
        algorithm = experiment.spec.algorithm
        if state and algorithm is not None:
            experiment = experiment.copy()
            experiment.spec.algorithm = converters.merge_settings(algorithm, state)
        request = converters.get_suggestions_request(experiment, trials, space, n, total=len(trials) + n)
        try:
            reply = self.forward_suggestions(request)
        except grpc.RpcError as exc:
            raise error_from_rpc(exc) from None
        assignments, settings = converters.suggestions_from_pb(reply, space)
        if settings:
            with self._state_lock:
                self._state[experiment.name] = settings
        if len(assignments) > n:
            raise ServiceError(f"suggestion service at {self.address} returned {len(assignments)} "
                               f"assignments for a request of {n}", retryable=False)
        return assignments

    # --- raw protobuf API (the suggestion service forwards requests through these) --------

    def forward_validate(self, request: api_pb2.ValidateAlgorithmSettingsRequest,
                         timeout: float | None = None) -> api_pb2.ValidateAlgorithmSettingsReply:
        """Send a request as is; raises grpc.RpcError once retries are used up."""
        return self._call(self._stub.ValidateAlgorithmSettings, request, timeout)

    def forward_suggestions(self, request: api_pb2.GetSuggestionsRequest,
                            timeout: float | None = None) -> api_pb2.GetSuggestionsReply:
        return self._call(self._stub.GetSuggestions, request, timeout)
