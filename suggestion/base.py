"""The contract every search algorithm implements.

Life of an algorithm (one instance per experiment)::

    Algorithm.validate_settings(settings, space, objective)   # classmethod, before anything runs
    algo = Algorithm(space, objective, settings, max_trial_count=..., parallel_trial_count=...)
    algo.tell(trials)     # every trial the algorithm has not been told about yet, and every
                          # trial whose state changed since (running -> finished)
    algo.ask(n)           # up to n new, distinct assignments
    ... tell / ask repeat ...

``tell`` is incremental: the caller (in-process controller or the gRPC service) passes only
what is new, so the cost of a round grows with the new trials, not with all trials. After a
restart the caller rebuilds a fresh instance by telling it every known trial at once; trials
the instance did not suggest itself must be accepted (they may come from an earlier process
or another controller).

``ask(n)`` returns exactly ``n`` assignments (the wire contract: upstream's controller rejects
a reply of any other size) that are distinct from each other and respect each parameter's
type, bounds, step, list and distribution. Two exits instead of a short reply:

- ``SuggestionsPending`` when it cannot give ``n`` until running trials finish (hyperband
  between rungs): the caller creates nothing and asks again after the next trial finishes.
  An algorithm raises it only while trials it is waiting for are running, so it never stalls.
- ``SearchSpaceExhausted`` when nothing more will ever come; the experiment then ends as
  ``SuggestionEndReached`` once its running trials finish.

The one short reply left is a finite space with fewer than ``n`` unseen points (grid at its
end): those are all there is. Set ``maxTrialCount`` to at most the number of points to keep
every reply exact (grid's validation requires it when it is set).

One exception to "distinct": an algorithm whose trials are not points of a space but runs of
one search (DARTS: every trial gets the same settings and operations and searches the
architecture itself) returns ``n`` equal assignments, as upstream's service does; its trials
differ by name. Such an algorithm requires ``maxTrialCount: 1`` in ``validate_settings``, so
it is never asked for a second, identical trial unless the first one failed.

Algorithms import no grpc, kubernetes or sqlalchemy (checked by a test).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import ClassVar, Mapping, Sequence

from katib.api.model import ObjectiveSpec, ObjectiveType
from katib.api.space import SearchSpace, Value
from katib.errors import SettingsError

__all__ = ["Algorithm", "Assignment", "TrialState", "TrialResult", "parse_int", "parse_float",
           "parse_choice", "check_known"]


class TrialState:
    """The states a trial can be in, as far as an algorithm cares."""

    RUNNING = "Running"  # created or running: a pending point (constant liar uses these)
    SUCCEEDED = "Succeeded"
    EARLY_STOPPED = "EarlyStopped"
    FAILED = "Failed"
    KILLED = "Killed"
    METRICS_UNAVAILABLE = "MetricsUnavailable"
    FINISHED = (SUCCEEDED, EARLY_STOPPED, FAILED, KILLED, METRICS_UNAVAILABLE)


@dataclass(frozen=True)
class TrialResult:
    """What an algorithm is told about one trial.

    ``value`` is the objective value (by the experiment's metric strategy) for trials that
    produced one, else None. ``values`` holds every metric's value, for algorithms that want
    additional metrics. ``order`` is a monotonically increasing creation order (start time)
    so algorithms can sort trials without parsing times.
    """

    name: str
    assignments: Mapping[str, Value]
    state: str
    value: float | None = None
    values: Mapping[str, float] = field(default_factory=dict)
    order: float = 0.0
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.state in TrialState.FINISHED

    @property
    def has_value(self) -> bool:
        return self.value is not None and self.state in (TrialState.SUCCEEDED, TrialState.EARLY_STOPPED)


@dataclass(frozen=True)
class Assignment:
    """One suggested point. ``trial_name`` optionally fixes the trial's name; ``labels`` go
    to the trial's metadata (upstream's GetSuggestionsReply.ParameterAssignments fields)."""

    values: Mapping[str, Value]
    trial_name: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


class Algorithm(abc.ABC):
    """Base class of every search algorithm. Subclasses set ``name`` (the
    ``spec.algorithm.algorithmName`` they serve; ``aliases`` for more) and ``settings``
    (setting name -> default, or None where there is no default)."""

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    settings: ClassVar[Mapping[str, str | None]] = {}

    def __init__(
        self,
        space: SearchSpace,
        objective: ObjectiveSpec,
        settings: Mapping[str, str],
        *,
        max_trial_count: int | None = None,
        parallel_trial_count: int | None = None,
    ) -> None:
        self.space = space
        self.objective = objective
        self.raw_settings = dict(settings)
        self.max_trial_count = max_trial_count
        self.parallel_trial_count = parallel_trial_count

    @property
    def minimize(self) -> bool:
        return self.objective.type != ObjectiveType.MAXIMIZE

    @classmethod
    def validate_settings(
        cls,
        settings: Mapping[str, str],
        space: SearchSpace,
        objective: ObjectiveSpec,
        *,
        max_trial_count: int | None = None,
        parallel_trial_count: int | None = None,
    ) -> None:
        """Raise one ``SettingsError`` naming the first bad setting (unknown name, bad value,
        or a search space this algorithm cannot handle, e.g. an unsupported distribution).
        The default rejects unknown names; subclasses extend it."""
        check_known(cls.name, settings, cls.settings)

    @abc.abstractmethod
    def tell(self, trials: Sequence[TrialResult]) -> None:
        """Learn about new trials or trials whose state changed."""

    @abc.abstractmethod
    def ask(self, n: int) -> list[Assignment]:
        """``n`` distinct new assignments, or SuggestionsPending / SearchSpaceExhausted (see the
        module docstring)."""

    def state_settings(self) -> dict[str, str]:
        """Settings to hand back to an upstream controller in GetSuggestionsReply.algorithm
        (hyperband keeps its progress there). Most algorithms have none."""
        return {}


def check_known(algorithm: str, settings: Mapping[str, str], known: Mapping[str, object]) -> None:
    for key in settings:
        if key not in known:
            allowed = ", ".join(sorted(known)) or "none"
            raise SettingsError(key, f"unknown setting for algorithm {algorithm!r}; "
                                     f"allowed settings: {allowed}")


def parse_int(settings: Mapping[str, str], key: str, default: int | None, *,
              min_value: int | None = None, max_value: int | None = None) -> int | None:
    """Parse an integer setting, raising SettingsError naming it when out of range."""
    raw = settings.get(key)
    if raw is None or raw == "":
        return default
    try:
        number = float(raw)
        if not number.is_integer():
            raise ValueError
        value = int(number)
    except ValueError:
        raise SettingsError(key, f"must be an integer, got {raw!r}") from None
    if min_value is not None and value < min_value:
        raise SettingsError(key, f"must be >= {min_value}, got {value}")
    if max_value is not None and value > max_value:
        raise SettingsError(key, f"must be <= {max_value}, got {value}")
    return value


def parse_float(settings: Mapping[str, str], key: str, default: float | None, *,
                min_value: float | None = None, max_value: float | None = None,
                min_exclusive: bool = False, max_exclusive: bool = False) -> float | None:
    raw = settings.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(key, f"must be a number, got {raw!r}") from None
    if min_value is not None and (value < min_value or (min_exclusive and value == min_value)):
        raise SettingsError(key, f"must be {'>' if min_exclusive else '>='} {min_value}, got {value}")
    if max_value is not None and (value > max_value or (max_exclusive and value == max_value)):
        raise SettingsError(key, f"must be {'<' if max_exclusive else '<='} {max_value}, got {value}")
    return value


def parse_choice(settings: Mapping[str, str], key: str, default: str | None,
                 choices: Sequence[str]) -> str | None:
    raw = settings.get(key)
    if raw is None or raw == "":
        return default
    if raw not in choices:
        raise SettingsError(key, f"must be one of {', '.join(choices)}; got {raw!r}")
    return raw
