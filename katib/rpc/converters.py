"""Protobuf <-> domain objects: the only module that knows both.

Direction and shape follow what upstream's controller sends (``suggestionclient.
ConvertExperiment`` / ``ConvertTrials``): the objective travels without metric strategies, a
goal only when set, unset counts as 0; each trial carries one value per metric, already
chosen by the metric strategy; times are RFC3339 text.

Trial decoding is split in two so a service can decide cheaply whether a trial is worth
decoding at all: ``trial_status_from_pb`` reads only the condition and the objective value,
``trial_result_from_pb`` parses the assignments too.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterable, Mapping, Sequence

from katib.api.model import (
    AlgorithmSetting,
    AlgorithmSpec,
    Distribution,
    EarlyStoppingRule,
    EarlyStoppingSpec,
    Experiment,
    ExperimentSpec,
    FeasibleSpace,
    GraphConfig,
    NasConfig,
    ObjectiveSpec,
    ObjectiveType,
    ObjectMeta,
    Operation,
    ParameterSpec,
    ParameterType,
    Trial,
)
from katib.api.observation import MetricLog
from katib.api.space import SearchSpace
from katib.errors import FieldError, ValidationError
from katib.metrics.parsers import parse_rfc3339
from katib.metrics.strategies import metric_value
from katib.rpc import api_pb2 as pb
from suggestion.base import Assignment, TrialResult, TrialState
from suggestion.inprocess import metric_number, start_order

__all__ = [
    "experiment_to_pb", "experiment_from_pb", "algorithm_to_pb", "merge_settings",
    "early_stopping_spec_from_pb",
    "trial_to_pb", "trial_result_to_pb", "trial_status_from_pb", "trial_result_from_pb",
    "get_suggestions_request", "validate_request", "validate_reply", "suggestions_to_pb", "suggestions_from_pb",
    "early_stopping_rule_to_pb", "early_stopping_rule_from_pb",
    "observation_log_to_pb", "observation_log_from_pb", "format_time",
]

_PARAMETER_TYPES = {
    ParameterType.DOUBLE: pb.DOUBLE,
    ParameterType.INT: pb.INT,
    ParameterType.DISCRETE: pb.DISCRETE,
    ParameterType.CATEGORICAL: pb.CATEGORICAL,
}
_PARAMETER_TYPES_BACK = {v: k for k, v in _PARAMETER_TYPES.items()}

_DISTRIBUTIONS = {
    Distribution.UNIFORM: pb.UNIFORM,
    Distribution.LOG_UNIFORM: pb.LOG_UNIFORM,
    Distribution.NORMAL: pb.NORMAL,
    Distribution.LOG_NORMAL: pb.LOG_NORMAL,
}
_DISTRIBUTIONS_BACK = {v: k for k, v in _DISTRIBUTIONS.items()}

_OBJECTIVE_TYPES = {ObjectiveType.MINIMIZE: pb.MINIMIZE, ObjectiveType.MAXIMIZE: pb.MAXIMIZE}
_OBJECTIVE_TYPES_BACK = {v: k for k, v in _OBJECTIVE_TYPES.items()}

_Condition = pb.TrialStatus.TrialConditionType
# Domain trial state (``TrialStatus.state``, plus TrialState for results) -> wire condition.
_CONDITIONS = {
    "Pending": _Condition.CREATED,
    TrialState.RUNNING: _Condition.RUNNING,
    TrialState.SUCCEEDED: _Condition.SUCCEEDED,
    TrialState.KILLED: _Condition.KILLED,
    TrialState.FAILED: _Condition.FAILED,
    TrialState.METRICS_UNAVAILABLE: _Condition.METRICSUNAVAILABLE,
    TrialState.EARLY_STOPPED: _Condition.EARLYSTOPPED,
}
_STATES = {
    _Condition.CREATED: TrialState.RUNNING,
    _Condition.RUNNING: TrialState.RUNNING,
    _Condition.SUCCEEDED: TrialState.SUCCEEDED,
    _Condition.KILLED: TrialState.KILLED,
    _Condition.FAILED: TrialState.FAILED,
    _Condition.METRICSUNAVAILABLE: TrialState.METRICS_UNAVAILABLE,
    _Condition.EARLYSTOPPED: TrialState.EARLY_STOPPED,
    # Upstream sends UNKNOWN when the last condition is none of the above. Reading it as
    # "still pending" keeps its point reserved; a later request carries the real state.
    _Condition.UNKNOWN: TrialState.RUNNING,
}

_COMPARISONS = {"equal": pb.EQUAL, "less": pb.LESS, "greater": pb.GREATER}
_COMPARISONS_BACK = {v: k for k, v in _COMPARISONS.items()}


# --- experiment -------------------------------------------------------------------------

def _parameter_to_pb(spec: ParameterSpec, out: pb.ParameterSpec) -> None:
    out.name = spec.name
    out.parameter_type = _PARAMETER_TYPES.get(spec.parameter_type, pb.UNKNOWN_TYPE)
    fs = spec.feasible_space
    out.feasible_space.max = fs.max or ""
    out.feasible_space.min = fs.min or ""
    out.feasible_space.list.extend(fs.list or [])
    out.feasible_space.step = fs.step or ""
    out.feasible_space.distribution = _DISTRIBUTIONS.get(fs.distribution or "", pb.DISTRIBUTION_UNSPECIFIED)


def _parameter_from_pb(spec: pb.ParameterSpec) -> ParameterSpec:
    fs = spec.feasible_space
    return ParameterSpec(
        name=spec.name,
        parameter_type=_PARAMETER_TYPES_BACK.get(spec.parameter_type, ParameterType.UNKNOWN),
        feasible_space=FeasibleSpace(
            max=fs.max or None,
            min=fs.min or None,
            list=list(fs.list) or None,
            step=fs.step or None,
            distribution=_DISTRIBUTIONS_BACK.get(fs.distribution),
        ),
    )


def _objective_to_pb(objective: ObjectiveSpec, out: pb.ObjectiveSpec) -> None:
    # Metric strategies stay behind: the trials already carry the chosen values.
    out.type = _OBJECTIVE_TYPES.get(objective.type or "", pb.UNKNOWN)
    if objective.goal is not None:
        out.goal = objective.goal
    out.objective_metric_name = objective.objective_metric_name or ""
    out.additional_metric_names.extend(objective.additional_metric_names)


def _objective_from_pb(objective: pb.ObjectiveSpec) -> ObjectiveSpec:
    return ObjectiveSpec(
        type=_OBJECTIVE_TYPES_BACK.get(objective.type),
        goal=objective.goal if objective.HasField("goal") else None,
        objective_metric_name=objective.objective_metric_name or None,
        additional_metric_names=list(objective.additional_metric_names),
    )


def algorithm_to_pb(algorithm: AlgorithmSpec, out: pb.AlgorithmSpec | None = None) -> pb.AlgorithmSpec:
    out = pb.AlgorithmSpec() if out is None else out
    out.algorithm_name = algorithm.algorithm_name or ""
    for s in algorithm.algorithm_settings:
        out.algorithm_settings.add(name=s.name, value=s.value)
    return out


def _algorithm_from_pb(algorithm: pb.AlgorithmSpec) -> AlgorithmSpec:
    return AlgorithmSpec(
        algorithm_name=algorithm.algorithm_name or None,
        algorithm_settings=[AlgorithmSetting(s.name, s.value) for s in algorithm.algorithm_settings],
    )


def _early_stopping_to_pb(spec: EarlyStoppingSpec, out: pb.EarlyStoppingSpec) -> None:
    out.algorithm_name = spec.algorithm_name or ""
    for s in spec.algorithm_settings:
        out.algorithm_settings.add(name=s.name, value=s.value)


def early_stopping_spec_from_pb(spec: pb.EarlyStoppingSpec) -> EarlyStoppingSpec:
    return EarlyStoppingSpec(spec.algorithm_name or None,
                             [AlgorithmSetting(x.name, x.value) for x in spec.algorithm_settings])


def merge_settings(algorithm: AlgorithmSpec, overrides: Mapping[str, str]) -> AlgorithmSpec:
    """``algorithm`` with ``overrides`` merged over its settings the way upstream's
    controller merges Suggestion.status.algorithmSettings: same name replaced in place,
    new names appended."""
    merged = [AlgorithmSetting(s.name, overrides.get(s.name, s.value)) for s in algorithm.algorithm_settings]
    present = {s.name for s in merged}
    merged += [AlgorithmSetting(k, v) for k, v in overrides.items() if k not in present]
    return AlgorithmSpec(algorithm.algorithm_name, merged)


def _nas_to_pb(nas: NasConfig, out: pb.NasConfig) -> None:
    if nas.graph_config is not None:
        out.graph_config.num_layers = nas.graph_config.num_layers or 0
        out.graph_config.input_sizes.extend(nas.graph_config.input_sizes)
        out.graph_config.output_sizes.extend(nas.graph_config.output_sizes)
    for op in nas.operations:
        op_pb = out.operations.operation.add(operation_type=op.operation_type or "")
        for p in op.parameters:
            _parameter_to_pb(p, op_pb.parameter_specs.parameters.add())


def _nas_from_pb(nas: pb.NasConfig) -> NasConfig:
    graph = None
    if nas.HasField("graph_config"):
        g = nas.graph_config
        graph = GraphConfig(g.num_layers or None, list(g.input_sizes), list(g.output_sizes))
    operations = [
        Operation(op.operation_type or None, [_parameter_from_pb(p) for p in op.parameter_specs.parameters])
        for op in nas.operations.operation
    ]
    return NasConfig(graph, operations)


def experiment_to_pb(experiment: Experiment, out: pb.Experiment | None = None) -> pb.Experiment:
    """The experiment as upstream's controller sends it to a suggestion service (trial
    template, metrics collector, resume policy and maxFailedTrialCount do not travel)."""
    out = pb.Experiment() if out is None else out
    out.name = experiment.name
    spec = experiment.spec
    for p in spec.parameters:
        _parameter_to_pb(p, out.spec.parameter_specs.parameters.add())
    if spec.objective is not None:
        _objective_to_pb(spec.objective, out.spec.objective)
    if spec.algorithm is not None:
        algorithm_to_pb(spec.algorithm, out.spec.algorithm)
    if spec.early_stopping is not None:
        _early_stopping_to_pb(spec.early_stopping, out.spec.early_stopping)
    out.spec.parallel_trial_count = spec.parallel_trial_count or 0
    out.spec.max_trial_count = spec.max_trial_count or 0
    if spec.nas_config is not None:
        _nas_to_pb(spec.nas_config, out.spec.nas_config)
    return out


def experiment_from_pb(experiment: pb.Experiment) -> Experiment:
    """A domain experiment holding what the message carries (0 counts read as unset)."""
    s = experiment.spec
    spec = ExperimentSpec(
        parameters=[_parameter_from_pb(p) for p in s.parameter_specs.parameters],
        objective=_objective_from_pb(s.objective) if s.HasField("objective") else None,
        algorithm=_algorithm_from_pb(s.algorithm) if s.HasField("algorithm") else None,
        early_stopping=early_stopping_spec_from_pb(s.early_stopping) if s.HasField("early_stopping") else None,
        parallel_trial_count=s.parallel_trial_count or None,
        max_trial_count=s.max_trial_count or None,
        nas_config=_nas_from_pb(s.nas_config) if s.HasField("nas_config") else None,
    )
    return Experiment(metadata=ObjectMeta(name=experiment.name), spec=spec)


def validate_request(experiment: Experiment) -> pb.ValidateAlgorithmSettingsRequest:
    request = pb.ValidateAlgorithmSettingsRequest()
    experiment_to_pb(experiment, request.experiment)
    return request


def validate_reply() -> pb.ValidateAlgorithmSettingsReply:
    """The (empty) success reply; failures are status codes."""
    return pb.ValidateAlgorithmSettingsReply()


# --- trials -----------------------------------------------------------------------------

def trial_to_pb(
    trial: Trial,
    objective: ObjectiveSpec | None = None,
    metric_values: Mapping[str, str] | None = None,
    out: pb.Trial | None = None,
) -> pb.Trial:
    """A domain trial as upstream's controller sends it. Each metric's value is taken from
    ``metric_values`` when given (e.g. read from the store), else from the trial's
    observation by the objective's metric strategy (min/max/latest)."""
    out = pb.Trial() if out is None else out
    out.name = trial.name
    objective = objective or trial.spec.objective
    if objective is not None:
        _objective_to_pb(objective, out.spec.objective)
    for a in trial.spec.parameter_assignments:
        out.spec.parameter_assignments.assignments.add(name=a.name, value=a.value)
    out.spec.labels.update(trial.spec.labels or {})
    status = trial.status
    out.status.start_time = status.start_time or ""
    out.status.completion_time = status.completion_time or ""
    out.status.condition = _CONDITIONS.get(status.state, _Condition.UNKNOWN)
    if metric_values is None:
        metric_values = {}
        for m in status.observation.metrics if status.observation else []:
            value = metric_value(status.observation, m.name, objective.strategy_for(m.name) if objective else "latest")
            if value is not None:
                metric_values[m.name] = value
    for name, value in metric_values.items():
        out.status.observation.metrics.add(name=name, value=value)
    return out


def trial_result_to_pb(result: TrialResult, space: SearchSpace, objective: ObjectiveSpec,
                       out: pb.Trial | None = None) -> pb.Trial:
    """What an algorithm was told, back on the wire (for a remote suggestion service)."""
    out = pb.Trial() if out is None else out
    out.name = result.name
    _objective_to_pb(objective, out.spec.objective)
    for name, value in space.format(dict(result.assignments)).items():
        out.spec.parameter_assignments.assignments.add(name=name, value=value)
    out.spec.labels.update(result.labels)
    out.status.condition = _CONDITIONS.get(result.state, _Condition.UNKNOWN)
    values = dict(result.values)
    if result.value is not None and objective.objective_metric_name:
        values[objective.objective_metric_name] = result.value
    for name, number in values.items():
        out.status.observation.metrics.add(name=name, value=repr(float(number)))
    return out


def trial_status_from_pb(trial: pb.Trial, objective_metric_name: str) -> tuple[str, float | None]:
    """The trial's state and objective value, reading nothing else (cheap)."""
    value = None
    for m in trial.status.observation.metrics:
        if m.name == objective_metric_name:
            value = metric_number(m.value)  # the last one wins, as upstream
    return _STATES.get(trial.status.condition, TrialState.RUNNING), value


def trial_result_from_pb(trial: pb.Trial, space: SearchSpace, objective_metric_name: str,
                         path: str = "trials") -> TrialResult:
    """A fully decoded trial: typed assignments, state, every numeric metric, start order.
    Raises ValidationError naming the trial when an assignment does not parse."""
    state, value = trial_status_from_pb(trial, objective_metric_name)
    raw = {a.name: a.value for a in trial.spec.parameter_assignments.assignments}
    try:
        assignments = space.parse(raw)
    except ValueError as exc:
        raise ValidationError([FieldError(f"{path}[{trial.name}].spec.parameterAssignments",
                                          f"does not match the search space: {exc}")]) from exc
    values = {}
    for m in trial.status.observation.metrics:
        number = metric_number(m.value)
        if number is not None:
            values[m.name] = number
    return TrialResult(
        name=trial.name,
        assignments=assignments,
        state=state,
        value=value,
        values=values,
        order=start_order(trial.status.start_time),
        labels=dict(trial.spec.labels),
    )


def get_suggestions_request(experiment: Experiment, trials: Iterable[Trial | TrialResult],
                            space: SearchSpace, n: int, total: int) -> pb.GetSuggestionsRequest:
    request = pb.GetSuggestionsRequest(current_request_number=n, total_request_number=total)
    experiment_to_pb(experiment, request.experiment)
    objective = experiment.spec.objective or ObjectiveSpec()
    for t in trials:
        if isinstance(t, TrialResult):
            trial_result_to_pb(t, space, objective, request.trials.add())
        else:
            trial_to_pb(t, objective, out=request.trials.add())
    return request


# --- suggestions ------------------------------------------------------------------------

def suggestions_to_pb(assignments: Sequence[Assignment], space: SearchSpace,
                      algorithm: AlgorithmSpec | None = None) -> pb.GetSuggestionsReply:
    reply = pb.GetSuggestionsReply()
    for a in assignments:
        item = reply.parameter_assignments.add(trial_name=a.trial_name or "")
        for name, value in space.format(dict(a.values)).items():
            item.assignments.add(name=name, value=value)
        item.labels.update(a.labels)
    if algorithm is not None:
        algorithm_to_pb(algorithm, reply.algorithm)
    return reply


def suggestions_from_pb(reply: pb.GetSuggestionsReply, space: SearchSpace) -> tuple[list[Assignment], dict[str, str]]:
    """The typed assignments of a reply and the algorithm settings it hands back."""
    assignments = []
    for i, item in enumerate(reply.parameter_assignments):
        raw = {a.name: a.value for a in item.assignments}
        try:
            values = space.parse(raw)
        except ValueError as exc:
            raise ValidationError([FieldError(f"parameterAssignments[{i}]",
                                              f"does not match the search space: {exc}")]) from exc
        assignments.append(Assignment(values, item.trial_name or None, dict(item.labels)))
    settings = {s.name: s.value for s in reply.algorithm.algorithm_settings}
    return assignments, settings


# --- early stopping rules and observation logs ------------------------------------------

def early_stopping_rule_to_pb(rule: EarlyStoppingRule, out: pb.EarlyStoppingRule | None = None) -> pb.EarlyStoppingRule:
    out = pb.EarlyStoppingRule() if out is None else out
    out.name = rule.name
    out.value = rule.value
    out.comparison = _COMPARISONS.get(rule.comparison, pb.UNKNOWN_COMPARISON)
    out.start_step = rule.start_step or 0
    return out


def early_stopping_rule_from_pb(rule: pb.EarlyStoppingRule) -> EarlyStoppingRule:
    return EarlyStoppingRule(
        name=rule.name,
        value=rule.value,
        comparison=_COMPARISONS_BACK.get(rule.comparison, ""),
        start_step=rule.start_step or None,
    )


def format_time(stamp: datetime) -> str:
    """RFC3339 in UTC with as many fraction digits as needed, like Go's RFC3339Nano (which
    trims trailing zeros): sub-second order survives the wire, and upstream parses it."""
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    stamp = stamp.astimezone(timezone.utc)
    # Not strftime: glibc writes year 1 (upstream's zero time) as "1", which is not RFC3339.
    text = (f"{stamp.year:04d}-{stamp.month:02d}-{stamp.day:02d}"
            f"T{stamp.hour:02d}:{stamp.minute:02d}:{stamp.second:02d}")
    if stamp.microsecond:
        text += "." + f"{stamp.microsecond:06d}".rstrip("0")
    return text + "Z"


def observation_log_to_pb(logs: Iterable[MetricLog], out: pb.ObservationLog | None = None) -> pb.ObservationLog:
    """Metric logs with RFC3339 timestamps of microsecond precision (the wire has no step)."""
    out = pb.ObservationLog() if out is None else out
    for log in logs:
        item = out.metric_logs.add(time_stamp=format_time(log.timestamp))
        item.metric.name = log.metric_name
        item.metric.value = log.value
    return out


def observation_log_from_pb(log: pb.ObservationLog) -> list[MetricLog]:
    """Metric logs from the wire; accepts RFC3339 of any precision (upstream writes whole
    seconds, some collectors RFC3339Nano). Raises ValidationError naming a bad timestamp."""
    out = []
    for i, item in enumerate(log.metric_logs):
        stamp = parse_rfc3339(item.time_stamp)
        if stamp is None:
            raise ValidationError([FieldError(
                f"observationLog.metricLogs[{i}].timeStamp",
                f"{item.time_stamp!r} is not an RFC3339 timestamp (e.g. 2006-01-02T15:04:05.123Z)")])
        out.append(MetricLog(item.metric.name, item.metric.value, stamp))
    return out


# --- early-stopping service glue ---------------------------------------------------------
# Added with earlystop/service.py (which may not import the generated modules): the
# EarlyStopping messages it reads and builds, its registration, and the DBManager client
# stub it reads completed trials' logs with.

from katib.rpc import api_pb2_grpc as _pb_grpc  # noqa: E402 - kept with its section

EARLY_STOPPING_SERVICE: str = pb.DESCRIPTOR.services_by_name["EarlyStopping"].full_name


def early_stopping_rules_reply(rules: Iterable[EarlyStoppingRule]) -> pb.GetEarlyStoppingRulesReply:
    reply = pb.GetEarlyStoppingRulesReply()
    for rule in rules:
        early_stopping_rule_to_pb(rule, reply.early_stopping_rules.add())
    return reply


def validate_early_stopping_settings_reply() -> pb.ValidateEarlyStoppingSettingsReply:
    return pb.ValidateEarlyStoppingSettingsReply()


def set_trial_status_reply() -> pb.SetTrialStatusReply:
    return pb.SetTrialStatusReply()


# Requests of the early-stopping client (katib/rpc/earlystopping_client.py).

def validate_early_stopping_settings_request(spec: EarlyStoppingSpec) -> pb.ValidateEarlyStoppingSettingsRequest:
    request = pb.ValidateEarlyStoppingSettingsRequest()
    _early_stopping_to_pb(spec, request.early_stopping)
    return request


def get_early_stopping_rules_request(experiment: Experiment, trials: Iterable[Trial],
                                     db_manager_address: str) -> pb.GetEarlyStoppingRulesRequest:
    """As upstream's controller sends it (§5.3): every trial except MetricsUnavailable ones
    and EarlyStopped ones without an observation yet."""
    request = pb.GetEarlyStoppingRulesRequest(db_manager_address=db_manager_address)
    experiment_to_pb(experiment, request.experiment)
    for trial in trials:
        state = trial.status.state
        if state == "MetricsUnavailable":
            continue
        if state == "EarlyStopped" and not (trial.status.observation and trial.status.observation.metrics):
            continue
        trial_to_pb(trial, experiment.spec.objective, out=request.trials.add())
    return request


def early_stopping_rules_from_pb(reply: pb.GetEarlyStoppingRulesReply) -> list[EarlyStoppingRule]:
    return [early_stopping_rule_from_pb(r) for r in reply.early_stopping_rules]


def set_trial_status_request(trial_name: str) -> pb.SetTrialStatusRequest:
    return pb.SetTrialStatusRequest(trial_name=trial_name)


def get_observation_log_request(trial_name: str, metric_name: str = "") -> pb.GetObservationLogRequest:
    return pb.GetObservationLogRequest(trial_name=trial_name, metric_name=metric_name)


def add_early_stopping_servicer(server: object, servicer: object) -> None:
    _pb_grpc.add_EarlyStoppingServicer_to_server(servicer, server)


def db_manager_stub(channel: object) -> _pb_grpc.DBManagerStub:
    return _pb_grpc.DBManagerStub(channel)


# --- DB manager glue ---------------------------------------------------------------------
# Added with katib/store/dbmanager.py (which may not import the generated modules): the
# DBManager messages it reads and builds, and its registration.

DB_MANAGER_SERVICE: str = pb.DESCRIPTOR.services_by_name["DBManager"].full_name


def add_db_manager_servicer(server: object, servicer: object) -> None:
    _pb_grpc.add_DBManagerServicer_to_server(servicer, server)


def report_request_logs(request: pb.ReportObservationLogRequest) -> list[MetricLog]:
    """The rows of a ReportObservationLog request. Rows with an empty timestamp are skipped,
    as upstream's db-manager skips them; other bad timestamps raise ValidationError."""
    log = request.observation_log
    if any(not item.time_stamp for item in log.metric_logs):
        log = pb.ObservationLog(metric_logs=[m for m in log.metric_logs if m.time_stamp])
    return observation_log_from_pb(log)


def report_observation_log_request(trial_name: str, logs: Iterable[MetricLog]) -> pb.ReportObservationLogRequest:
    request = pb.ReportObservationLogRequest(trial_name=trial_name)
    observation_log_to_pb(logs, request.observation_log)
    return request


def report_observation_log_reply() -> pb.ReportObservationLogReply:
    return pb.ReportObservationLogReply()


def get_observation_log_reply(logs: Iterable[MetricLog]) -> pb.GetObservationLogReply:
    reply = pb.GetObservationLogReply()
    observation_log_to_pb(logs, reply.observation_log)
    return reply


def delete_observation_log_request(trial_name: str) -> pb.DeleteObservationLogRequest:
    return pb.DeleteObservationLogRequest(trial_name=trial_name)


def delete_observation_log_reply() -> pb.DeleteObservationLogReply:
    return pb.DeleteObservationLogReply()
