"""Early stopping in the controller: the rule runs in-process on the rows the controller
collects, checked at every new report (upstream's sidecar checks once, §13 item 5).

A rule learns from completed trials' curves. After a controller restart a new rule is built
and shown the curves again before any running trial is judged: from the DB when one is
configured, else from the logs of completed trials whose pods still exist (``retain``).
Without either, completed trials whose pods are gone cannot be replayed, and the rule waits
for ``min_trials_required`` new completions; configure a DB to keep early stopping sharp
across restarts.

``EarlyStopping`` is the interface the controller drives; ``EarlyStopper`` implements it
in-process, ``remote_earlystopping.RemoteEarlyStopping`` with a remote service's rules.
"""

from __future__ import annotations

import logging
from typing import Callable, Protocol, Sequence

from earlystop.base import Decision
from earlystop.inprocess import EarlyStoppingSession
from katib.api.model import EarlyStoppingRule, Experiment, Trial, TrialCondition as TC
from katib.api.observation import MetricLog

__all__ = ["EarlyStopping", "EarlyStopper"]

log = logging.getLogger(__name__)


class EarlyStopping(Protocol):
    """What the controller calls, per experiment: ``update`` each pass, ``replay`` after a
    restart, ``report`` a running trial's new rows (a Decision: stop it), ``observe`` rows
    not to be judged, ``finished`` when a trial ends, ``trial_stopped`` after an early stop
    was recorded, ``rules`` for a new trial's spec."""

    def update(self, experiment: Experiment, trials: Sequence[Trial]) -> None: ...

    def replay(self, trials: Sequence[Trial], rows_of: Callable[[Trial], list[MetricLog] | None]) -> None: ...

    def report(self, trial_name: str, rows: Sequence[MetricLog]) -> Decision | None: ...

    def observe(self, trial_name: str, rows: Sequence[MetricLog]) -> None: ...

    def finished(self, trial_name: str, state: str) -> None: ...

    def trial_stopped(self, trial_name: str) -> None: ...

    def rules(self) -> list[EarlyStoppingRule]: ...


class EarlyStopper:
    """One experiment's early-stopping rule, fed by the trials' collected rows."""

    def __init__(self, session: EarlyStoppingSession) -> None:
        self.session = session
        self._finished: set[str] = set()

    @classmethod
    def for_experiment(cls, exp: Experiment) -> "EarlyStopper | None":
        session = EarlyStoppingSession.for_experiment(exp.spec)
        return cls(session) if session is not None else None

    def update(self, experiment: Experiment, trials: Sequence[Trial]) -> None:
        """Nothing to do: the rule learns from the rows it is shown."""

    def trial_stopped(self, trial_name: str) -> None:
        """Nothing to tell: the controller recorded the trial EarlyStopped."""

    def rules(self) -> list[EarlyStoppingRule]:
        return self.session.rules()

    def replay(self, trials: Sequence[Trial], rows_of: Callable[[Trial], list[MetricLog] | None]) -> None:
        """Show the rule every finished trial, before it judges a running one."""
        replayed = 0
        for trial in trials:
            state = trial.status.state
            if state not in TC.COMPLETED:
                continue
            if state in (TC.SUCCEEDED, TC.EARLY_STOPPED):
                rows = rows_of(trial)
                if rows is None:
                    continue
                self.session.observe(trial.name, rows)
                replayed += 1
            self.finished(trial.name, state)
        if replayed:
            log.info("early stopping: replayed %d completed trial(s)", replayed)

    def report(self, trial_name: str, rows: Sequence[MetricLog]) -> Decision | None:
        if trial_name in self._finished or not rows:
            return None
        return self.session.report(trial_name, rows)

    def observe(self, trial_name: str, rows: Sequence[MetricLog]) -> None:
        if trial_name not in self._finished and rows:
            self.session.observe(trial_name, rows)

    def finished(self, trial_name: str, state: str) -> None:
        if trial_name not in self._finished:
            self._finished.add(trial_name)
            self.session.trial_finished(trial_name, state)
