"""Early stopping for the local runner, without gRPC.

The local runner keeps one ``EarlyStoppingSession`` per experiment and drives it::

    session = EarlyStoppingSession.for_experiment(experiment.spec)   # None: no early stopping
    # while a trial runs, each time the metrics collector hands over new logs:
    decision = session.report(trial_name, new_logs)     # Decision -> stop the trial now
    # when a trial reaches a final state:
    session.observe(trial_name, last_logs)               # logs not reported yet, if any
    session.trial_finished(trial_name, state)            # a TrialCondition value
    # after a restart, for every trial already finished: observe(all its logs), then
    # trial_finished(state), before any report().

When ``report`` returns a decision the runner stops the trial's process, records the logs
it has, and marks the trial ``EarlyStopped`` (reason ``TrialEarlyStopped``, message
``decision.message``); then it calls ``trial_finished(trial, "EarlyStopped")``: an
early-stopped trial is a completed trial and joins the reference population.

The session serializes calls with a lock, so collectors on several threads may share it.
"""

from __future__ import annotations

import threading
from typing import Sequence

from earlystop import registry
from earlystop.base import Decision, EarlyStoppingAlgorithm
from katib.api.model import EarlyStoppingRule, EarlyStoppingSpec, ExperimentSpec, ObjectiveSpec
from katib.api.observation import MetricLog
from katib.errors import NotFoundError, ValidationError

__all__ = ["EarlyStoppingSession", "algorithm_class"]

_NAME_PATH = "spec.earlyStopping.algorithmName"


def algorithm_class(spec: EarlyStoppingSpec) -> type[EarlyStoppingAlgorithm]:
    """The class for ``spec``, with its settings validated.

    Raises ``ValidationError`` (path ``spec.earlyStopping.algorithmName``) for a missing or
    unknown name and ``SettingsError`` naming the setting for bad settings.
    """
    if not spec.algorithm_name:
        raise ValidationError("is required when earlyStopping is set, e.g. medianstop", path=_NAME_PATH)
    try:
        cls = registry.get(spec.algorithm_name)
    except NotFoundError:
        raise ValidationError(f"unknown early-stopping algorithm {spec.algorithm_name!r}; known "
                              f"algorithms: {', '.join(registry.names())}", path=_NAME_PATH) from None
    cls.validate_settings(spec.settings)
    return cls


class EarlyStoppingSession:
    """One early-stopping algorithm instance for one experiment."""

    def __init__(self, spec: EarlyStoppingSpec, objective: ObjectiveSpec) -> None:
        self.algorithm: EarlyStoppingAlgorithm = algorithm_class(spec)(objective, spec.settings)
        self._lock = threading.Lock()

    @classmethod
    def for_experiment(cls, spec: ExperimentSpec) -> EarlyStoppingSession | None:
        """A session for an experiment, or None when it asks for no early stopping."""
        if spec.early_stopping is None or spec.objective is None:
            return None
        return cls(spec.early_stopping, spec.objective)

    def report(self, trial_name: str, logs: Sequence[MetricLog]) -> Decision | None:
        """Record a running trial's new logs (each log once, in report order) and say
        whether it must stop. Returns the same decision again if asked after it fired."""
        with self._lock:
            self.algorithm.observe(trial_name, logs)
            return self.algorithm.should_stop(trial_name)

    def observe(self, trial_name: str, logs: Sequence[MetricLog]) -> None:
        """Record logs without asking for a decision: for a trial's last logs collected
        after its process ended, and for replaying finished trials after a restart (a
        check there would only compute, and log, decisions nobody acts on)."""
        with self._lock:
            self.algorithm.observe(trial_name, logs)

    def trial_finished(self, trial_name: str, state: str) -> None:
        """The trial reached ``state`` (Succeeded, EarlyStopped, Failed, Killed or
        MetricsUnavailable). Only Succeeded and EarlyStopped trials become references."""
        with self._lock:
            self.algorithm.trial_finished(trial_name, state)

    def rules(self) -> list[EarlyStoppingRule]:
        """The current rule in upstream's form, for trials run by upstream's sidecar."""
        with self._lock:
            return self.algorithm.rules()
