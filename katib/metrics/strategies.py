"""Metric strategies: fold observation rows into a trial's Observation and pick values.

Upstream's rules (reference §1.2, §1.8, §9.5), kept exactly except where noted:

* ``fold``: per metric, ``min``/``max`` over the values that parse as floats and ``latest`` =
  the value with the greatest timestamp, a tie going to the later row. Anything never seen
  is ``"unavailable"``.
* ``metric_value``: ``min``/``max``/``latest`` by the metric's strategy; ``min``/``max`` fall
  back to ``latest`` when no value parsed as a float.
* ``best_trial``: trials in list order; a value that is not a float ("string metric", e.g.
  a DARTS genotype) makes that trial the best (the latest such wins); otherwise strict
  ``<``/``>``, the first numeric trial seeding. Upstream seeds with 0.0 when a string trial
  came first (Go's zero value); we seed with the first numeric value.

Values that parse as numbers but are not finite (``nan``, ``inf``, ``-1e400``) are no values
(``katib.metrics.values``): collectors refuse them, and rows of them that reach a fold anyway
(an older store, an outside collector) are skipped, for min/max and latest alike, so a
NaN never sticks as best and ``-inf`` never wins a minimization.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from katib.api.model import Metric, Observation, ObjectiveSpec, ObjectiveType, Trial
from katib.api.observation import UNAVAILABLE, MetricLog
from katib.metrics.values import finite_number, is_non_finite

__all__ = [
    "MIN",
    "MAX",
    "LATEST",
    "STRATEGIES",
    "fold",
    "metric_value",
    "objective_value",
    "objective_text",
    "BestTrial",
    "best_trial",
    "goal_reached",
]

MIN, MAX, LATEST = "min", "max", "latest"
STRATEGIES = (MIN, MAX, LATEST)


def _float(text: str | None) -> float | None:
    """The finite number of ``text``; None for a string metric or no value."""
    return finite_number(text)


@dataclass
class _Fold:
    min_text: str = UNAVAILABLE
    min_value: float = math.inf
    max_text: str = UNAVAILABLE
    max_value: float = -math.inf
    latest: str = UNAVAILABLE
    latest_at: datetime | None = None


def fold(logs: Iterable[MetricLog], metric_names: Sequence[str] | None = None) -> Observation:
    """Fold rows (in the order they were stored) into an Observation.

    With ``metric_names`` (the objective's metrics, objective first) exactly those metrics
    appear, in that order, unseen ones as ``"unavailable"``, as upstream does; without it,
    every metric seen appears in order of first appearance.
    """
    folds: dict[str, _Fold] = {n: _Fold() for n in metric_names or []}
    restrict = metric_names is not None
    for row in logs:
        f = folds.get(row.metric_name)
        if f is None:
            if restrict:
                continue
            f = folds[row.metric_name] = _Fold()
        if is_non_finite(row.value):
            continue  # not a value: neither min/max nor latest (see the module docstring)
        number = _float(row.value)
        if number is not None:
            if f.min_text == UNAVAILABLE or number < f.min_value:
                f.min_text, f.min_value = row.value, number
            if f.max_text == UNAVAILABLE or number > f.max_value:
                f.max_text, f.max_value = row.value, number
        if f.latest_at is None or not f.latest_at > row.timestamp:
            f.latest, f.latest_at = row.value, row.timestamp
    return Observation(
        metrics=[Metric(name=n, min=f.min_text, max=f.max_text, latest=f.latest)
                 for n, f in folds.items()]
    )


def metric_value(observation: Observation | None, name: str, strategy: str) -> str | None:
    """The value of metric ``name`` under ``strategy``, as text; None when unavailable."""
    if observation is None:
        return None
    metric = observation.metric(name)
    if metric is None:
        return None
    value: str | None
    if strategy == MIN and metric.min not in (None, UNAVAILABLE):
        value = metric.min
    elif strategy == MAX and metric.max not in (None, UNAVAILABLE):
        value = metric.max
    elif strategy in STRATEGIES:
        value = metric.latest
    else:
        raise ValueError(f"metricStrategies: {strategy!r} is not one of min, max, latest")
    return None if value in (None, UNAVAILABLE) else value


def objective_text(observation: Observation | None, objective: ObjectiveSpec) -> str | None:
    """The objective metric's value by its strategy, as text (string metrics stay text)."""
    name = objective.objective_metric_name
    if not name:
        return None
    return metric_value(observation, name, objective.strategy_for(name))


def objective_value(observation: Observation | None, objective: ObjectiveSpec) -> float | None:
    """The objective metric's value by its strategy as a float; None when unavailable or not
    a finite number."""
    return _float(objective_text(observation, objective))


def goal_reached(value: float | None, objective: ObjectiveSpec) -> bool:
    """Whether ``value`` meets the goal: ``<= goal`` when minimizing, ``>= goal`` maximizing."""
    if value is None or objective.goal is None or math.isnan(value):
        return False
    if objective.type == ObjectiveType.MINIMIZE:
        return value <= objective.goal
    if objective.type == ObjectiveType.MAXIMIZE:
        return value >= objective.goal
    return False


@dataclass(frozen=True)
class BestTrial:
    """The current optimal trial: its index in the list given, the trial, the objective
    value as text and (for numeric metrics) as a float, and whether the goal is reached."""

    index: int
    trial: Trial
    value: str
    number: float | None
    goal_reached: bool


def best_trial(trials: Sequence[Trial], objective: ObjectiveSpec) -> BestTrial | None:
    """The best trial by upstream's rules (see the module docstring); None if no trial has
    an objective value. ``goal_reached`` is true once any numeric best met the goal."""
    best_index: int | None = None
    best_number: float | None = None
    reached = False
    for index, trial in enumerate(trials):
        text = objective_text(trial.status.observation if trial.status else None, objective)
        if text is None or is_non_finite(text):
            continue  # no value; a non-finite one is none either (e.g. an observation from before the rule)
        number = _float(text)
        if number is None:
            best_index = index  # string metric: the latest one wins
            continue
        if best_number is None:
            best_number, best_index = number, index
        elif objective.type == ObjectiveType.MINIMIZE and number < best_number:
            best_number, best_index = number, index
        elif objective.type == ObjectiveType.MAXIMIZE and number > best_number:
            best_number, best_index = number, index
        reached = reached or goal_reached(best_number, objective)
    if best_index is None:
        return None
    trial = trials[best_index]
    text = objective_text(trial.status.observation, objective) or ""
    return BestTrial(best_index, trial, text, _float(text), reached)
