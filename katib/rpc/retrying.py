"""The base of our gRPC clients: one channel, a deadline per attempt, retries with backoff.

UNAVAILABLE, DEADLINE_EXCEEDED and RESOURCE_EXHAUSTED are retried (``RETRYABLE_CODES``), so a
server restarting between two calls costs a short wait, not a failed experiment. ``_call``
raises the last ``grpc.RpcError``; subclasses turn it into a KatibError (or forward it).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Sequence

import grpc

from katib.rpc.errors import RETRYABLE_CODES

__all__ = ["RetryingClient"]

log = logging.getLogger(__name__)


class RetryingClient:
    """``timeout`` bounds each attempt in seconds; ``retries`` is how many times a retryable
    failure is tried again, waiting ``backoff``, 2x``backoff``, ... (at most ``max_backoff``)."""

    service = "service"  # for log messages
    channel_options: Sequence[tuple[str, Any]] = ()

    def __init__(self, address: str, timeout: float = 60.0, retries: int = 4, *,
                 backoff: float = 0.25, max_backoff: float = 5.0,
                 channel: grpc.Channel | None = None) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.address = address
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._channel = channel or grpc.insecure_channel(address, options=list(self.channel_options))

    def _call(self, method: Callable[..., Any], request: Any, timeout: float | None = None) -> Any:
        # ``timeout`` is the caller's whole budget (e.g. what is left of a forwarded call's
        # deadline); ``self.timeout`` bounds each attempt within it.
        give_up_at = time.monotonic() + timeout if timeout is not None else None
        attempt = 0
        while True:
            per_attempt = self.timeout
            if give_up_at is not None:
                per_attempt = min(per_attempt, max(give_up_at - time.monotonic(), 0.001))
            try:
                return method(request, timeout=per_attempt)
            except grpc.RpcError as exc:
                code = exc.code() if hasattr(exc, "code") else None
                if code not in RETRYABLE_CODES or attempt >= self.retries:
                    raise
                pause = min(self.backoff * 2**attempt, self.max_backoff)
                if give_up_at is not None and time.monotonic() + pause >= give_up_at:
                    raise
                attempt += 1
                log.warning("%s at %s: %s; retry %d/%d in %.2fs",
                            self.service, self.address, code, attempt, self.retries, pause)
                time.sleep(pause)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "RetryingClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
