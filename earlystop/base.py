"""The contract every early-stopping algorithm implements.

Life of an early-stopping algorithm (one instance per experiment)::

    Rule.validate_settings(settings)            # classmethod, before anything runs
    rule = Rule(objective, settings)
    for every report of a running trial:        # any metric; the rule picks its own
        rule.observe(trial, new_logs)           # only the logs it has not been given yet
        decision = rule.should_stop(trial)      # None, or why the trial must stop now
    when a trial finishes (after its last observe):
        rule.trial_finished(trial, state)
    rule.rules()                                # upstream-style rules for Katib's sidecar

``observe`` is incremental: the caller passes each log once, so the cost of a report grows
with what is new, not with the trial's history. Reports may arrive in batches (a collector
polls a file); ``should_stop`` then checks every report of the batch in step order, so the
decision does not depend on how the caller batched the logs.

Which finished trials count as *completed* (the reference population of a rule):
``Succeeded`` and ``EarlyStopped`` trials that reported at least one numeric objective value.
``Failed``, ``Killed`` and ``MetricsUnavailable`` trials do **not** count: their curves end
for reasons unrelated to the hyperparameters (a crash, a node drain, a diverged run that
printed NaN), and letting a truncated curve into the reference would make the rule stop or
spare trials at random. Their observations are dropped.

Rules import no grpc, kubernetes or sqlalchemy (checked by a test); ``service.py`` serves
them over gRPC and ``inprocess.py`` hands them to the local runner.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import ClassVar, Mapping, Sequence

from katib.api.model import EarlyStoppingRule, ObjectiveSpec, ObjectiveType, TrialCondition
from katib.api.observation import MetricLog
from suggestion.base import check_known

__all__ = ["EarlyStoppingAlgorithm", "Decision", "COMPLETED_STATES", "DISCARDED_STATES"]

# Finished states whose curves form the reference population (see the module docstring).
COMPLETED_STATES = (TrialCondition.SUCCEEDED, TrialCondition.EARLY_STOPPED)
# Finished states that end a trial without making it a reference.
DISCARDED_STATES = (TrialCondition.FAILED, TrialCondition.KILLED,
                    TrialCondition.METRICS_UNAVAILABLE)


@dataclass(frozen=True)
class Decision:
    """Why a running trial must stop now.

    ``step`` is the report at which the rule fired, ``value`` the trial's best objective value
    up to that step, ``threshold`` the value it had to reach (for medianstop: the median of
    the completed trials at the same step) and ``completed_trials`` how many trials that threshold
    was computed from.
    """

    trial_name: str
    algorithm: str
    metric_name: str
    step: int
    value: float
    threshold: float
    completed_trials: int
    maximize: bool

    @property
    def message(self) -> str:
        side = "below" if self.maximize else "above"
        return (f"trial {self.trial_name}: best {self.metric_name} {self.value:g} up to step "
                f"{self.step} is {side} {self.threshold:g}, the {self.algorithm} threshold of "
                f"{self.completed_trials} completed trials at that step")


class EarlyStoppingAlgorithm(abc.ABC):
    """Base class of every early-stopping algorithm.

    Subclasses set ``name`` (the ``spec.earlyStopping.algorithmName`` they serve) and
    ``settings`` (setting name -> default as a string, or None where there is no default),
    and implement the abstract methods. Instances are not thread-safe; callers serialize
    (``inprocess.EarlyStoppingSession`` and the gRPC service hold a lock).
    """

    name: ClassVar[str]
    settings: ClassVar[Mapping[str, str | None]] = {}

    def __init__(self, objective: ObjectiveSpec, settings: Mapping[str, str]) -> None:
        if not objective.objective_metric_name:
            raise ValueError("objective.objectiveMetricName is required for early stopping")
        self.validate_settings(settings)
        self.objective = objective
        self.raw_settings = dict(settings)

    @property
    def metric_name(self) -> str:
        return self.objective.objective_metric_name or ""

    @property
    def maximize(self) -> bool:
        # Same default as suggestion.base.Algorithm: anything but maximize minimizes.
        return self.objective.type == ObjectiveType.MAXIMIZE

    @classmethod
    def validate_settings(cls, settings: Mapping[str, str]) -> None:
        """Raise one ``SettingsError`` naming the first bad setting. The default rejects
        unknown names; subclasses extend it with value checks."""
        check_known(cls.name, settings, cls.settings)

    @abc.abstractmethod
    def observe(self, trial_name: str, logs: Sequence[MetricLog]) -> None:
        """Record new logs of a trial (any metrics; logs of other metrics are ignored).
        Each log is passed once. Logs of a trial never seen before start its curve."""

    @abc.abstractmethod
    def trial_finished(self, trial_name: str, state: str) -> None:
        """The trial reached a final state (a ``TrialCondition`` value). Call it after the
        trial's last ``observe``. Completed states make the trial a reference; the others
        drop it. Calling it again for the same trial is harmless."""

    @abc.abstractmethod
    def should_stop(self, trial_name: str) -> Decision | None:
        """Check every report of the trial not checked yet; the first one that breaks the
        rule gives the decision. Once a trial got a decision, later calls return it again."""

    @abc.abstractmethod
    def rules(self) -> list[EarlyStoppingRule]:
        """The rule as upstream's metrics-collector sidecar applies it (frozen into new
        trials' ``spec.earlyStoppingRules``), or an empty list while there is none yet."""
