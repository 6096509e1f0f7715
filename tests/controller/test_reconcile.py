"""The reconcile core decides; these tests need no backend, store or cluster."""

from __future__ import annotations

from katib.api.model import (
    AlgorithmSpec,
    Condition,
    Experiment,
    ExperimentSpec,
    Metric,
    ObjectiveSpec,
    ObjectMeta,
    Observation,
    ParameterAssignment,
    Trial,
    TrialSpec,
    TrialStatus,
)
from katib.controller.reconcile import reconcile

NOW = "2026-01-01T00:00:00Z"


def experiment(max_trials: int | None = 6, parallel: int = 3, goal: float | None = None,
               max_failed: int | None = None, type_: str = "maximize") -> Experiment:
    return Experiment(
        metadata=ObjectMeta(name="exp", namespace="default"),
        spec=ExperimentSpec(
            objective=ObjectiveSpec(type=type_, goal=goal, objective_metric_name="acc"),
            algorithm=AlgorithmSpec(algorithm_name="random"),
            parallel_trial_count=parallel, max_trial_count=max_trials, max_failed_trial_count=max_failed,
        ),
    )


def trial(name: str, state: str, acc: float | None = None) -> Trial:
    conds = [Condition(type="Created", status="True")]
    if state != "Pending":
        conds.append(Condition(type=state, status="True"))
    obs = Observation([Metric("acc", min=str(acc), max=str(acc), latest=str(acc))]) if acc is not None else None
    return Trial(metadata=ObjectMeta(name=name), spec=TrialSpec(parameter_assignments=[ParameterAssignment("x", "1")]),
                 status=TrialStatus(conditions=conds, observation=obs))


def run(exp: Experiment, trials: list[Trial], **kw):  # type: ignore[no-untyped-def]
    actions = reconcile(exp, trials, NOW, **kw)
    exp.status = actions.status
    return actions


def reason(exp: Experiment, type_: str) -> str | None:
    assert exp.status is not None
    for c in exp.status.conditions:
        if c.type == type_ and c.status == "True":
            return c.reason
    return None


def test_new_experiment_is_created_and_requests_parallel_trials() -> None:
    exp = experiment()
    actions = run(exp, [])
    assert reason(exp, "Created") == "ExperimentCreated"
    assert reason(exp, "Running") == "ExperimentRunning"
    assert actions.request == 3 and not actions.completed


def test_requests_only_free_slots() -> None:
    exp = experiment()
    actions = run(exp, [trial("a", "Running"), trial("b", "Succeeded", 0.5)])
    assert actions.request == 2


def test_never_requests_beyond_max_trial_count_counting_every_state() -> None:
    exp = experiment(max_trials=4, parallel=3)
    trials = [trial("a", "Succeeded", 0.1), trial("b", "MetricsUnavailable"), trial("c", "Running")]
    actions = run(exp, trials)
    # upstream does not count MetricsUnavailable here and would create 2 (§13 item 10)
    assert actions.request == 1


def test_max_trials_reached_succeeds_and_stops_running_trials() -> None:
    exp = experiment(max_trials=2, parallel=3)
    trials = [trial("a", "Succeeded", 0.1), trial("b", "Failed"), trial("c", "Running")]
    actions = run(exp, trials)
    assert actions.completed
    assert reason(exp, "Succeeded") == "ExperimentMaxTrialsReached"
    assert actions.stop == ["c"]
    assert exp.status is not None and exp.status.completion_time == NOW


def test_goal_reached_for_maximize_and_minimize() -> None:
    exp = experiment(goal=0.9)
    run(exp, [trial("a", "Succeeded", 0.95)])
    assert reason(exp, "Succeeded") == "ExperimentGoalReached"
    exp = experiment(goal=0.1, type_="minimize")
    run(exp, [trial("a", "Succeeded", 0.2)])
    assert reason(exp, "Succeeded") is None
    run(exp, [trial("a", "Succeeded", 0.2), trial("b", "Succeeded", 0.05)])
    assert reason(exp, "Succeeded") == "ExperimentGoalReached"


def test_a_running_trials_live_value_does_not_end_the_experiment_on_goal() -> None:
    # It shows as the current optimum, but the experiment waits for the trial to finish,
    # so the trial that reached the goal is not killed on the way.
    exp = experiment(goal=0.9)
    actions = run(exp, [trial("a", "Running", 0.95), trial("b", "Running", 0.3)])
    assert reason(exp, "Succeeded") is None and not actions.stop and not actions.completed
    assert exp.status is not None and exp.status.current_optimal_trial is not None
    assert exp.status.current_optimal_trial.best_trial_name == "a"
    actions = run(exp, [trial("a", "Succeeded", 0.95), trial("b", "Running", 0.3)])
    assert reason(exp, "Succeeded") == "ExperimentGoalReached" and actions.stop == ["b"]


def test_an_early_stopped_trial_can_reach_the_goal() -> None:
    exp = experiment(goal=0.1, type_="minimize")
    run(exp, [trial("a", "EarlyStopped", 0.05)])
    assert reason(exp, "Succeeded") == "ExperimentGoalReached"


def test_max_failed_fails_the_experiment() -> None:
    exp = experiment(max_failed=2)
    run(exp, [trial("a", "Failed")])
    assert reason(exp, "Failed") is None
    actions = run(exp, [trial("a", "Failed"), trial("b", "MetricsUnavailable"), trial("c", "Running")])
    assert reason(exp, "Failed") == "ExperimentFailed"
    assert actions.stop == ["c"]


def test_best_trial_and_counts() -> None:
    exp = experiment(max_trials=10)
    trials = [trial("a", "Succeeded", 0.5), trial("b", "Succeeded", 0.7), trial("c", "EarlyStopped", 0.6),
              trial("d", "Killed"), trial("e", "Pending")]
    run(exp, trials)
    s = exp.status
    assert s is not None and s.current_optimal_trial is not None
    assert s.current_optimal_trial.best_trial_name == "b"
    assert (s.trials, s.trials_succeeded, s.trials_early_stopped, s.trials_killed, s.trials_pending) == (5, 2, 1, 1, 1)
    assert s.pending_trial_list == ["e"]


def test_minimize_picks_lowest_and_first_wins_ties() -> None:
    exp = experiment(type_="minimize")
    run(exp, [trial("a", "Succeeded", 0.3), trial("b", "Succeeded", 0.3), trial("c", "Succeeded", 0.4)])
    assert exp.status is not None and exp.status.current_optimal_trial is not None
    assert exp.status.current_optimal_trial.best_trial_name == "a"


def test_exhausted_suggestions_wait_for_running_trials_then_end() -> None:
    exp = experiment(max_trials=None)
    actions = run(exp, [trial("a", "Running")], suggestion_exhausted=True)
    assert not actions.completed and actions.request == 0
    actions = run(exp, [trial("a", "Succeeded", 0.4)], suggestion_exhausted=True)
    assert actions.completed
    assert reason(exp, "Succeeded") == "ExperimentSuggestionEndReached"


def test_raising_max_trial_count_restarts_only_a_max_trials_completion() -> None:
    exp = experiment(max_trials=1, parallel=1)
    trials = [trial("a", "Succeeded", 0.4)]
    run(exp, trials)
    assert reason(exp, "Succeeded") == "ExperimentMaxTrialsReached"
    exp.spec.max_trial_count = 3
    actions = run(exp, trials)
    assert actions.restarted and not actions.completed and actions.request == 1
    assert reason(exp, "Succeeded") is None and reason(exp, "Running") == "ExperimentRunning"

    goal = experiment(max_trials=None, goal=0.1, type_="minimize")
    run(goal, [trial("a", "Succeeded", 0.05)])
    again = run(goal, [trial("a", "Succeeded", 0.05)])
    assert again.completed and not again.restarted  # upstream re-marks it Restarting every time (§13 item 9)


def test_suggestion_failure_fails_experiment_with_message() -> None:
    exp = experiment()
    run(exp, [], suggestion_failed="n_startup_trials: must be >= 0")
    assert reason(exp, "Failed") == "ExperimentFailed"
    assert exp.status is not None
    assert any("n_startup_trials" in (c.message or "") for c in exp.status.conditions)


def test_an_unreachable_suggestion_service_keeps_the_experiment_running_and_says_so() -> None:
    from katib.controller.conditions import get_condition

    exp = experiment(max_trials=4, parallel=2)
    run(exp, [])
    actions = run(exp, [trial("a", "Running")], suggestion_unavailable="suggestion service unavailable, retrying")
    assert not actions.completed and actions.request == 1
    cond = get_condition(exp.status.conditions, "Running")
    assert cond is not None and cond.status == "True" and cond.reason == "ExperimentRunning"
    assert cond.message == "Experiment is running; suggestion service unavailable, retrying"
    run(exp, [trial("a", "Running")])  # back: the message says so too
    assert get_condition(exp.status.conditions, "Running").message == "Experiment is running"  # type: ignore[union-attr]


def test_an_interrupted_experiment_is_not_running_and_resumes_as_running() -> None:
    from katib.controller.conditions import get_condition
    from katib.controller.reconcile import mark_interrupted

    exp = experiment(max_trials=2, parallel=2)
    run(exp, [])
    assert exp.status is not None
    exp.status = mark_interrupted(exp.status, "Experiment was interrupted", NOW)
    cond = get_condition(exp.status.conditions, "Running")
    assert cond is not None and (cond.status, cond.reason) == ("False", "ExperimentInterrupted")
    assert reason(exp, "Succeeded") is None and reason(exp, "Failed") is None
    actions = run(exp, [])
    assert actions.request == 2 and reason(exp, "Running") == "ExperimentRunning"
