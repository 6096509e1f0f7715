"""The reconcile core: given an experiment and its trials, decide what happens next.

Pure: no I/O, no clock (``now`` is passed in), no backend. ``katib run`` and the Kubernetes
controller both call ``reconcile`` and carry out the returned ``Actions``, so a behaviour
fixed here is fixed everywhere.

Differences from upstream that are deliberate (reference §13):
- completed = succeeded + failed + killed + early-stopped + metrics-unavailable, the same set
  for the stop test and for counting how many trials to request, so an experiment never
  creates trials beyond ``maxTrialCount``;
- the number requested is bounded by the remaining budget counted over *all* trials;
- when the experiment ends, running trials are stopped (``Actions.stop``) and recorded Killed;
- the suggestion service saying "search space exhausted" ends the experiment as
  ``ExperimentSuggestionEndReached`` once the running trials have finished;
- a completed experiment whose ``maxTrialCount`` was raised restarts only when it was
  completed by reaching ``maxTrialCount`` (never re-marked on every reconcile).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from katib.api.model import (
    Experiment,
    ExperimentCondition as EC,
    ExperimentStatus,
    OptimalTrial,
    Trial,
    TrialCondition as TC,
)
from katib.controller.conditions import get_condition, is_true, set_condition
from katib.metrics.strategies import best_trial

__all__ = ["Actions", "reconcile", "compute_status", "is_completed", "mark_interrupted", "REASON_INTERRUPTED"]

PENDING = "Pending"
# The reason on ``Running=False`` of an experiment whose runner stopped before it completed
# (Ctrl-C, the suggestion service gone too long): not running, not completed, resumable.
REASON_INTERRUPTED = "ExperimentInterrupted"


@dataclass
class Actions:
    """What the caller must carry out after a reconcile."""

    status: ExperimentStatus
    request: int = 0  # how many new assignments to ask the suggestion service for
    stop: list[str] = field(default_factory=list)  # running trials to stop (recorded Killed)
    completed: bool = False  # Succeeded or Failed
    restarted: bool = False


def is_completed(status: ExperimentStatus | None) -> bool:
    return status is not None and (is_true(status.conditions, EC.SUCCEEDED) or is_true(status.conditions, EC.FAILED))


def compute_status(exp: Experiment, trials: Sequence[Trial]) -> ExperimentStatus:
    """Counts, per-state lists and the current optimum, keeping conditions and times."""
    old = exp.status or ExperimentStatus()
    status = ExperimentStatus(
        start_time=old.start_time,
        completion_time=old.completion_time,
        last_reconcile_time=old.last_reconcile_time,
        conditions=[c.copy() for c in old.conditions],
    )
    lists = {
        TC.KILLED: status.killed_trial_list,
        TC.FAILED: status.failed_trial_list,
        TC.SUCCEEDED: status.succeeded_trial_list,
        TC.EARLY_STOPPED: status.early_stopped_trial_list,
        TC.RUNNING: status.running_trial_list,
        TC.METRICS_UNAVAILABLE: status.metrics_unavailable_trial_list,
        PENDING: status.pending_trial_list,
    }
    for t in trials:
        lists[t.status.state].append(t.name)
    status.trials = len(trials)
    status.trials_succeeded = len(status.succeeded_trial_list)
    status.trials_failed = len(status.failed_trial_list)
    status.trials_killed = len(status.killed_trial_list)
    status.trials_pending = len(status.pending_trial_list)
    status.trials_running = len(status.running_trial_list)
    status.trials_early_stopped = len(status.early_stopped_trial_list)
    status.trial_metrics_unavailable = len(status.metrics_unavailable_trial_list)
    found = best_trial(trials, exp.spec.objective) if exp.spec.objective else None
    if found is not None:
        best = found.trial
        status.current_optimal_trial = OptimalTrial(
            best_trial_name=best.name,
            parameter_assignments=[a.copy() for a in best.spec.parameter_assignments],
            observation=best.status.observation.copy() if best.status.observation else None,
        )
    else:
        status.current_optimal_trial = old.current_optimal_trial
    return status


def _goal_reached(exp: Experiment, trials: Sequence[Trial]) -> bool:
    """The goal counts only trials that ran to their end (Succeeded or EarlyStopped), as
    upstream, whose trials carry an observation only once completed. A running trial's live
    value shows in ``currentOptimalTrial`` but does not end the experiment: ending it there
    would kill the very trial that reached the goal, just before it finished and saved
    its result."""
    objective = exp.spec.objective
    if objective is None or objective.goal is None:
        return False
    done = [t for t in trials if t.status.state in (TC.SUCCEEDED, TC.EARLY_STOPPED)]
    found = best_trial(done, objective)
    return found is not None and found.goal_reached


def mark_interrupted(status: ExperimentStatus, message: str, now: str) -> ExperimentStatus:
    """``Running=False`` with reason ``ExperimentInterrupted``: the experiment's runner stopped
    before it completed; running it again resumes it (the next ``reconcile`` marks it Running)."""
    if not is_completed(status):
        set_condition(status.conditions, EC.RUNNING, "False", REASON_INTERRUPTED, message, now)
    return status


def reconcile(exp: Experiment, trials: Sequence[Trial], now: str, *,
              suggestion_exhausted: bool = False, suggestion_failed: str | None = None,
              suggestion_unavailable: str | None = None) -> Actions:
    """Decide the experiment's new status and what to do next.

    ``suggestion_exhausted``: the suggestion service said it has nothing more to suggest.
    ``suggestion_failed``: a non-retryable suggestion error (e.g. invalid settings); the
    experiment fails with that message.
    ``suggestion_unavailable``: the suggestion service cannot be reached and the caller is
    retrying; the experiment stays Running and its Running condition says so.
    """
    status = compute_status(exp, trials)
    status.last_reconcile_time = now
    actions = Actions(status=status)
    conds = status.conditions
    if not conds:
        set_condition(conds, EC.CREATED, "True", EC.REASON_CREATED, "Experiment is created", now)
        status.start_time = status.start_time or now

    running = status.running_trial_list + status.pending_trial_list
    max_trials = exp.spec.max_trial_count
    completed_count = ((status.trials_succeeded or 0) + (status.trials_failed or 0) + (status.trials_killed or 0)
                       + (status.trials_early_stopped or 0) + (status.trial_metrics_unavailable or 0))
    failed_count = (status.trials_failed or 0) + (status.trial_metrics_unavailable or 0)

    if is_completed(status):
        # Raising maxTrialCount restarts an experiment that ended by reaching it (§6.7),
        # and only that one: no re-marking on every reconcile (§13 item 9).
        succeeded = is_true(conds, EC.SUCCEEDED)
        reason = next((c.reason for c in conds if c.type == EC.SUCCEEDED), None)
        if (succeeded and reason == EC.REASON_MAX_TRIALS_REACHED and max_trials is not None
                and completed_count < max_trials):
            set_condition(conds, EC.SUCCEEDED, "False", EC.REASON_RESTARTING, "Experiment is restarting", now)
            set_condition(conds, EC.RESTARTING, "True", EC.REASON_RESTARTING,
                          "Experiment is restarting because maxTrialCount was raised", now)
            status.completion_time = None
            actions.restarted = True
        else:
            actions.completed = True
            actions.stop = list(running)
            return actions

    end: tuple[str, str, str] | None = None
    if _goal_reached(exp, trials):
        end = (EC.SUCCEEDED, EC.REASON_GOAL_REACHED, "Experiment has succeeded because Objective goal has reached")
    elif suggestion_failed:
        end = (EC.FAILED, EC.REASON_FAILED, f"Suggestion has failed: {suggestion_failed}")
    elif exp.spec.max_failed_trial_count is not None and failed_count > 0 and failed_count >= exp.spec.max_failed_trial_count:
        end = (EC.FAILED, EC.REASON_FAILED,
               f"Experiment has failed because max failed count has reached ({failed_count} failed)")
    elif max_trials is not None and completed_count >= max_trials:
        end = (EC.SUCCEEDED, EC.REASON_MAX_TRIALS_REACHED, "Experiment has succeeded because max trial count has reached")
    elif suggestion_exhausted and not running:
        end = (EC.SUCCEEDED, EC.REASON_SUGGESTION_END_REACHED,
               "Experiment has succeeded because the suggestion service has no more suggestions")

    if end is not None:
        type_, reason, message = end
        set_condition(conds, type_, "True", reason, message, now)
        set_condition(conds, EC.RUNNING, "False", EC.REASON_RUNNING, message, now)
        set_condition(conds, EC.RESTARTING, "False", EC.REASON_RESTARTING, message, now) if is_true(conds, EC.RESTARTING) else None
        status.completion_time = now
        actions.completed = True
        actions.stop = list(running)  # upstream leaves them running (#2061); we stop them
        return actions

    running_message = "Experiment is running"
    if suggestion_unavailable:
        running_message += f"; {suggestion_unavailable}"
    set_condition(conds, EC.RUNNING, "True", EC.REASON_RUNNING, running_message, now)
    current = get_condition(conds, EC.RUNNING)
    if current is not None and current.message != running_message:  # the outage starts or ends
        current.message, current.last_update_time = running_message, now
    if is_true(conds, EC.RESTARTING):
        set_condition(conds, EC.RESTARTING, "False", EC.REASON_RESTARTING, "Experiment restarted", now)
    if suggestion_exhausted:
        return actions  # wait for the running trials, then end as SuggestionEndReached
    parallel = exp.spec.parallel_trial_count or 1
    want = parallel - len(running)
    if max_trials is not None:
        want = min(want, max_trials - len(trials))
    actions.request = max(0, want)
    return actions
