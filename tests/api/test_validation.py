"""Validation rules 1-11 and 13 of reference §4.2, plus the name/objective checks of §13 item 11.

Each rule: the valid case passes, the broken case names the field and the fix.
"""

from __future__ import annotations

from typing import Any

import pytest

from katib.api.model import Condition, ExperimentStatus
from katib.api.validation import prepare, validate, validate_or_raise
from katib.errors import ValidationError
from tests.api.factory import errors_of, experiment, find, paths


def test_the_base_experiment_is_valid() -> None:
    assert errors_of() == []


# -- rule 1: name ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["a", "demo", "my-exp-2", "x" * 40])
def test_valid_names(name: str) -> None:
    assert errors_of(lambda d: d["metadata"].update(name=name)) == []


@pytest.mark.parametrize("name, fix", [
    ("My_Exp", "'my-exp'"), ("exp.v2", "'exp-v2'"), ("demo-", "'demo'"), ("2fast", "'fast'"), ("-x", "'x'"),
])
def test_names_must_match_the_anchored_pattern(name: str, fix: str) -> None:
    # Upstream only checks the first character; "exp.v2" and "demo-" pass there but break Services.
    find(errors_of(lambda d: d["metadata"].update(name=name)), "metadata.name", "lower case alphanumeric", fix)


def test_name_at_most_40_characters() -> None:
    errs = errors_of(lambda d: d["metadata"].update(name="x" * 41))
    find(errs, "metadata.name", "41 characters", "at most 40")


def test_name_required() -> None:
    find(errors_of(lambda d: d["metadata"].pop("name")), "metadata.name", "must be specified")


# -- rules 2-6: counts ----------------------------------------------------------------------

@pytest.mark.parametrize("field, value, message", [
    ("maxFailedTrialCount", -1, "should not be less than 0"),
    ("maxTrialCount", 0, "must be greater than 0"),
    ("parallelTrialCount", 0, "must be greater than 0"),
    ("maxFailedTrialCount", 7, "less than or equal to spec.maxTrialCount (6)"),
    ("parallelTrialCount", 7, "less than or equal to spec.maxTrialCount (6)"),
])
def test_trial_counts(field: str, value: int, message: str) -> None:
    find(errors_of(lambda d: d["spec"].update({field: value})), f"spec.{field}", message)


def test_counts_equal_to_max_and_zero_failures_are_fine() -> None:
    assert errors_of(lambda d: d["spec"].update(parallelTrialCount=6, maxFailedTrialCount=0)) == []
    assert errors_of(lambda d: [d["spec"].pop(k) for k in ("maxTrialCount", "maxFailedTrialCount")]) == []


# -- rule 7: update -------------------------------------------------------------------------

def _finished(reason: str, policy: str, trials: int = 6) -> Any:
    old = experiment(lambda d: d["spec"].update(resumePolicy=policy))
    old.status = ExperimentStatus(conditions=[Condition("Succeeded", "True", reason)], trials=trials)
    return old


def test_update_of_a_restartable_experiment_may_raise_the_budget() -> None:
    old = _finished("ExperimentMaxTrialsReached", "LongRunning")
    new = experiment(lambda d: d["spec"].update(resumePolicy="LongRunning", maxTrialCount=10, parallelTrialCount=3))
    assert validate(new, old=old) == []


def test_update_without_spec_change_is_always_fine() -> None:
    old = _finished("ExperimentGoalReached", "Never")
    assert validate(experiment(), old=old) == []


@pytest.mark.parametrize("reason, policy", [("ExperimentMaxTrialsReached", "Never"),
                                            ("ExperimentGoalReached", "FromVolume")])
def test_update_of_a_finished_experiment_needs_restartable_state(reason: str, policy: str) -> None:
    old = _finished(reason, policy)
    new = experiment(lambda d: d["spec"].update(resumePolicy=policy, maxTrialCount=10))
    find(validate(new, old=old), "spec.resumePolicy", "LongRunning", "FromVolume")


def test_update_max_trial_count_must_exceed_trials_so_far() -> None:
    old = _finished("ExperimentMaxTrialsReached", "LongRunning", trials=6)
    new = experiment(lambda d: d["spec"].update(resumePolicy="LongRunning", maxTrialCount=6, parallelTrialCount=3))
    find(validate(new, old=old), "spec.maxTrialCount", "greater than status.trials count (6)")


def test_update_may_change_only_the_budget() -> None:
    old = experiment()
    new = experiment(lambda d: d["spec"]["algorithm"].update(algorithmName="tpe"))
    find(validate(new, old=old), "spec.algorithm", "only spec.parallelTrialCount, spec.maxTrialCount")
    running = experiment(lambda d: d["spec"].update(parallelTrialCount=1, maxFailedTrialCount=0))
    assert validate(running, old=old) == []


# -- rule 8: objective (stops validation) ----------------------------------------------------

def test_objective_required_and_validation_stops_there() -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["spec"].pop("objective")
        d["spec"].pop("algorithm")  # would be an error, but upstream stops at the objective
        d["spec"]["maxFailedTrialCount"] = -1  # checked before the objective: still reported

    errs = validate(experiment(mutate))
    assert paths(errs) == ["spec.maxFailedTrialCount", "spec.objective"]


@pytest.mark.parametrize("change, path, message", [
    ({"type": "best"}, "spec.objective.type", "minimize or maximize"),
    ({"objectiveMetricName": ""}, "spec.objective.objectiveMetricName", "must be specified"),
    ({"additionalMetricNames": ["loss", "accuracy"]}, "spec.objective.additionalMetricNames",
     "should not contain spec.objective.objectiveMetricName"),
    ({"additionalMetricNames": ["loss", "loss"]}, "spec.objective.additionalMetricNames[1]", "duplicate metric"),
    ({"goal": float("nan")}, "spec.objective.goal", "finite number"),
])
def test_objective_rules(change: dict[str, Any], path: str, message: str) -> None:
    errs = errors_of(lambda d: d["spec"]["objective"].update(change))
    find(errs, path, message)


def test_objective_goal_must_be_a_number() -> None:
    from katib.api.model import Experiment
    from tests.api.factory import experiment_dict

    with pytest.raises(ValidationError) as info:
        Experiment.from_dict(experiment_dict(lambda d: d["spec"]["objective"].update(goal="high")))
    find(info.value.errors, "spec.objective.goal", "must be a number")


@pytest.mark.parametrize("strategies, path, message", [
    ([{"name": "accuracy", "value": "best"}], "spec.objective.metricStrategies[0].value", "min, max or latest"),
    ([{"name": "acc", "value": "max"}], "spec.objective.metricStrategies[0].name", "use one of accuracy, loss"),
    ([{"name": "loss", "value": "min"}, {"name": "loss", "value": "max"}],
     "spec.objective.metricStrategies[1].name", "duplicate strategy"),
])
def test_metric_strategies(strategies: list[dict[str, str]], path: str, message: str) -> None:
    find(errors_of(lambda d: d["spec"]["objective"].update(metricStrategies=strategies)), path, message)


def test_metric_strategies_valid() -> None:
    strategies = [{"name": "loss", "value": "latest"}, {"name": "accuracy", "value": "max"}]
    assert errors_of(lambda d: d["spec"]["objective"].update(metricStrategies=strategies)) == []


# -- rules 9-11: algorithm, early stopping, resume policy -------------------------------------

def test_algorithm_rules() -> None:
    find(errors_of(lambda d: d["spec"].pop("algorithm")), "spec.algorithm", "must be specified")
    find(errors_of(lambda d: d["spec"]["algorithm"].update(algorithmName="")), "spec.algorithm.algorithmName",
         "must be specified")
    errs = errors_of(lambda d: d["spec"]["algorithm"].update(algorithmName="magic"), known_algorithms=["random", "tpe"])
    find(errs, "spec.algorithm.algorithmName", "unknown algorithm 'magic'", "random, tpe")
    assert errors_of(known_algorithms=["random"]) == []


def test_early_stopping_rules() -> None:
    find(errors_of(lambda d: d["spec"].update(earlyStopping={})), "spec.earlyStopping.algorithmName",
         "must be specified")
    errs = errors_of(lambda d: d["spec"].update(earlyStopping={"algorithmName": "mean"}),
                     known_early_stopping=["medianstop"])
    find(errs, "spec.earlyStopping.algorithmName", "unknown early stopping algorithm 'mean'", "medianstop")
    assert errors_of(lambda d: d["spec"].update(earlyStopping={"algorithmName": "medianstop"}),
                     known_early_stopping=["medianstop"]) == []


@pytest.mark.parametrize("policy", ["Never", "LongRunning", "FromVolume"])
def test_resume_policy_valid(policy: str) -> None:
    assert errors_of(lambda d: d["spec"].update(resumePolicy=policy)) == []


def test_resume_policy_invalid() -> None:
    find(errors_of(lambda d: d["spec"].update(resumePolicy="Always")), "spec.resumePolicy", "invalid ResumePolicyType")


# -- rule 13: parameters xor nasConfig --------------------------------------------------------

def test_parameters_or_nas_config_required() -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["spec"]["parameters"] = []
        d["spec"]["trialTemplate"]["trialParameters"] = []
        d["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"] = ["true"]

    find(errors_of(mutate), "spec", "spec.parameters or spec.nasConfig must be specified")


def test_parameters_and_nas_config_exclusive() -> None:
    nas = {"graphConfig": {"numLayers": 1}, "operations": [{"operationType": "skip_connection"}]}
    find(errors_of(lambda d: d["spec"].update(nasConfig=nas)), "spec", "only one of spec.parameters and spec.nasConfig")


# -- aggregation and the raising/prepare helpers ----------------------------------------------

def test_errors_are_aggregated() -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["metadata"]["name"] = "Bad_Name"
        d["spec"]["parameters"][0]["feasibleSpace"] = {"min": "5", "max": "1"}
        d["spec"]["resumePolicy"] = "Sometimes"

    assert paths(errors_of(mutate)) == ["metadata.name", "spec.resumePolicy", "spec.parameters[0].feasibleSpace.min"]


def test_validate_or_raise_and_prepare() -> None:
    validate_or_raise(experiment())
    with pytest.raises(ValidationError) as info:
        validate_or_raise(experiment(lambda d: d["spec"].update(maxTrialCount=0)))
    assert str(info.value).startswith("spec.maxTrialCount: must be greater than 0")
    exp = prepare(experiment(defaults=False))
    assert exp.spec.parallel_trial_count == 2 and exp.spec.resume_policy == "Never"
