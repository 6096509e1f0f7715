"""Protobuf <-> domain conversions, in both directions, as upstream's controller shapes them."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import grpc
import pytest

from katib.api.model import (
    AlgorithmSetting,
    Condition,
    EarlyStoppingRule,
    EarlyStoppingSpec,
    FeasibleSpace,
    GraphConfig,
    Metric,
    MetricStrategy,
    NasConfig,
    Observation,
    ObjectMeta,
    Operation,
    ParameterAssignment,
    ParameterSpec,
    Trial,
    TrialSpec,
    TrialStatus,
)
from katib.api.observation import MetricLog
from katib.api.space import SearchSpace
from katib.errors import (
    AlreadyExistsError,
    KatibError,
    NotFoundError,
    SearchSpaceExhausted,
    ServiceError,
    SettingsError,
    TemplateError,
    ValidationError,
)
from katib.rpc import api_pb2 as pb
from katib.rpc import converters as c
from katib.rpc.errors import SETTING_KEY, error_from_rpc, status_code
from suggestion.base import Assignment, TrialResult, TrialState
from tests.rpc.doubles import experiment, mixed_parameters

DISTRIBUTIONS = ["uniform", "logUniform", "normal", "logNormal"]


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_experiment_round_trip(distribution: str) -> None:
    exp = experiment("exp", "tpe", mixed_parameters(distribution), {"n_startup_trials": "5"})
    exp.spec.objective.goal = 0.99  # type: ignore[union-attr]
    exp.spec.early_stopping = EarlyStoppingSpec("medianstop", [AlgorithmSetting("min_trials_required", "3")])
    message = c.experiment_to_pb(exp)
    back = c.experiment_from_pb(pb.Experiment.FromString(message.SerializeToString()))
    assert back.name == "exp"
    assert back.spec.parameters == exp.spec.parameters
    assert back.spec.algorithm == exp.spec.algorithm
    assert back.spec.early_stopping == exp.spec.early_stopping
    assert back.spec.objective == exp.spec.objective
    assert (back.spec.max_trial_count, back.spec.parallel_trial_count) == (20, 9)


def test_experiment_to_pb_is_what_the_controller_sends() -> None:
    exp = experiment("exp", "random", max_trial_count=None, parallel_trial_count=None)
    exp.spec.objective.metric_strategies = [MetricStrategy("accuracy", "max")]  # type: ignore[union-attr]
    message = c.experiment_to_pb(exp)
    # counts 0 when unset, no goal when unset, enums mapped, no metric strategies on the wire
    assert message.spec.max_trial_count == 0 and message.spec.parallel_trial_count == 0
    assert not message.spec.objective.HasField("goal")
    assert message.spec.objective.type == pb.MAXIMIZE
    assert not message.spec.HasField("early_stopping") and not message.spec.HasField("nas_config")
    types = [p.parameter_type for p in message.spec.parameter_specs.parameters]
    assert types == [pb.INT, pb.DOUBLE, pb.DOUBLE, pb.CATEGORICAL, pb.DISCRETE]
    assert message.spec.parameter_specs.parameters[0].feasible_space.distribution == pb.UNIFORM
    back = c.experiment_from_pb(message)
    assert back.spec.max_trial_count is None and back.spec.objective.goal is None  # type: ignore[union-attr]


def test_goal_zero_survives() -> None:
    exp = experiment("exp", "random")
    exp.spec.objective.goal = 0.0  # type: ignore[union-attr]
    back = c.experiment_from_pb(c.experiment_to_pb(exp))
    assert back.spec.objective.goal == 0.0  # type: ignore[union-attr]


def test_unspecified_distribution_and_unknown_type_decode() -> None:
    message = pb.Experiment(name="e")
    p = message.spec.parameter_specs.parameters.add(name="x", parameter_type=pb.UNKNOWN_TYPE)
    p.feasible_space.min = "1"
    spec = c.experiment_from_pb(message).spec.parameters[0]
    assert spec.parameter_type == "unknown" and spec.feasible_space.distribution is None
    assert spec.feasible_space.max is None and spec.feasible_space.list is None


def test_nas_config_round_trip() -> None:
    exp = experiment("nas", "enas", parameters=[])
    exp.spec.nas_config = NasConfig(
        GraphConfig(3, [32, 32, 3], [10]),
        [Operation("convolution", [ParameterSpec("filter_size", "categorical", FeasibleSpace(list=["3", "5"]))])],
    )
    back = c.experiment_from_pb(c.experiment_to_pb(exp))
    assert back.spec.nas_config.graph_config == exp.spec.nas_config.graph_config  # type: ignore[union-attr]
    assert back.spec.nas_config.operations[0].operation_type == "convolution"  # type: ignore[union-attr]
    assert back.spec.nas_config.operations[0].parameters[0].feasible_space.list == ["3", "5"]  # type: ignore[union-attr]


def _trial(name: str, condition: str, metrics: list[Metric], start: str = "2024-05-01T10:00:00Z") -> Trial:
    return Trial(
        metadata=ObjectMeta(name=name),
        spec=TrialSpec(parameter_assignments=[
            ParameterAssignment("layers", "3"), ParameterAssignment("lr", "0.01"),
            ParameterAssignment("momentum", "0.6"), ParameterAssignment("activation", "tanh"),
            ParameterAssignment("batch", "32.5"),
        ], labels={"team": "a"}),
        status=TrialStatus(start_time=start, completion_time="2024-05-01T10:05:00Z",
                           conditions=[Condition("Created"), Condition("Running", "False"), Condition(condition)],
                           observation=Observation(metrics)),
    )


def test_trial_to_pb_picks_values_by_metric_strategy() -> None:
    exp = experiment("exp", "random")
    objective = exp.spec.objective
    objective.metric_strategies = [MetricStrategy("accuracy", "max"), MetricStrategy("loss", "latest")]  # type: ignore[union-attr]
    trial = _trial("t1", "Succeeded", [Metric("accuracy", "0.5", "0.9", "0.8"), Metric("loss", "0.1", "0.4", "0.2")])
    message = c.trial_to_pb(trial, objective)
    assert {m.name: m.value for m in message.status.observation.metrics} == {"accuracy": "0.9", "loss": "0.2"}
    assert message.status.condition == pb.TrialStatus.SUCCEEDED
    assert message.status.start_time == "2024-05-01T10:00:00Z"
    assert dict(message.spec.labels) == {"team": "a"}
    assert message.spec.objective.objective_metric_name == "accuracy"
    # max "unavailable" falls back to latest, as upstream
    trial = _trial("t2", "Succeeded", [Metric("accuracy", "unavailable", "unavailable", "0.7")])
    assert c.trial_to_pb(trial, objective).status.observation.metrics[0].value == "0.7"
    # explicit values (e.g. read from the store) win
    assert [m.value for m in c.trial_to_pb(trial, objective, {"accuracy": "0.1"}).status.observation.metrics] == ["0.1"]


@pytest.mark.parametrize("condition, wire", [
    ("Created", pb.TrialStatus.CREATED), ("Running", pb.TrialStatus.RUNNING),
    ("Succeeded", pb.TrialStatus.SUCCEEDED), ("Killed", pb.TrialStatus.KILLED),
    ("Failed", pb.TrialStatus.FAILED), ("EarlyStopped", pb.TrialStatus.EARLYSTOPPED),
    ("MetricsUnavailable", pb.TrialStatus.METRICSUNAVAILABLE),
])
def test_trial_condition_mapping(condition: str, wire: int) -> None:
    assert c.trial_to_pb(_trial("t", condition, [])).status.condition == wire


@pytest.mark.parametrize("wire, state", [
    (pb.TrialStatus.CREATED, TrialState.RUNNING), (pb.TrialStatus.RUNNING, TrialState.RUNNING),
    (pb.TrialStatus.SUCCEEDED, TrialState.SUCCEEDED), (pb.TrialStatus.KILLED, TrialState.KILLED),
    (pb.TrialStatus.FAILED, TrialState.FAILED), (pb.TrialStatus.EARLYSTOPPED, TrialState.EARLY_STOPPED),
    (pb.TrialStatus.METRICSUNAVAILABLE, TrialState.METRICS_UNAVAILABLE),
    (pb.TrialStatus.UNKNOWN, TrialState.RUNNING),
])
def test_trial_state_from_pb(wire: int, state: str) -> None:
    message = pb.Trial(name="t")
    message.status.condition = wire  # type: ignore[assignment]
    assert c.trial_status_from_pb(message, "accuracy") == (state, None)


def test_trial_result_from_pb_is_typed() -> None:
    space = SearchSpace.from_specs(mixed_parameters())
    message = c.trial_to_pb(_trial("t1", "Succeeded", [Metric("accuracy", latest="0.8"), Metric("loss", latest="x")]))
    result = c.trial_result_from_pb(message, space, "accuracy")
    assert result.assignments == {"layers": 3, "lr": 0.01, "momentum": 0.6, "activation": "tanh", "batch": 32.5}
    assert isinstance(result.assignments["layers"], int)
    assert result.state == TrialState.SUCCEEDED and result.value == 0.8 and result.has_value
    assert result.values == {"accuracy": 0.8}
    assert result.order == datetime(2024, 5, 1, 10, tzinfo=timezone.utc).timestamp()
    assert result.labels == {"team": "a"}


def test_trial_order_parses_nanoseconds_and_sorts_unstarted_last() -> None:
    space = SearchSpace.from_specs(mixed_parameters())
    early = c.trial_to_pb(_trial("a", "Running", [], start="2024-05-01T10:00:00.000000001Z"))
    late = c.trial_to_pb(_trial("b", "Running", [], start="2024-05-01T10:00:00.5Z"))
    pending = c.trial_to_pb(_trial("c", "Created", [], start=""))
    orders = [c.trial_result_from_pb(t, space, "accuracy").order for t in (early, late, pending)]
    assert orders[0] < orders[1] < orders[2] == math.inf


def test_bad_assignment_names_the_trial() -> None:
    space = SearchSpace.from_specs(mixed_parameters())
    message = c.trial_to_pb(_trial("t9", "Succeeded", []))
    message.spec.parameter_assignments.assignments[0].value = "three"
    with pytest.raises(ValidationError, match=r"trials\[t9\]\.spec\.parameterAssignments"):
        c.trial_result_from_pb(message, space, "accuracy")


def test_trial_result_round_trip() -> None:
    space = SearchSpace.from_specs(mixed_parameters())
    objective = experiment("e", "random").spec.objective
    result = TrialResult("t", {"layers": 2, "lr": 0.05, "momentum": 0.5, "activation": "relu", "batch": 64},
                         TrialState.EARLY_STOPPED, 0.25, {"loss": 1.5}, labels={"k": "v"})
    back = c.trial_result_from_pb(c.trial_result_to_pb(result, space, objective), space, "accuracy")  # type: ignore[arg-type]
    assert (back.name, back.assignments, back.state, back.value, back.labels) == (
        result.name, result.assignments, result.state, result.value, result.labels)
    assert back.values == {"loss": 1.5, "accuracy": 0.25}


def test_suggestions_round_trip_keeps_discrete_text_and_names() -> None:
    space = SearchSpace.from_specs(mixed_parameters())
    assignments = [
        Assignment({"layers": 4, "lr": 0.1, "momentum": 0.9, "activation": "sigmoid", "batch": 32.5},
                   trial_name="exp-abc", labels={"generation": "2"}),
        Assignment({"layers": 1, "lr": 0.001, "momentum": 0.5, "activation": "relu", "batch": 16}),
    ]
    algorithm = c.merge_settings(experiment("e", "hyperband", settings={"eta": "3"}).spec.algorithm,  # type: ignore[arg-type]
                                 {"eta": "3", "current_s": "2"})
    reply = c.suggestions_to_pb(assignments, space, algorithm)
    wire = {a.name: a.value for a in reply.parameter_assignments[0].assignments}
    assert wire == {"layers": "4", "lr": "0.1", "momentum": "0.9", "activation": "sigmoid", "batch": "32.5"}
    assert reply.parameter_assignments[0].trial_name == "exp-abc"
    assert reply.parameter_assignments[1].trial_name == ""
    back, settings = c.suggestions_from_pb(pb.GetSuggestionsReply.FromString(reply.SerializeToString()), space)
    assert back == assignments
    assert settings == {"eta": "3", "current_s": "2"}
    assert [s.name for s in reply.algorithm.algorithm_settings] == ["eta", "current_s"]


def test_merge_settings_replaces_in_place_and_appends() -> None:
    spec = experiment("e", "x", settings={"a": "1", "b": "2"}).spec.algorithm
    merged = c.merge_settings(spec, {"b": "3", "c": "4"})  # type: ignore[arg-type]
    assert [(s.name, s.value) for s in merged.algorithm_settings] == [("a", "1"), ("b", "3"), ("c", "4")]


@pytest.mark.parametrize("comparison, wire", [("equal", pb.EQUAL), ("less", pb.LESS), ("greater", pb.GREATER)])
def test_early_stopping_rule_round_trip(comparison: str, wire: int) -> None:
    rule = EarlyStoppingRule("accuracy", "0.6", comparison, 4)
    message = c.early_stopping_rule_to_pb(rule)
    assert message.comparison == wire and message.start_step == 4
    assert c.early_stopping_rule_from_pb(message) == rule


def test_observation_log_round_trip_keeps_microseconds() -> None:
    logs = [
        MetricLog("accuracy", "0.5", datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=timezone.utc)),
        MetricLog("accuracy", "0.6", datetime(2024, 5, 1, 10, 0, 0, 123457, tzinfo=timezone.utc)),
        MetricLog("loss", "1.0", datetime(2024, 5, 1, 10, 0, 1, tzinfo=timezone.utc)),
    ]
    message = c.observation_log_to_pb(logs)
    assert [m.time_stamp for m in message.metric_logs] == [
        "2024-05-01T10:00:00.123456Z", "2024-05-01T10:00:00.123457Z", "2024-05-01T10:00:01Z"]
    assert c.observation_log_from_pb(message) == logs


@pytest.mark.parametrize("text, expected", [
    ("2024-05-01T10:00:01Z", datetime(2024, 5, 1, 10, 0, 1, tzinfo=timezone.utc)),  # upstream, seconds
    ("2024-05-01T10:00:01.123456789Z", datetime(2024, 5, 1, 10, 0, 1, 123456, tzinfo=timezone.utc)),  # RFC3339Nano
    ("2024-05-01T12:00:01.5+02:00", datetime(2024, 5, 1, 10, 0, 1, 500000, tzinfo=timezone.utc)),
])
def test_observation_log_parses_upstream_timestamps(text: str, expected: datetime) -> None:
    message = pb.ObservationLog()
    message.metric_logs.add(time_stamp=text, metric=pb.Metric(name="m", value="1"))
    assert c.observation_log_from_pb(message)[0].timestamp == expected


def test_bad_timestamp_names_the_field() -> None:
    message = pb.ObservationLog()
    message.metric_logs.add(time_stamp="yesterday", metric=pb.Metric(name="m", value="1"))
    with pytest.raises(ValidationError, match=r"metricLogs\[0\]\.timeStamp"):
        c.observation_log_from_pb(message)


# --- errors -----------------------------------------------------------------------------

@pytest.mark.parametrize("exc, code", [
    (ValidationError("x"), grpc.StatusCode.INVALID_ARGUMENT),
    (SettingsError("eta", "bad"), grpc.StatusCode.INVALID_ARGUMENT),
    (TemplateError("x"), grpc.StatusCode.INVALID_ARGUMENT),
    (NotFoundError("x"), grpc.StatusCode.NOT_FOUND),
    (AlreadyExistsError("x"), grpc.StatusCode.ALREADY_EXISTS),
    (SearchSpaceExhausted("x"), grpc.StatusCode.OUT_OF_RANGE),
    (ServiceError("x"), grpc.StatusCode.UNAVAILABLE),
    (KatibError("x"), grpc.StatusCode.INTERNAL),
])
def test_status_codes(exc: KatibError, code: grpc.StatusCode) -> None:
    assert status_code(exc) == code


class _FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str, trailing: tuple = ()) -> None:
        self._code, self._details, self._trailing = code, details, trailing

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple:
        return self._trailing


def test_error_from_rpc() -> None:
    err = error_from_rpc(_FakeRpcError(grpc.StatusCode.INVALID_ARGUMENT, "eta: must be > 1", ((SETTING_KEY, "eta"),)))
    assert isinstance(err, SettingsError) and err.setting == "eta" and str(err) == "eta: must be > 1"
    upstream = error_from_rpc(_FakeRpcError(grpc.StatusCode.INVALID_ARGUMENT, "unknown setting foo"))
    assert isinstance(upstream, SettingsError) and str(upstream) == "unknown setting foo"
    assert isinstance(error_from_rpc(_FakeRpcError(grpc.StatusCode.OUT_OF_RANGE, "done")), SearchSpaceExhausted)
    assert isinstance(error_from_rpc(_FakeRpcError(grpc.StatusCode.NOT_FOUND, "x")), NotFoundError)
    unavailable = error_from_rpc(_FakeRpcError(grpc.StatusCode.UNAVAILABLE, "down"))
    assert isinstance(unavailable, ServiceError) and unavailable.retryable
    internal = error_from_rpc(_FakeRpcError(grpc.StatusCode.UNKNOWN, "boom"))
    assert isinstance(internal, ServiceError) and not internal.retryable and "UNKNOWN: boom" in str(internal)
