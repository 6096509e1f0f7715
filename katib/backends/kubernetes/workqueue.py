"""A work queue keyed by experiment, with client-go's guarantees.

A key is queued at most once however many events name it; a key being worked on is never
handed to a second worker, and if it is added meanwhile it is queued again when the first
worker is done. So one experiment is reconciled by one worker at a time (no two workers
create trials for it at once), while different experiments proceed in parallel.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque
from typing import Generic, Hashable, TypeVar

__all__ = ["WorkQueue"]

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: deque[K] = deque()
        self._queued: set[K] = set()
        self._processing: set[K] = set()
        self._dirty: set[K] = set()
        self._delayed: list[tuple[float, int, K]] = []
        self._due: dict[K, float] = {}  # earliest pending delayed add per key
        self._seq = 0
        self._shutdown = False

    def add(self, key: K) -> None:
        with self._cond:
            if self._shutdown or key in self._queued:
                return
            if key in self._processing:
                self._dirty.add(key)
                return
            self._queued.add(key)
            self._queue.append(key)
            self._cond.notify()

    def add_after(self, key: K, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        due = time.monotonic() + delay
        with self._cond:
            if self._shutdown:
                return
            # Every reconcile asks to be polled again; keep one pending entry per key (the
            # earliest), or entries pile up with every watch event.
            if self._due.get(key, float("inf")) <= due:
                return
            self._due[key] = due
            self._seq += 1
            heapq.heappush(self._delayed, (due, self._seq, key))
            self._cond.notify()

    def _promote(self) -> float | None:
        """Move due delayed keys to the queue; seconds until the next one is due."""
        now = time.monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            due, _, key = heapq.heappop(self._delayed)
            if self._due.get(key) != due:
                continue  # superseded by an earlier entry for the key
            del self._due[key]
            if key in self._queued:
                continue
            if key in self._processing:
                self._dirty.add(key)
                continue
            self._queued.add(key)
            self._queue.append(key)
        return self._delayed[0][0] - now if self._delayed else None

    def get(self, timeout: float | None = None) -> K | None:
        """The next key to work on (mark it ``done`` afterwards), or None on timeout/shutdown."""
        deadline = time.monotonic() + timeout if timeout is not None else None
        with self._cond:
            while True:
                if self._shutdown:
                    return None
                wait = self._promote()
                if self._queue:
                    key = self._queue.popleft()
                    self._queued.discard(key)
                    self._processing.add(key)
                    return key
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return None
                    wait = left if wait is None else min(wait, left)
                self._cond.wait(wait)

    def done(self, key: K) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                if key not in self._queued:
                    self._queued.add(key)
                    self._queue.append(key)
                    self._cond.notify()

    def shutdown(self) -> None:
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue)
