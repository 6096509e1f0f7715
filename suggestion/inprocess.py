"""Algorithms run in this process: the session cache and ``InProcessSuggester``.

``SessionCache`` keeps one ``Session`` per experiment, keyed by the experiment's name and a
fingerprint of what the algorithm was built from (search space, objective, algorithm,
counts). It is shared by ``InProcessSuggester`` (``katib run``) and the gRPC service, which
only adds protobuf decoding around it. Imports no grpc.

Why a fingerprint and not just the name: a new experiment may reuse a name, and upstream
lets a finished experiment's maxTrialCount be raised; either way the algorithm must be
rebuilt, from the full trial list the caller sends, exactly as after a restart.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence, TypeVar

from katib.api.model import Experiment, ObjectiveSpec, Trial
from katib.api.space import SearchSpace
from katib.errors import FieldError, KatibError, NotFoundError, ValidationError
from katib.metrics.parsers import parse_rfc3339
from katib.metrics.strategies import metric_value
from suggestion import registry
from suggestion.base import Algorithm, Assignment, TrialResult, TrialState
from suggestion.session import Session

__all__ = ["SessionCache", "InProcessSuggester", "trial_result", "fingerprint", "start_order", "metric_number"]

log = logging.getLogger(__name__)

T = TypeVar("T")
StatusOf = Callable[[T], tuple[str, str, float | None]]  # trial -> (name, state, value)
DecodeOf = Callable[[T, SearchSpace], TrialResult]

_ALGORITHM_PATH = "spec.algorithm.algorithmName"


def fingerprint(experiment: Experiment) -> str:
    """A digest of everything an algorithm instance is built from, except its settings
    (those are compared one by one, see ``_Entry.serves``)."""
    spec = experiment.spec
    doc = {
        "parameters": [p.to_dict() for p in spec.parameters],
        "objective": spec.objective.to_dict() if spec.objective else None,
        "algorithm": spec.algorithm.algorithm_name if spec.algorithm else None,
        "nas": spec.nas_config.to_dict() if spec.nas_config else None,
        "max": spec.max_trial_count,
        "parallel": spec.parallel_trial_count,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


@dataclass
class _Entry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    session: Session | None = None
    fingerprint: str = ""
    settings: dict[str, str] = field(default_factory=dict)
    state: dict[str, str] = field(default_factory=dict)  # last Algorithm.state_settings()

    def serves(self, digest: str, settings: Mapping[str, str]) -> bool:
        if self.session is None or digest != self.fingerprint:
            return False
        for key in self.settings.keys() | settings.keys():
            if key in self.state:
                # Progress we handed back (hyperband). Upstream's controller echoes it in the
                # next request; a different value means it replays an older state (it
                # rejected our last reply), so rebuild from that. Absent means the caller
                # does not echo state at all.
                if key in settings and settings[key] != self.state[key]:
                    return False
            elif self.settings.get(key) != settings.get(key):
                return False
        return True


class SessionCache:
    """LRU-bounded sessions, one lock per experiment (calls for different experiments run
    in parallel; calls for one experiment queue, as an algorithm is not thread-safe).

    ``algorithms`` (name -> class) restricts what is offered; None offers the registry.
    """

    def __init__(self, algorithms: Mapping[str, type[Algorithm]] | None = None, max_sessions: int = 256) -> None:
        if max_sessions < 1:
            raise ValueError(f"max_sessions must be at least 1, got {max_sessions}")
        self._algorithms = dict(algorithms) if algorithms is not None else None
        self._max_sessions = max_sessions
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def algorithm_class(self, name: str | None) -> type[Algorithm]:
        """The class serving ``name``; ValidationError naming spec.algorithm.algorithmName."""
        if not name:
            raise ValidationError(FieldError(_ALGORITHM_PATH, "must name a search algorithm"))
        if self._algorithms is None:
            try:
                return registry.get(name)
            except NotFoundError as exc:  # unknown name is the caller's input error
                raise ValidationError(str(exc)) from exc
        cls = self._algorithms.get(name)
        if cls is None:
            offered = ", ".join(sorted(self._algorithms)) or "none"
            raise ValidationError(FieldError(_ALGORITHM_PATH, f"unknown algorithm {name!r}; "
                                                              f"this service offers: {offered}"))
        return cls

    def validate(self, experiment: Experiment) -> SearchSpace:
        """Check algorithm name, search space and settings; return the parsed space."""
        spec = experiment.spec
        cls = self.algorithm_class(spec.algorithm.algorithm_name if spec.algorithm else None)
        space = SearchSpace.from_experiment(spec)
        cls.validate_settings(spec.algorithm.settings if spec.algorithm else {}, space,
                              spec.objective or ObjectiveSpec(),
                              max_trial_count=spec.max_trial_count,
                              parallel_trial_count=spec.parallel_trial_count)
        return space

    def __len__(self) -> int:
        return len(self._entries)

    def _entry(self, name: str) -> _Entry:
        with self._lock:
            entry = self._entries.get(name)
            if entry is None:
                entry = self._entries[name] = _Entry()
            self._entries.move_to_end(name)
            while len(self._entries) > self._max_sessions:
                evicted, _ = self._entries.popitem(last=False)
                log.info("evicted the session of experiment %r (cache holds %d)", evicted, self._max_sessions)
            return entry

    def suggest(self, experiment: Experiment, space: SearchSpace, trials: Iterable[T], n: int, *,
                status: StatusOf[T], decode: DecodeOf[T]) -> tuple[list[Assignment], dict[str, str]]:
        """Up to ``n`` assignments and the algorithm's state settings.

        ``trials`` is the caller's full view; ``status`` reads a trial's (name, state,
        objective value) cheaply and only trials the session does not know in that state are
        passed through ``decode`` and on to the algorithm.
        """
        spec = experiment.spec
        settings = spec.algorithm.settings if spec.algorithm else {}
        digest = fingerprint(experiment)
        entry = self._entry(experiment.name)
        with entry.lock:
            session = entry.session if entry.serves(digest, settings) else None
            if session is None:
                if entry.session is not None:
                    log.info("experiment %r changed its spec or settings; rebuilding its algorithm",
                             experiment.name)
                entry.session = None
                algorithm = spec.algorithm.algorithm_name if spec.algorithm else None
                session = Session(
                    algorithm or "", space, spec.objective or ObjectiveSpec(), settings,
                    max_trial_count=spec.max_trial_count,
                    parallel_trial_count=spec.parallel_trial_count,
                    algorithm_class=self.algorithm_class(algorithm),
                )
                entry.session, entry.fingerprint, entry.settings, entry.state = session, digest, dict(settings), {}
            fresh = []
            for trial in trials:
                trial_name, state, value = status(trial)
                if not session.knows(trial_name, state, value):
                    fresh.append(decode(trial, session.algorithm.space))
            try:
                assignments = session.suggest(fresh, n)
            except KatibError:
                raise
            except Exception:
                # The algorithm may be half-updated; the next call rebuilds it from scratch.
                entry.session = None
                raise
            entry.state = session.algorithm.state_settings()
            log.debug("experiment %r: told %d trial(s), asked %d, got %d",
                      experiment.name, len(fresh), n, len(assignments))
            return assignments, dict(entry.state)


# --- domain trials ------------------------------------------------------------------------

_STATES = {
    "Pending": TrialState.RUNNING,
    "Running": TrialState.RUNNING,
    "Succeeded": TrialState.SUCCEEDED,
    "EarlyStopped": TrialState.EARLY_STOPPED,
    "Failed": TrialState.FAILED,
    "Killed": TrialState.KILLED,
    "MetricsUnavailable": TrialState.METRICS_UNAVAILABLE,
}


def start_order(start_time: str | None) -> float:
    """``TrialResult.order`` of an RFC3339 start time: epoch seconds, or +inf for a trial
    that has not started (it sorts last)."""
    stamp = parse_rfc3339(start_time) if start_time else None
    return stamp.timestamp() if stamp is not None else math.inf


def metric_number(text: str | None) -> float | None:
    """A metric value an algorithm can learn from: a finite-or-infinite number, not
    "unavailable", not text, not NaN (a diverged trial)."""
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return None if math.isnan(value) else value


def _status(trial: Trial, objective: ObjectiveSpec) -> tuple[str, str, float | None]:
    metric = objective.objective_metric_name
    value = None
    if metric:
        value = metric_number(metric_value(trial.status.observation, metric, objective.strategy_for(metric)))
    return trial.name, _STATES.get(trial.status.state, TrialState.RUNNING), value


def trial_result(trial: Trial, space: SearchSpace, objective: ObjectiveSpec) -> TrialResult:
    """What an algorithm is told about a domain trial: typed assignments, state, each
    metric's value by the objective's strategy, start order."""
    name, state, value = _status(trial, objective)
    try:
        assignments = space.parse(trial.spec.assignments)
    except ValueError as exc:
        raise ValidationError(FieldError(f"trials[{name}].spec.parameterAssignments",
                                         f"does not match the search space: {exc}")) from exc
    observation = trial.status.observation
    values = {}
    for m in observation.metrics if observation else []:
        number = metric_number(metric_value(observation, m.name, objective.strategy_for(m.name)))
        if number is not None:
            values[m.name] = number
    start = trial.status.start_time or trial.metadata.creation_timestamp
    return TrialResult(name, assignments, state, value, values, start_order(start), dict(trial.spec.labels or {}))


class InProcessSuggester:
    """A ``Suggester`` running the algorithm in this process (see suggestion.suggester)."""

    def __init__(self, algorithms: Mapping[str, type[Algorithm]] | None = None, max_sessions: int = 64) -> None:
        self.cache = SessionCache(algorithms, max_sessions)

    def validate(self, experiment: Experiment) -> None:
        self.cache.validate(experiment)

    def suggest(self, experiment: Experiment, trials: Sequence[Trial | TrialResult], n: int) -> list[Assignment]:
        objective = experiment.spec.objective or ObjectiveSpec()
        space = SearchSpace.from_experiment(experiment.spec)

        def status(t: Trial | TrialResult) -> tuple[str, str, float | None]:
            return (t.name, t.state, t.value) if isinstance(t, TrialResult) else _status(t, objective)

        def decode(t: Trial | TrialResult, s: SearchSpace) -> TrialResult:
            return t if isinstance(t, TrialResult) else trial_result(t, s, objective)

        assignments, _ = self.cache.suggest(experiment, space, trials, n, status=status, decode=decode)
        return assignments

    def close(self) -> None:
        """Nothing to release; present so callers treat both suggesters alike."""
