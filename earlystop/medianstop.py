"""Median stopping rule (Golovin et al., "Google Vizier", 2017), served as ``medianstop``.

A running trial is stopped at step ``s >= start_step`` when its best objective value up to
``s`` is worse than the median, over the completed trials, of each one's best value up to
``s``. A completed trial that never reached ``s`` takes its best value over all its steps; a
completed trial whose first report comes after ``s`` (possible with explicit steps) has
nothing to compare at ``s`` and sits that step out. The rule is checked at every report from
``start_step`` on, once at least ``min_trials_required`` completed trials have a value at
that step. Ties do not stop a trial.

Steps: a log's explicit ``MetricLog.step`` where the trial gives one; otherwise the position
of the report among the trial's objective reports (1, 2, 3, ...; a report without a step
after explicit ones continues from the largest step seen). ``start_step`` is compared with
these steps, so with explicit steps it is in the trial's own units.

Values that do not parse as a number, or parse as NaN or infinity, are not comparable: they
advance the report counter but never become a trial's best.

What upstream gets wrong and this module fixes (reference §8, §13.5): upstream's rule value
is the *mean* of the completed trials' mean of their first ``start_step`` values (one
outlier moves it arbitrarily), and its sidecar evaluates the rule only once, at exactly the
``start_step``-th report, so a trial that turns hopeless later is never stopped.

Cost: each trial keeps a prefix-best curve (sorted steps and the best value up to each), so
adding a report is O(1) (O(k) only for out-of-order explicit steps), reading a completed
trial's best up to ``s`` is O(log k), and the median at ``s`` is computed once per set of
completed trials (O(C log C)) and cached, so a check is O(1) amortized and never rescans
observations.
"""

from __future__ import annotations

import logging
import math
import statistics
from bisect import bisect_left, bisect_right
from typing import ClassVar, Mapping, Sequence

from katib.api.model import EarlyStoppingRule, ObjectiveSpec
from katib.api.observation import MetricLog
from earlystop.base import COMPLETED_STATES, DISCARDED_STATES, Decision, EarlyStoppingAlgorithm
from suggestion.base import check_known, parse_int

__all__ = ["MedianStop"]

log = logging.getLogger(__name__)

# Enough for any realistic number of distinct steps; bounds memory for pathological ones.
_MEDIAN_CACHE_LIMIT = 65536


class _Curve:
    """One trial's objective as prefix bests. Values are stored as *scores* (higher is
    better: the value when maximizing, its negation when minimizing) so that every
    comparison below is the same whatever the objective's direction."""

    __slots__ = ("steps", "best", "last_step")

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.best: list[float] = []
        # Largest step of any objective report, numeric or not: implicit steps count on from
        # it, so a trial without explicit steps gets 1, 2, 3, ... and mixed trials continue.
        self.last_step = 0

    def next_step(self, explicit: int | None) -> int:
        step = self.last_step + 1 if explicit is None else explicit
        self.last_step = max(self.last_step, step)
        return step

    def add(self, step: int, score: float) -> None:
        if not self.steps or step > self.steps[-1]:
            # The usual case: reports arrive in step order.
            self.steps.append(step)
            self.best.append(score if not self.best else max(self.best[-1], score))
            return
        # A report for an earlier or the same step (a resumed run re-reporting): the prefix
        # bests from that step on can only improve, so update them in place.
        i = bisect_left(self.steps, step)
        if self.steps[i] != step:
            before = self.best[i - 1] if i > 0 else score
            self.steps.insert(i, step)
            self.best.insert(i, max(before, score))
            i += 1
        for j in range(i, len(self.best)):
            if self.best[j] >= score:
                break  # prefix bests are monotone: nothing after this changes either
            self.best[j] = score

    def best_at(self, step: int) -> float | None:
        """Best score up to ``step`` (the overall best when the curve ended earlier)."""
        i = bisect_right(self.steps, step) - 1
        return self.best[i] if i >= 0 else None


class _Trial:
    __slots__ = ("curve", "checked_through", "decision", "completed")

    def __init__(self) -> None:
        self.curve = _Curve()
        self.checked_through: int | None = None  # steps <= this were checked already
        self.decision: Decision | None = None
        self.completed = False


class MedianStop(EarlyStoppingAlgorithm):
    name = "medianstop"
    settings: ClassVar[Mapping[str, str | None]] = {"min_trials_required": "3", "start_step": "4"}

    @classmethod
    def validate_settings(cls, settings: Mapping[str, str]) -> None:
        check_known(cls.name, settings, cls.settings)
        parse_int(settings, "min_trials_required", 3, min_value=1)
        parse_int(settings, "start_step", 4, min_value=1)

    def __init__(self, objective: ObjectiveSpec, settings: Mapping[str, str]) -> None:
        super().__init__(objective, settings)
        self.min_trials_required: int = parse_int(settings, "min_trials_required", 3, min_value=1) or 3
        self.start_step: int = parse_int(settings, "start_step", 4, min_value=1) or 4
        self._trials: dict[str, _Trial] = {}
        self._discarded: set[str] = set()
        # Completed trials with at least one numeric value: the reference population.
        self._references: dict[str, _Curve] = {}
        self._medians: dict[int, tuple[float, int] | None] = {}

    # -- the contract ------------------------------------------------------------------

    def observe(self, trial_name: str, logs: Sequence[MetricLog]) -> None:
        if trial_name in self._discarded:
            return
        trial = self._trials.get(trial_name)
        sign = 1.0 if self.maximize else -1.0
        added = False
        for entry in logs:
            if entry.metric_name != self.metric_name:
                continue
            if trial is None:
                trial = self._trials[trial_name] = _Trial()
            step = trial.curve.next_step(entry.step)
            value = entry.number
            if value is None or not math.isfinite(value):
                continue
            trial.curve.add(step, sign * value)
            added = True
        if added and trial is not None and trial.completed:
            # Late logs of a completed trial change the reference population.
            self._references[trial_name] = trial.curve
            self._medians.clear()

    def trial_finished(self, trial_name: str, state: str) -> None:
        if state in COMPLETED_STATES:
            trial = self._trials.setdefault(trial_name, _Trial())
            trial.completed = True
            self._discarded.discard(trial_name)
            if trial.curve.steps and trial_name not in self._references:
                self._references[trial_name] = trial.curve
                self._medians.clear()
            elif not trial.curve.steps:
                log.debug("completed trial %s reported no numeric %s; not a reference",
                          trial_name, self.metric_name)
        elif state in DISCARDED_STATES:
            self._trials.pop(trial_name, None)
            self._discarded.add(trial_name)
            if self._references.pop(trial_name, None) is not None:
                self._medians.clear()
        else:
            raise ValueError(f"trial {trial_name}: {state!r} is not a final state; expected one "
                             f"of {', '.join(COMPLETED_STATES + DISCARDED_STATES)}")

    def should_stop(self, trial_name: str) -> Decision | None:
        trial = self._trials.get(trial_name)
        if trial is None or trial.completed:
            return None
        if trial.decision is not None:
            return trial.decision
        curve = trial.curve
        if not curve.steps:
            return None
        first = 0 if trial.checked_through is None else bisect_right(curve.steps, trial.checked_through)
        trial.checked_through = curve.steps[-1]
        if len(self._references) < self.min_trials_required:
            return None  # too early: these reports are never checked, later ones will be
        for i in range(max(first, bisect_left(curve.steps, self.start_step)), len(curve.steps)):
            step = curve.steps[i]
            median = self._median_score(step)
            if median is not None and curve.best[i] < median[0]:
                trial.checked_through = step
                trial.decision = self._decision(trial_name, step, curve.best[i], *median)
                log.info("early stopping: %s", trial.decision.message)
                return trial.decision
        return None

    def rules(self) -> list[EarlyStoppingRule]:
        median = self._median_score(self.start_step)
        if median is None:
            return []
        return [EarlyStoppingRule(
            name=self.metric_name,
            value=repr(self._value(median[0])),
            # The sidecar stops a trial whose best-so-far compares this way with the value.
            comparison="less" if self.maximize else "greater",
            start_step=self.start_step,
        )]

    # -- queries for services and tests -------------------------------------------------

    def median_at(self, step: int) -> float | None:
        """The threshold at ``step`` in objective units, or None while there are too few
        completed trials with a value at that step."""
        median = self._median_score(step)
        return None if median is None else self._value(median[0])

    @property
    def completed_trials(self) -> list[str]:
        """Names of the reference trials, in the order they completed."""
        return list(self._references)

    # -- internals ------------------------------------------------------------------------

    def _median_score(self, step: int) -> tuple[float, int] | None:
        if step in self._medians:
            return self._medians[step]
        scores = [s for s in (c.best_at(step) for c in self._references.values()) if s is not None]
        result = (statistics.median(scores), len(scores)) if len(scores) >= self.min_trials_required else None
        if len(self._medians) >= _MEDIAN_CACHE_LIMIT:
            self._medians.clear()
        self._medians[step] = result
        return result

    def _value(self, score: float) -> float:
        return score if self.maximize else -score

    def _decision(self, trial_name: str, step: int, score: float, median: float, n: int) -> Decision:
        return Decision(trial_name=trial_name, algorithm=self.name, metric_name=self.metric_name,
                        step=step, value=self._value(score), threshold=self._value(median),
                        completed_trials=n, maximize=self.maximize)
