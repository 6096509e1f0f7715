"""``ExperimentData`` per experiment, kept between requests and read again only when its
trials changed.

A 20,000-trial experiment takes about a second to read and convert; the trial table, each
chart and the live updates of an open page all need it, many times a minute. So:

* an entry is checked at most once per ``ttl`` (requests arriving together share a check);
* locally, a check is one small query (``Store.trials_version``: count and last update of the
  trials) and, when that changed, only the trials updated since the last read are read
  (``Store.list_trials_brief(updated_since=...)``) and spliced in; the first read uses the
  brief listing too, several times faster than decoding whole trials;
* on Kubernetes (no such query) the trials are listed again after ``ttl``, and the entry's
  generation moves only when what the pages show changed.

Every refresh makes a new ``Entry``: a request holds a consistent snapshot while another
thread refreshes, and anything derived from an entry (figures) is cached by its generation.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable

from katib.api.model import Experiment
from katib.errors import NotFoundError
from katib.visualization.data import ExperimentData, TrialPoint, gc_paused

__all__ = ["ExperimentCache", "Entry"]

log = logging.getLogger(__name__)

# Trials updated shortly before the last one seen are read again: two writers' transactions
# may commit in another order than their update times (and clocks of several hosts differ).
_MARGIN = timedelta(seconds=60)


@dataclass
class Entry:
    experiment: Experiment
    data: ExperimentData
    generation: int  # moves whenever ``data`` changed
    version: Any = None  # locally: the trials' (count, last update)
    digest: str = ""  # on Kubernetes: what the pages show of the trials
    checked: float = 0.0  # time.monotonic() of the last check
    index: dict[str, int] = field(default_factory=dict)  # trial name -> position in data.trials

    @property
    def uid(self) -> str:
        return self.experiment.metadata.uid or ""


class ExperimentCache:
    """Entries of the ``size`` experiments used last, keyed by (namespace, name)."""

    def __init__(self, dashboard: Any, *, ttl: float = 1.0, size: int = 8) -> None:
        self.dashboard = dashboard
        self.ttl = ttl
        self.size = size
        self._entries: OrderedDict[tuple[str, str], Entry] = OrderedDict()
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._lock = threading.Lock()
        self._generation = 0
        self._waiting: list[tuple[str, str]] = []
        self._warmer: threading.Thread | None = None
        self._stopping = False

    def get(self, namespace: str, name: str) -> Entry:
        """The experiment's current entry; NotFoundError when it does not exist (any more)."""
        key = (namespace, name)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and time.monotonic() - entry.checked < self.ttl:
                self._entries.move_to_end(key)
                return entry
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:  # one reader per experiment; the others wait for its result
            with self._lock:
                entry = self._entries.get(key)
            if entry is not None and time.monotonic() - entry.checked < self.ttl:
                return entry
            try:
                fresh = self.dashboard.call(self._refresh, namespace, name, entry)
            except NotFoundError:
                self.forget(namespace, name)
                raise
            with self._lock:
                self._entries[key] = fresh
                self._entries.move_to_end(key)
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)
            return fresh

    def peek(self, namespace: str, name: str) -> Entry | None:
        """The entry kept for the experiment, however old, without reading anything."""
        with self._lock:
            return self._entries.get((namespace, name))

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._entries.pop((namespace, name), None)

    def warm(self, keys: Iterable[tuple[str, str]]) -> None:
        """Read these experiments in a background thread, so that opening one finds it read
        (the first read of a 20,000-trial experiment takes a second or two)."""
        with self._lock:
            if self._stopping:
                return
            for key in keys:
                if key not in self._entries and key not in self._waiting:
                    self._waiting.append(key)
            if not self._waiting or (self._warmer is not None and self._warmer.is_alive()):
                return
            self._warmer = threading.Thread(target=self._warm, name="katib-ui-warm", daemon=True)
            self._warmer.start()

    def _warm(self) -> None:
        while True:
            with self._lock:
                if not self._waiting or self._stopping:
                    return
                namespace, name = self._waiting.pop(0)
            try:
                self.get(namespace, name)
            except Exception as exc:  # noqa: BLE001 - a page that opens it will say what is wrong
                log.debug("reading experiment %s/%s ahead failed: %s", namespace, name, exc)

    def stop(self, timeout: float = 10.0) -> None:
        """Read nothing more ahead, and wait for a read under way: at exit, a thread still inside
        the database driver can crash the interpreter as it shuts down."""
        with self._lock:
            self._stopping = True
            self._waiting.clear()
            warmer = self._warmer
        if warmer is not None:
            warmer.join(timeout)

    def _next(self) -> int:
        with self._lock:
            self._generation += 1
            return self._generation

    # -- reading ---------------------------------------------------------------------------
    def _refresh(self, client: Any, namespace: str, name: str, entry: Entry | None) -> Entry:
        timeout = self.dashboard.settings.timeout
        exp = client.get_experiment(name, namespace, timeout=timeout)
        if entry is not None and entry.uid != (exp.metadata.uid or ""):
            entry = None  # deleted and created again under the same name
        store = client.store
        if store is None:
            return self._reread(exp, client.list_trials(name, namespace, timeout=timeout), entry)
        version = store.trials_version(name, namespace)
        if entry is not None and entry.version == version:
            entry = _replace(entry, experiment=exp, checked=time.monotonic())
            return entry
        started = time.monotonic()
        since: datetime | None = entry.version[1] if entry is not None and entry.version else None
        if entry is None or since is None or version[0] < len(entry.data.trials):
            with gc_paused():  # thousands of objects, none garbage: the collector's passes cost a third
                data = ExperimentData.from_experiment(exp, store.list_trials_brief(name, namespace))
            fresh = Entry(exp, data, self._next(), version, checked=time.monotonic(),
                          index={t.name: i for i, t in enumerate(data.trials)})
            log.info("read experiment %s/%s: %d trials in %.2f s", namespace, name, len(data.trials),
                     time.monotonic() - started)
            return fresh
        changed = store.list_trials_brief(name, namespace, updated_since=since - _MARGIN)
        return self._splice(entry, exp, changed, version)

    def _splice(self, entry: Entry, exp: Experiment, changed: list[Any], version: Any) -> Entry:
        """The entry with the changed trials converted and put in their places (new ones last)."""
        points = list(entry.data.trials)
        index = dict(entry.index)
        for point in ExperimentData.from_experiment(exp, changed).trials:
            at = index.get(point.name)
            if at is None:
                at = index[point.name] = len(points)
                points.append(point)
            else:
                points[at] = point
            point.number = at
        data = ExperimentData.from_experiment(exp, [])
        data.trials = points
        return Entry(exp, data, self._next(), version, checked=time.monotonic(), index=index)

    def _reread(self, exp: Experiment, trials: list[Any], entry: Entry | None) -> Entry:
        data = ExperimentData.from_experiment(exp, trials)
        digest = _digest(data.trials)
        if entry is not None and entry.digest == digest:
            return _replace(entry, experiment=exp, checked=time.monotonic())
        return Entry(exp, data, self._next(), digest=digest, checked=time.monotonic(),
                     index={t.name: i for i, t in enumerate(data.trials)})


def _replace(entry: Entry, **changes: Any) -> Entry:
    fields = {**entry.__dict__, **changes}
    return Entry(**fields)


def _digest(trials: list[TrialPoint]) -> str:
    h = hashlib.sha1()
    for t in trials:
        h.update(repr((t.name, t.state, t.value, sorted(t.metrics.items()), t.started, t.completed)).encode())
    return h.hexdigest()
