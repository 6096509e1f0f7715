"""Waiting out a suggestion service that cannot be reached, without holding up the trials.

The runner asks the suggestion service only when it needs trials. When an ask fails with an
error that may pass (UNAVAILABLE, DEADLINE_EXCEEDED: the service restarts, its pod moves), an
``Outage`` starts: the runner keeps collecting metrics and ending trials, asks again after
0.5 s, 1 s, 2 s, ... (at most 5 s), says so in the experiment's status, and gives up once the
outage has lasted ``timeout`` seconds.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

__all__ = ["Outage", "BACKOFF", "MAX_BACKOFF"]

log = logging.getLogger(__name__)

BACKOFF, MAX_BACKOFF = 0.5, 5.0


class Outage:
    """The state of the suggestion service's availability, as the runner sees it."""

    def __init__(self, timeout: float, address: str | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        self.where = f" at {address}" if address else ""
        self._clock = clock
        self.since: float | None = None  # when the first failed ask of this outage was
        self._failures = 0
        self._next_ask = 0.0
        self.gave_up: str | None = None  # why, once the outage lasted longer than ``timeout``

    def may_ask(self) -> bool:
        return self._clock() >= self._next_ask

    def failed(self, error: Exception) -> None:
        """An ask failed with an error that may pass: schedule the next, or give up."""
        now = self._clock()
        if self.since is None:
            self.since = now
        waited = now - self.since
        if waited >= self.timeout:
            self.gave_up = (f"suggestion service{self.where} unavailable for {waited:.0f} s "
                            f"(--suggestion-timeout {self.timeout:g}); last error: {error}")
            return
        pause = min(BACKOFF * 2 ** self._failures, MAX_BACKOFF)
        self._failures += 1
        self._next_ask = min(now + pause, self.since + self.timeout)
        log.warning("%s; next try in %.1f s (gives up after %g s): %s", self.text(), pause, self.timeout, error)

    def answered(self) -> None:
        """An ask succeeded: the outage, if any, is over."""
        if self.since is not None:
            log.warning("suggestion service%s is available again after %.0f s", self.where,
                        self._clock() - self.since)
        self.since, self._failures, self._next_ask = None, 0, 0.0

    def waited(self) -> float:
        return 0.0 if self.since is None else self._clock() - self.since

    def text(self) -> str | None:
        """What the experiment's status says during the outage, else None."""
        if self.since is None:
            return None
        return f"suggestion service{self.where} unavailable, retrying (since {self.waited():.0f} s)"
