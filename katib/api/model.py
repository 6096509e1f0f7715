"""The ``kubeflow.org/v1beta1`` Experiment and Trial model as plain Python types.

Field names are snake_case here and camelCase on the wire (see ``_serde``); every field of
upstream's API is present. Values that upstream keeps as strings (feasible space bounds,
setting values, assignments, metric values) stay strings here; ``katib.api.space`` turns a
validated experiment into typed parameters for the algorithms.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, List

from katib.api import _serde

__all__ = [
    "API_VERSION", "KIND_EXPERIMENT", "KIND_TRIAL",
    "ParameterType", "Distribution", "ObjectiveType", "CollectorKind", "ResumePolicy",
    "FeasibleSpace", "ParameterSpec", "MetricStrategy", "ObjectiveSpec", "AlgorithmSetting",
    "AlgorithmSpec", "EarlyStoppingSpec", "EarlyStoppingRule", "TrialParameterSpec",
    "ConfigMapSource", "TrialTemplate", "FileSystemPath", "FilterSpec", "SourceSpec",
    "CollectorSpec", "MetricsCollectorSpec", "GraphConfig", "Operation", "NasConfig",
    "ExperimentSpec", "ObjectMeta", "Condition", "Metric", "Observation",
    "ParameterAssignment", "OptimalTrial", "ExperimentStatus", "Experiment",
    "TrialSpec", "TrialStatus", "Trial", "ExperimentCondition", "TrialCondition",
]

API_VERSION = "kubeflow.org/v1beta1"
KIND_EXPERIMENT = "Experiment"
KIND_TRIAL = "Trial"


class ParameterType:
    DOUBLE = "double"
    INT = "int"
    DISCRETE = "discrete"
    CATEGORICAL = "categorical"
    UNKNOWN = "unknown"
    ALL = (DOUBLE, INT, DISCRETE, CATEGORICAL, UNKNOWN)


class Distribution:
    UNIFORM = "uniform"
    LOG_UNIFORM = "logUniform"
    NORMAL = "normal"
    LOG_NORMAL = "logNormal"
    UNKNOWN = "unknown"
    ALL = (UNIFORM, LOG_UNIFORM, NORMAL, LOG_NORMAL, UNKNOWN)


class ObjectiveType:
    MINIMIZE = "minimize"
    MAXIMIZE = "maximize"
    ALL = (MINIMIZE, MAXIMIZE)


class CollectorKind:
    STDOUT = "StdOut"
    FILE = "File"
    TENSORFLOW_EVENT = "TensorFlowEvent"
    PROMETHEUS = "PrometheusMetric"
    CUSTOM = "Custom"
    PUSH = "Push"
    NONE = "None"
    ALL = (STDOUT, FILE, TENSORFLOW_EVENT, PROMETHEUS, CUSTOM, PUSH, NONE)


class ResumePolicy:
    NEVER = "Never"
    LONG_RUNNING = "LongRunning"
    FROM_VOLUME = "FromVolume"
    ALL = (NEVER, LONG_RUNNING, FROM_VOLUME)


class ExperimentCondition:
    CREATED = "Created"
    RUNNING = "Running"
    RESTARTING = "Restarting"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    # reasons
    REASON_CREATED = "ExperimentCreated"
    REASON_RUNNING = "ExperimentRunning"
    REASON_RESTARTING = "ExperimentRestarting"
    REASON_GOAL_REACHED = "ExperimentGoalReached"
    REASON_MAX_TRIALS_REACHED = "ExperimentMaxTrialsReached"
    REASON_SUGGESTION_END_REACHED = "ExperimentSuggestionEndReached"
    REASON_FAILED = "ExperimentFailed"


class TrialCondition:
    CREATED = "Created"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    KILLED = "Killed"
    FAILED = "Failed"
    METRICS_UNAVAILABLE = "MetricsUnavailable"
    EARLY_STOPPED = "EarlyStopped"
    COMPLETED = (SUCCEEDED, KILLED, FAILED, METRICS_UNAVAILABLE, EARLY_STOPPED)
    REASONS = {
        CREATED: "TrialCreated",
        RUNNING: "TrialRunning",
        SUCCEEDED: "TrialSucceeded",
        KILLED: "TrialKilled",
        FAILED: "TrialFailed",
        METRICS_UNAVAILABLE: "MetricsUnavailable",
        EARLY_STOPPED: "TrialEarlyStopped",
    }


def _f(json: str | None = None, **meta: Any) -> Any:
    """A dataclass field with wire-name metadata and a None default."""
    md = dict(meta)
    if json:
        md["json"] = json
    return field(default=None, metadata=md)


def _lf(json: str | None = None) -> Any:
    md = {"json": json} if json else {}
    return field(default_factory=list, metadata=md)


class _Model:
    """Shared helpers: ``from_dict`` / ``to_dict`` / ``copy``."""

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: str = "", errors: list[Any] | None = None) -> Any:
        return _serde.from_dict(cls, data, path, errors)

    def to_dict(self) -> dict[str, Any]:
        return _serde.to_dict(self)

    def copy(self) -> Any:
        return copy.deepcopy(self)


@dataclass
class FeasibleSpace(_Model):
    max: str | None = _f()
    min: str | None = _f()
    list: List[str] | None = _f()  # noqa: UP006 - 'list' is shadowed by this field
    step: str | None = _f()
    distribution: str | None = _f()


@dataclass
class ParameterSpec(_Model):
    name: str = ""
    parameter_type: str = ""
    feasible_space: FeasibleSpace = field(default_factory=FeasibleSpace)


@dataclass
class MetricStrategy(_Model):
    name: str = ""
    value: str = ""  # min | max | latest


@dataclass
class ObjectiveSpec(_Model):
    type: str | None = _f()
    goal: float | None = _f()
    objective_metric_name: str | None = _f()
    additional_metric_names: list[str] = _lf()
    metric_strategies: list[MetricStrategy] = _lf()

    def strategy_for(self, metric: str) -> str:
        for s in self.metric_strategies:
            if s.name == metric:
                return s.value
        if self.type == ObjectiveType.MINIMIZE:
            return "min"
        if self.type == ObjectiveType.MAXIMIZE:
            return "max"
        return "latest"

    @property
    def metric_names(self) -> list[str]:
        names = [self.objective_metric_name] if self.objective_metric_name else []
        return names + [m for m in self.additional_metric_names if m not in names]


@dataclass
class AlgorithmSetting(_Model):
    name: str = ""
    value: str = ""


@dataclass
class AlgorithmSpec(_Model):
    algorithm_name: str | None = _f()
    algorithm_settings: list[AlgorithmSetting] = _lf()

    @property
    def settings(self) -> dict[str, str]:
        return {s.name: s.value for s in self.algorithm_settings}


@dataclass
class EarlyStoppingSpec(_Model):
    algorithm_name: str | None = _f()
    algorithm_settings: list[AlgorithmSetting] = _lf()

    @property
    def settings(self) -> dict[str, str]:
        return {s.name: s.value for s in self.algorithm_settings}


@dataclass
class EarlyStoppingRule(_Model):
    name: str = ""
    value: str = ""
    comparison: str = ""  # equal | less | greater
    start_step: int | None = _f()


@dataclass
class TrialParameterSpec(_Model):
    name: str = ""
    description: str | None = _f()
    reference: str = ""


@dataclass
class ConfigMapSource(_Model):
    config_map_name: str | None = _f()
    config_map_namespace: str | None = _f()
    template_path: str | None = _f()


@dataclass
class TrialTemplate(_Model):
    retain: bool | None = _f()
    trial_spec: dict[str, Any] | None = _f()
    config_map: ConfigMapSource | None = _f()
    trial_parameters: list[TrialParameterSpec] | None = _f(keep_empty=True)
    primary_pod_labels: dict[str, str] | None = _f()
    primary_container_name: str | None = _f()
    success_condition: str | None = _f()
    failure_condition: str | None = _f()


@dataclass
class FileSystemPath(_Model):
    path: str | None = _f()
    kind: str | None = _f()  # File | Directory
    format: str | None = _f()  # TEXT | JSON


@dataclass
class FilterSpec(_Model):
    metrics_format: list[str] = _lf()


@dataclass
class SourceSpec(_Model):
    http_get: dict[str, Any] | None = _f()
    file_system_path: FileSystemPath | None = _f()
    filter: FilterSpec | None = _f()


@dataclass
class CollectorSpec(_Model):
    kind: str | None = _f()
    custom_collector: dict[str, Any] | None = _f()


@dataclass
class MetricsCollectorSpec(_Model):
    source: SourceSpec | None = _f()
    collector: CollectorSpec | None = _f()

    @property
    def kind(self) -> str:
        return (self.collector.kind if self.collector else None) or CollectorKind.STDOUT


@dataclass
class GraphConfig(_Model):
    num_layers: int | None = _f()
    input_sizes: list[int] = _lf()
    output_sizes: list[int] = _lf()


@dataclass
class Operation(_Model):
    operation_type: str | None = _f()
    parameters: list[ParameterSpec] = _lf()


@dataclass
class NasConfig(_Model):
    graph_config: GraphConfig | None = _f()
    operations: list[Operation] = _lf()


@dataclass
class ExperimentSpec(_Model):
    parameters: list[ParameterSpec] = _lf()
    objective: ObjectiveSpec | None = _f()
    algorithm: AlgorithmSpec | None = _f()
    early_stopping: EarlyStoppingSpec | None = _f()
    trial_template: TrialTemplate | None = _f()
    parallel_trial_count: int | None = _f()
    max_trial_count: int | None = _f()
    max_failed_trial_count: int | None = _f()
    metrics_collector_spec: MetricsCollectorSpec | None = _f()
    nas_config: NasConfig | None = _f()
    resume_policy: str | None = _f()


@dataclass
class ObjectMeta(_Model):
    """The parts of Kubernetes ObjectMeta we read; anything else is kept as-is in ``extra``."""

    name: str | None = _f()
    generate_name: str | None = _f()
    namespace: str | None = _f()
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    creation_timestamp: str | None = _f()
    uid: str | None = _f()
    resource_version: str | None = _f()
    extra: dict[str, Any] = field(default_factory=dict, metadata={"extra": True})


@dataclass
class Condition(_Model):
    type: str = ""
    status: str = "True"
    reason: str | None = _f()
    message: str | None = _f()
    last_update_time: str | None = _f()
    last_transition_time: str | None = _f()


@dataclass
class Metric(_Model):
    name: str = ""
    min: str | None = _f()
    max: str | None = _f()
    latest: str | None = _f()


@dataclass
class Observation(_Model):
    metrics: list[Metric] = _lf()

    def metric(self, name: str) -> Metric | None:
        for m in self.metrics:
            if m.name == name:
                return m
        return None


@dataclass
class ParameterAssignment(_Model):
    name: str = ""
    value: str = ""


@dataclass
class OptimalTrial(_Model):
    best_trial_name: str | None = _f()
    parameter_assignments: list[ParameterAssignment] = _lf()
    observation: Observation | None = _f()


@dataclass
class ExperimentStatus(_Model):
    start_time: str | None = _f()
    completion_time: str | None = _f()
    last_reconcile_time: str | None = _f()
    conditions: list[Condition] = _lf()
    current_optimal_trial: OptimalTrial | None = _f()
    running_trial_list: list[str] = _lf()
    pending_trial_list: list[str] = _lf()
    failed_trial_list: list[str] = _lf()
    succeeded_trial_list: list[str] = _lf()
    killed_trial_list: list[str] = _lf()
    early_stopped_trial_list: list[str] = _lf()
    metrics_unavailable_trial_list: list[str] = _lf()
    trials: int | None = _f()
    trials_succeeded: int | None = _f()
    trials_failed: int | None = _f()
    trials_killed: int | None = _f()
    trials_pending: int | None = _f()
    trials_running: int | None = _f()
    trials_early_stopped: int | None = _f()
    trial_metrics_unavailable: int | None = _f()

    def condition(self, type_: str) -> Condition | None:
        for c in self.conditions:
            if c.type == type_:
                return c
        return None

    def is_true(self, type_: str) -> bool:
        c = self.condition(type_)
        return c is not None and c.status == "True"


@dataclass
class Experiment(_Model):
    api_version: str = API_VERSION
    kind: str = KIND_EXPERIMENT
    metadata: ObjectMeta = field(default_factory=ObjectMeta)
    spec: ExperimentSpec = field(default_factory=ExperimentSpec)
    status: ExperimentStatus | None = _f()

    @property
    def name(self) -> str:
        return self.metadata.name or ""


@dataclass
class TrialSpec(_Model):
    objective: ObjectiveSpec | None = _f()
    parameter_assignments: list[ParameterAssignment] = _lf()
    early_stopping_rules: list[EarlyStoppingRule] = _lf()
    run_spec: dict[str, Any] | None = _f()
    retain_run: bool | None = _f()
    metrics_collector: MetricsCollectorSpec | None = _f()
    primary_pod_labels: dict[str, str] | None = _f()
    primary_container_name: str | None = _f()
    success_condition: str | None = _f()
    failure_condition: str | None = _f()
    labels: dict[str, str] | None = _f()

    @property
    def assignments(self) -> dict[str, str]:
        return {a.name: a.value for a in self.parameter_assignments}


@dataclass
class TrialStatus(_Model):
    start_time: str | None = _f()
    completion_time: str | None = _f()
    last_reconcile_time: str | None = _f()
    conditions: list[Condition] = _lf()
    observation: Observation | None = _f()

    @property
    def state(self) -> str:
        """The trial's state in upstream's classification order (Killed, Failed, Succeeded,
        EarlyStopped, Running, MetricsUnavailable, else Pending)."""
        true = {c.type for c in self.conditions if c.status == "True"}
        for t in (TrialCondition.KILLED, TrialCondition.FAILED, TrialCondition.SUCCEEDED,
                  TrialCondition.EARLY_STOPPED, TrialCondition.RUNNING,
                  TrialCondition.METRICS_UNAVAILABLE):
            if t in true:
                return t
        return "Pending"


@dataclass
class Trial(_Model):
    api_version: str = API_VERSION
    kind: str = KIND_TRIAL
    metadata: ObjectMeta = field(default_factory=ObjectMeta)
    spec: TrialSpec = field(default_factory=TrialSpec)
    status: TrialStatus = field(default_factory=TrialStatus)

    @property
    def name(self) -> str:
        return self.metadata.name or ""
