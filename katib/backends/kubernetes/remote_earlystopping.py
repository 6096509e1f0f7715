"""Early stopping by a remote EarlyStopping service (``--earlystopping-address NAME=HOST:PORT``).

The service computes the rules (upstream's ``GetEarlyStoppingRules``: it reads completed
trials' logs from the DB manager named in the request); this adapter applies them to the
running trials' reports in the controller, with upstream's sidecar semantics (§8) except
that a rule is checked at *every* report from ``start_step`` on, not only once:

* the compared value is, for the objective metric, the trial's best so far (max when
  maximizing, min when minimizing), for any other metric its latest value;
* a rule is met when ``value < threshold`` (LESS), ``value > threshold`` (GREATER) or
  ``value == threshold`` (EQUAL) at a step >= ``start_step`` (steps: a report's explicit
  step, else its position among the trial's reports of that metric);
* the trial stops when every rule is met.

Rules are asked for again when the set of completed trials changed (and while there are
none yet although trials completed), at most every ``refresh_interval`` seconds; a failed
call keeps the rules we have. After stopping a trial the controller calls
``trial_stopped``, which tells the service (``SetTrialStatus``), best effort.

It has the interface of ``earlystopping.EarlyStopper`` and imports no grpc: the client is
injected (``katib.rpc.earlystopping_client.RemoteEarlyStopper`` in the controller).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

from earlystop.base import COMPLETED_STATES, Decision
from katib.api.model import EarlyStoppingRule, Experiment, ObjectiveType, Trial
from katib.api.observation import MetricLog
from katib.errors import KatibError

__all__ = ["RemoteEarlyStopping", "RemoteDecision", "EarlyStoppingClient", "REFRESH_INTERVAL"]

log = logging.getLogger(__name__)

REFRESH_INTERVAL = 5.0  # seconds between two GetEarlyStoppingRules calls, at least
# Budget of one call, retries included: the calls are made while a worker reconciles the
# experiment, so a service that is down costs a short wait, then the rules we have.
CALL_BUDGET = 15.0

_WORDS = {"less": "below", "greater": "above", "equal": "equal to"}


class EarlyStoppingClient(Protocol):
    address: str

    def rules(self, experiment: Experiment, trials: Sequence[Trial], db_manager_address: str,
              timeout: float | None = None) -> list[EarlyStoppingRule]: ...

    def set_trial_status(self, trial_name: str, timeout: float | None = None) -> None: ...


@dataclass(frozen=True)
class RemoteDecision(Decision):
    """A decision made with a remote service's rule; ``comparison`` is the rule's."""

    service: str
    comparison: str

    @property
    def message(self) -> str:
        best = "best " if self.metric_name and self.comparison != "equal" else ""
        return (f"trial {self.trial_name}: {best}{self.metric_name} {self.value:g} at step {self.step} is "
                f"{_WORDS.get(self.comparison, self.comparison)} {self.threshold:g}, the threshold from the "
                f"{self.algorithm} early-stopping service at {self.service} "
                f"({self.completed_trials} completed trials)")


class _Metric:
    __slots__ = ("step", "best", "latest")

    def __init__(self) -> None:
        self.step = 0
        self.best: float | None = None
        self.latest: float | None = None


def _met(comparison: str, value: float, threshold: float) -> bool:
    if comparison == "less":
        return value < threshold
    if comparison == "greater":
        return value > threshold
    if comparison == "equal":
        return value == threshold
    return False


class RemoteEarlyStopping:
    """One experiment's early stopping, with rules from a remote service."""

    def __init__(self, client: EarlyStoppingClient, experiment: Experiment, db_manager_address: str, *,
                 refresh_interval: float = REFRESH_INTERVAL, call_budget: float = CALL_BUDGET,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.experiment = experiment
        self.db_manager_address = db_manager_address
        self.refresh_interval = refresh_interval
        self.call_budget = call_budget
        self._clock = clock
        objective = experiment.spec.objective
        self._objective = objective.objective_metric_name if objective else ""
        self._maximize = objective is not None and objective.type == ObjectiveType.MAXIMIZE
        es = experiment.spec.early_stopping
        self._algorithm = (es.algorithm_name if es else None) or "early-stopping"
        self._trials: list[Trial] = []
        self._metrics: dict[str, dict[str, _Metric]] = {}
        self._decisions: dict[str, RemoteDecision] = {}
        self._finished: set[str] = set()
        self._completed: set[str] = set()
        self._rules: list[EarlyStoppingRule] = []
        self._fetched_for: frozenset[str] | None = None  # completed trials at the last good call
        self._last_call: float | None = None
        self._lock = threading.Lock()

    # -- the EarlyStopper interface ------------------------------------------------------------

    def update(self, experiment: Experiment, trials: Sequence[Trial]) -> None:
        """The experiment and its trials as the controller read them this pass (sent to the
        service with the next rules request)."""
        with self._lock:
            self.experiment = experiment
            self._trials = list(trials)

    def replay(self, trials: Sequence[Trial], rows_of: Callable[[Trial], list[MetricLog] | None]) -> None:
        """After a restart: the service reads completed trials from the DB itself, so only
        their names are noted (``rows_of`` is not called)."""
        for trial in trials:
            if trial.status.state in COMPLETED_STATES + ("Failed", "Killed", "MetricsUnavailable"):
                self.finished(trial.name, trial.status.state)

    def report(self, trial_name: str, rows: Sequence[MetricLog]) -> Decision | None:
        with self._lock:
            if trial_name in self._decisions:
                return self._decisions[trial_name]
            if trial_name in self._finished or not rows:
                return None
            self._refresh_if_due()
            for row in rows:
                self._add(trial_name, row)
                decision = self._check(trial_name)
                if decision is not None:
                    self._decisions[trial_name] = decision
                    return decision
            return None

    def observe(self, trial_name: str, rows: Sequence[MetricLog]) -> None:
        with self._lock:
            if trial_name not in self._finished:
                for row in rows:
                    self._add(trial_name, row)

    def finished(self, trial_name: str, state: str) -> None:
        with self._lock:
            self._finished.add(trial_name)
            self._metrics.pop(trial_name, None)
            if state in COMPLETED_STATES:
                self._completed.add(trial_name)

    def rules(self) -> list[EarlyStoppingRule]:
        """The service's current rules (refreshed if due), for new trials' spec."""
        with self._lock:
            self._refresh_if_due()
            return list(self._rules)

    def trial_stopped(self, trial_name: str) -> None:
        """Tell the service the trial was early stopped (best effort, as upstream's sidecar)."""
        try:
            self.client.set_trial_status(trial_name, timeout=self.call_budget)
        except KatibError as exc:
            log.warning("early-stopping service at %s: SetTrialStatus(%s) failed: %s",
                        self.client.address, trial_name, exc)
        else:
            log.info("early-stopping service at %s told that trial %s was early stopped",
                     self.client.address, trial_name)

    # -- internals ----------------------------------------------------------------------------

    def _refresh_if_due(self) -> None:
        completed = frozenset(self._completed)
        stale = completed != self._fetched_for or (not self._rules and bool(completed))
        now = self._clock()
        if not stale or (self._last_call is not None and now - self._last_call < self.refresh_interval):
            return
        self._last_call = now
        try:
            rules = self.client.rules(self.experiment, self._trials, self.db_manager_address,
                                     timeout=self.call_budget)
        except KatibError as exc:
            log.warning("experiment %s: early-stopping service at %s: %s; keeping %d rule(s)",
                        self.experiment.name, self.client.address, exc, len(self._rules))
            return
        if [r.to_dict() for r in rules] != [r.to_dict() for r in self._rules]:
            log.info("experiment %s: early-stopping rules from %s: %s", self.experiment.name,
                     self.client.address, ", ".join(f"{r.name} {r.comparison} {r.value} from step "
                                                    f"{r.start_step}" for r in rules) or "none")
        self._rules = rules
        self._fetched_for = completed

    def _add(self, trial_name: str, row: MetricLog) -> None:
        m = self._metrics.setdefault(trial_name, {}).setdefault(row.metric_name, _Metric())
        m.step = m.step + 1 if row.step is None else max(m.step, row.step)
        value = row.number
        if value is None or not math.isfinite(value):
            return
        m.latest = value
        better = m.best is None or (value > m.best if self._maximize else value < m.best)
        if better:
            m.best = value

    def _check(self, trial_name: str) -> RemoteDecision | None:
        if not self._rules:
            return None
        metrics = self._metrics.get(trial_name, {})
        first: tuple[EarlyStoppingRule, float, float, int] | None = None
        for rule in self._rules:
            m = metrics.get(rule.name)
            if m is None or m.step < (rule.start_step or 0):
                return None
            value = m.best if rule.name == self._objective else m.latest
            try:
                threshold = float(rule.value)
            except ValueError:
                return None  # a rule we cannot read never stops a trial
            if value is None or not _met(rule.comparison, value, threshold):
                return None
            if first is None or rule.name == self._objective:
                first = (rule, value, threshold, m.step)
        if first is None:
            return None
        rule, value, threshold, step = first
        return RemoteDecision(trial_name=trial_name, algorithm=self._algorithm, metric_name=rule.name,
                              step=step, value=value, threshold=threshold,
                              completed_trials=len(self._fetched_for or ()), maximize=self._maximize,
                              service=self.client.address, comparison=rule.comparison)
