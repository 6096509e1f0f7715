"""``RemoteEarlyStopper``: a client of any upstream-compatible EarlyStopping service.

One channel per client, reused for every call. Each attempt has a deadline; UNAVAILABLE,
DEADLINE_EXCEEDED and RESOURCE_EXHAUSTED are retried with exponential backoff (the style of
``suggestion_client.RemoteSuggester``). Errors come back as KatibError: INVALID_ARGUMENT as
SettingsError naming the setting (our servers send it in the metadata), the rest as
ServiceError whose ``retryable`` follows the code.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Sequence

import grpc

from katib.api.model import EarlyStoppingRule, EarlyStoppingSpec, Experiment, Trial
from katib.rpc import api_pb2_grpc, converters
from katib.rpc.errors import error_from_rpc
from katib.rpc.retrying import RetryingClient

__all__ = ["RemoteEarlyStopper"]

log = logging.getLogger(__name__)


class RemoteEarlyStopper(RetryingClient):
    """The three EarlyStopping RPCs in domain terms (timeouts and retries: see
    ``katib.rpc.retrying.RetryingClient``); failures come back as KatibError."""

    service = "early-stopping service"

    def __init__(self, address: str, timeout: float = 60.0, retries: int = 4, *,
                 backoff: float = 0.25, max_backoff: float = 5.0,
                 channel: grpc.Channel | None = None) -> None:
        super().__init__(address, timeout, retries, backoff=backoff, max_backoff=max_backoff, channel=channel)
        self._stub = api_pb2_grpc.EarlyStoppingStub(self._channel)

    def validate(self, spec: EarlyStoppingSpec) -> None:
        """Raise SettingsError (INVALID_ARGUMENT) naming the bad setting, or ServiceError."""
        self._call(self._stub.ValidateEarlyStoppingSettings,
                   converters.validate_early_stopping_settings_request(spec))

    def rules(self, experiment: Experiment, trials: Sequence[Trial], db_manager_address: str,
              timeout: float | None = None) -> list[EarlyStoppingRule]:
        """The service's current rules for the experiment (empty while it has too few
        completed trials); it reads completed trials' logs from ``db_manager_address``.
        ``timeout`` bounds all attempts together (a caller that must not block long)."""
        request = converters.get_early_stopping_rules_request(experiment, trials, db_manager_address)
        reply = self._call(self._stub.GetEarlyStoppingRules, request, timeout)
        return converters.early_stopping_rules_from_pb(reply)

    def set_trial_status(self, trial_name: str, timeout: float | None = None) -> None:
        """Tell the service a trial was early stopped (upstream's sidecar does this)."""
        self._call(self._stub.SetTrialStatus, converters.set_trial_status_request(trial_name), timeout)

    def _call(self, method: Callable[..., Any], request: Any, timeout: float | None = None) -> Any:
        try:
            return super()._call(method, request, timeout)
        except grpc.RpcError as exc:
            raise error_from_rpc(exc) from None
