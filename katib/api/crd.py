"""The ``kubeflow.org/v1beta1`` CustomResourceDefinitions, generated from ``katib.api.model``.

Upstream's CRDs are schemaless (``x-kubernetes-preserve-unknown-fields`` on the whole
object), so the API server accepts any shape and only the webhook finds mistakes. Ours carry
structural OpenAPI schemas derived from the dataclasses by introspection, so the API server
itself refuses type errors, unknown enum values and missing required fields with a 422
naming the field, ``kubectl explain experiment.spec`` documents every field, and unknown
fields are pruned (kubectl's own schema validation reports them first). Semantic checks
(min below max, template placeholders, ...) stay in ``katib.api.validation``; the
controller reports them as a ``Failed`` condition.

How the model maps (see ``_schema_for``):

- ``str``/``int``/``float``/``bool`` -> string/integer (int32, as upstream)/number/boolean;
  fields named ``*_time`` are RFC 3339 date-times.
- dataclasses -> objects; ``list[X]`` -> arrays; ``dict[str, str]`` -> string maps;
  ``dict[str, Any]`` (trialSpec, runSpec, customCollector, httpGet) -> free-form objects,
  the only places that keep unknown fields.
- a field is required when its type is not optional (``name: str = ""``), plus the
  optional ones upstream's webhook insists on (``_REQUIRED``); lists never are.
- the tables below add what a Python type cannot say: closed enums, list-map keys and
  sets (as upstream's ``+listType`` markers), bounds upstream checks, and descriptions.

The schemas stick to what Kubernetes 1.20 understands (no CEL ``x-kubernetes-validations``).
Regenerate the checked-in copy with ``python -m katib.api.crd > manifests/base/crds.yaml``;
a test fails when it is stale.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Union

import yaml

from katib.api import model as m
from katib.api._serde import wire_name
from katib.api.model import _f, _lf, _Model

__all__ = [
    "GROUP", "VERSION", "Suggestion", "SuggestionSpec", "SuggestionStatus", "TrialAssignment",
    "crds", "crd", "openapi_schema", "render", "main",
]

GROUP = "kubeflow.org"
VERSION = "v1beta1"
KIND_SUGGESTION = "Suggestion"


# ---- Suggestion: only its schema lives here ---------------------------------------------

@dataclass
class TrialAssignment(_Model):
    name: str = ""
    parameter_assignments: list[m.ParameterAssignment] = _lf()
    early_stopping_rules: list[m.EarlyStoppingRule] = _lf()
    labels: dict[str, str] | None = _f()


@dataclass
class SuggestionSpec(_Model):
    algorithm: m.AlgorithmSpec | None = _f()
    early_stopping: m.EarlyStoppingSpec | None = _f()
    requests: int | None = _f()
    resume_policy: str | None = _f()


@dataclass
class SuggestionStatus(_Model):
    algorithm_settings: list[m.AlgorithmSetting] = _lf()
    suggestion_count: int | None = _f()
    suggestions: list[TrialAssignment] = _lf()
    start_time: str | None = _f()
    completion_time: str | None = _f()
    last_reconcile_time: str | None = _f()
    conditions: list[m.Condition] = _lf()


@dataclass
class Suggestion(_Model):
    """Upstream's per-experiment Suggestion object, kept for compatibility (tools that list
    or watch it keep working). In our design suggestions come from shared services and each
    assignment lives on its Trial, so ``status.suggestions`` need not grow with every trial
    ever run (upstream's etcd-size ceiling, reference §13 item 17)."""

    api_version: str = m.API_VERSION
    kind: str = KIND_SUGGESTION
    metadata: m.ObjectMeta = field(default_factory=m.ObjectMeta)
    spec: SuggestionSpec = field(default_factory=SuggestionSpec)
    status: SuggestionStatus | None = _f()


# ---- what a Python type cannot say ---------------------------------------------------------

_Key = tuple[type, str]

_ENUMS: dict[_Key, tuple[str, ...]] = {
    (m.ParameterSpec, "parameter_type"): m.ParameterType.ALL,
    # "" is upstream's "not set, use uniform": its webhook defaults it, so it must pass here.
    (m.FeasibleSpace, "distribution"): m.Distribution.ALL + ("",),
    (m.ObjectiveSpec, "type"): m.ObjectiveType.ALL,
    (m.MetricStrategy, "value"): ("min", "max", "latest"),
    (m.CollectorSpec, "kind"): m.CollectorKind.ALL,
    (m.FileSystemPath, "kind"): ("File", "Directory"),
    (m.FileSystemPath, "format"): ("TEXT", "JSON"),
    (m.EarlyStoppingRule, "comparison"): ("equal", "less", "greater"),
    # "" is upstream's "not set, Never" (its webhook accepts it).
    (m.ExperimentSpec, "resume_policy"): m.ResumePolicy.ALL + ("",),
    (SuggestionSpec, "resume_policy"): m.ResumePolicy.ALL + ("",),
    (m.Condition, "status"): ("True", "False", "Unknown"),
}

# Optional in the model (so a half-written experiment still loads and gets every error at
# once from katib.api.validation) but required by upstream's webhook.
_REQUIRED: set[_Key] = {
    (m.ExperimentSpec, "objective"), (m.ExperimentSpec, "algorithm"),
    (m.ExperimentSpec, "trial_template"),
    (m.ObjectiveSpec, "type"), (m.ObjectiveSpec, "objective_metric_name"),
    (m.AlgorithmSpec, "algorithm_name"), (m.EarlyStoppingSpec, "algorithm_name"),
    (m.TrialTemplate, "primary_container_name"), (m.TrialTemplate, "trial_parameters"),
    (m.ConfigMapSource, "config_map_name"), (m.ConfigMapSource, "config_map_namespace"),
    (m.ConfigMapSource, "template_path"),
    (m.CollectorSpec, "kind"),  # upstream: json:"kind" without omitempty
    (m.Operation, "operation_type"),  # a list-map key must be required
}
# Not optional in the model, but upstream omits it when empty.
_OPTIONAL: set[_Key] = {(m.AlgorithmSetting, "value")}

# Upstream's +listType=map / +listMapKey markers: the API server refuses duplicate keys
# and server-side apply merges these lists item by item.
_LIST_MAP_KEYS: dict[_Key, str] = {
    (m.ExperimentSpec, "parameters"): "name",
    (m.Operation, "parameters"): "name",
    (m.ObjectiveSpec, "metric_strategies"): "name",
    (m.AlgorithmSpec, "algorithm_settings"): "name",
    (m.EarlyStoppingSpec, "algorithm_settings"): "name",
    (SuggestionStatus, "algorithm_settings"): "name",
    (m.TrialTemplate, "trial_parameters"): "name",
    (m.NasConfig, "operations"): "operation_type",
}
# +listType=set. Not graphConfig.inputSizes: upstream's own examples repeat values there.
_SETS: set[_Key] = {(m.ObjectiveSpec, "additional_metric_names"), (m.FeasibleSpace, "list")}

# Free-form fields that hold a whole Kubernetes object: the API server checks their
# apiVersion, kind and metadata, and nothing else.
_EMBEDDED: set[_Key] = {(m.TrialTemplate, "trial_spec"), (m.TrialSpec, "run_spec")}

# Bounds upstream's webhook checks that need no context (rules 2-4 of reference §4.2).
_MINIMUM: dict[_Key, int] = {
    (m.ExperimentSpec, "parallel_trial_count"): 1,
    (m.ExperimentSpec, "max_trial_count"): 1,
    (m.ExperimentSpec, "max_failed_trial_count"): 0,
}

_INT64: set[_Key] = {(m.EarlyStoppingRule, "start_step")}  # Go int, not int32

# Upstream's name rule, anchored (katib.api.validation.NAME_PATTERN): Services, Jobs and
# Trials are named after the experiment.
_EXPERIMENT_NAME = {"type": "string", "maxLength": 40, "pattern": r"^[a-z]([-a-z0-9]*[a-z0-9])?$"}

_TYPE_DOCS: dict[type, str] = {
    m.ExperimentSpec: "ExperimentSpec is the specification of an Experiment.",
    m.ExperimentStatus: "ExperimentStatus is the current status of an Experiment.",
    m.ObjectiveSpec: "The objective: which metric to minimize or maximize, and the goal.",
    m.AlgorithmSpec: "The search algorithm and its settings (all values are strings).",
    m.EarlyStoppingSpec: "The early-stopping algorithm and its settings.",
    m.ParameterSpec: "One hyperparameter of the search space.",
    m.FeasibleSpace: "The values a parameter may take; all numbers are strings.",
    m.TrialTemplate: "How each trial's workload is built.",
    m.MetricsCollectorSpec: "How metrics are collected from a trial.",
    m.NasConfig: "Neural architecture search configuration (instead of parameters).",
    m.TrialSpec: "TrialSpec is the specification of a Trial.",
    m.TrialStatus: "TrialStatus is the current status of a Trial.",
    m.Observation: "The metrics observed for a trial.",
    m.OptimalTrial: "The best trial so far: its assignments and observation.",
    m.Condition: "One observed condition (type, status, reason, message, times).",
    m.EarlyStoppingRule: "A rule that stops a trial early: metric, comparison, value.",
    SuggestionSpec: "SuggestionSpec is the specification of a Suggestion.",
    SuggestionStatus: "SuggestionStatus is the current status of a Suggestion.",
    TrialAssignment: "The assignment for one trial.",
}

_DOCS: dict[_Key, str] = {
    (m.ExperimentSpec, "parameters"): "List of hyperparameter configurations (the search space). "
                                      "Exactly one of parameters and nasConfig.",
    (m.ExperimentSpec, "parallel_trial_count"): "How many trials run in parallel. Defaults to 3.",
    (m.ExperimentSpec, "max_trial_count"): "Max completed trials to mark the experiment as succeeded. "
                                           "Unset: run until the goal or maxFailedTrialCount is reached.",
    (m.ExperimentSpec, "max_failed_trial_count"): "Max failed trials to mark the experiment as failed.",
    (m.ExperimentSpec, "resume_policy"): "What happens after the experiment ends: Never (default), "
                                         "LongRunning or FromVolume.",
    (m.ExperimentSpec, "metrics_collector_spec"): "How metrics are collected. Defaults to StdOut.",
    (m.ObjectiveSpec, "goal"): "Stop when the best value reaches this (<= for minimize, >= for maximize).",
    (m.ObjectiveSpec, "objective_metric_name"): "The metric to optimize.",
    (m.ObjectiveSpec, "additional_metric_names"): "Other metrics to collect from trials.",
    (m.ObjectiveSpec, "metric_strategies"): "Which value of each metric counts: min, max or latest. "
                                            "Defaults to min/max by objective type.",
    (m.ParameterSpec, "parameter_type"): "double, int, discrete, categorical or unknown.",
    (m.FeasibleSpace, "list"): "The values of a discrete or categorical parameter.",
    (m.FeasibleSpace, "distribution"): "uniform (default), logUniform, normal or logNormal.",
    (m.TrialTemplate, "retain"): "Keep each trial's workload after the trial completes.",
    (m.TrialTemplate, "trial_spec"): "The trial's workload as an inline Kubernetes object with "
                                     "${trialParameters.<name>} placeholders.",
    (m.TrialTemplate, "config_map"): "A ConfigMap that holds the trial's workload template instead.",
    (m.TrialTemplate, "trial_parameters"): "The placeholders used in the template and what fills them.",
    (m.TrialTemplate, "primary_pod_labels"): "Labels of the pods whose metrics are collected; "
                                             "unset: every pod of the trial.",
    (m.TrialTemplate, "primary_container_name"): "Name of the container where training runs.",
    (m.TrialTemplate, "success_condition"): "GJSON path on the workload that means success "
                                            "(defaulted for Job and Kubeflow training jobs).",
    (m.TrialTemplate, "failure_condition"): "GJSON path on the workload that means failure.",
    (m.TrialParameterSpec, "reference"): "The search-space parameter (or trial metadata) it takes its value from.",
    (m.CollectorSpec, "kind"): "StdOut, File, TensorFlowEvent, PrometheusMetric, Custom, Push or None.",
    (m.CollectorSpec, "custom_collector"): "The collector container (a core/v1 Container) for kind Custom.",
    (m.SourceSpec, "http_get"): "Where to scrape metrics (a core/v1 HTTPGetAction), for PrometheusMetric.",
    (m.FilterSpec, "metrics_format"): "Regular expressions with two groups (name, value) that find metrics.",
    (m.EarlyStoppingRule, "start_step"): "Reports to receive before the rule applies; 0: from the first.",
    (m.TrialSpec, "run_spec"): "The rendered workload this trial runs (any Kubernetes object).",
    (m.TrialSpec, "retain_run"): "Keep the workload after the trial completes.",
    (m.TrialSpec, "labels"): "Labels for services that track trials.",
    (m.ExperimentStatus, "trials"): "Total number of trials owned by the experiment.",
    (m.ExperimentStatus, "trial_metrics_unavailable"): "How many trials ended without metrics.",
    (SuggestionSpec, "requests"): "Number of suggestions requested (cumulative).",
    (SuggestionStatus, "suggestion_count"): "Number of suggestions produced.",
    (SuggestionStatus, "algorithm_settings"): "Settings returned by the suggestion service; they "
                                              "override the experiment's on the next request.",
    (SuggestionStatus, "suggestions"): "Assignments produced (upstream keeps every one; ours live on Trials).",
}


# ---- introspection -------------------------------------------------------------------------

def _strip_optional(tp: Any) -> tuple[Any, bool]:
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _scalar(tp: Any, key: _Key) -> dict[str, Any]:
    if tp is str:
        if key[1].endswith("_time"):
            return {"type": "string", "format": "date-time"}
        return {"type": "string"}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer", "format": "int64" if key in _INT64 else "int32"}
    if tp is float:
        return {"type": "number"}
    raise TypeError(f"{key[0].__name__}.{key[1]}: no schema for {tp!r}")


def _schema_for(tp: Any, key: _Key) -> dict[str, Any]:
    """The schema of a value of type ``tp`` held by field ``key`` (class, field name)."""
    tp, _ = _strip_optional(tp)
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _object_schema(tp)
    if origin is list:
        (item,) = typing.get_args(tp)
        out: dict[str, Any] = {"type": "array", "items": _schema_for(item, key)}
        if key in _LIST_MAP_KEYS:
            out["x-kubernetes-list-type"] = "map"
            out["x-kubernetes-list-map-keys"] = [_wire(_item_class(item), _LIST_MAP_KEYS[key])]
        elif key in _SETS:
            out["x-kubernetes-list-type"] = "set"
        return out
    if origin is dict:
        _, value = typing.get_args(tp)
        if value is Any:
            out = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
            if key in _EMBEDDED:
                out["x-kubernetes-embedded-resource"] = True
            return out
        return {"type": "object", "additionalProperties": _schema_for(value, key)}
    out = _scalar(tp, key)
    if key in _ENUMS:
        out["enum"] = list(_ENUMS[key])
    if key in _MINIMUM:
        out["minimum"] = _MINIMUM[key]
    return out


def _item_class(tp: Any) -> type:
    tp, _ = _strip_optional(tp)
    if not (dataclasses.is_dataclass(tp) and isinstance(tp, type)):
        raise TypeError(f"a list-map needs object items, got {tp!r}")
    return tp


def _wire(cls: type, name: str) -> str:
    for f in dataclasses.fields(cls):
        if f.name == name:
            return wire_name(f)
    raise KeyError(f"{cls.__name__} has no field {name!r}")


def _is_required(cls: type, f: dataclasses.Field[Any], tp: Any) -> bool:
    key = (cls, f.name)
    if key in _REQUIRED:
        return True
    if key in _OPTIONAL:
        return False
    inner, optional = _strip_optional(tp)
    return not optional and typing.get_origin(inner) not in (list, dict)


def _object_schema(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    props: dict[str, Any] = {}
    required: list[str] = []
    for f in dataclasses.fields(cls):
        if f.metadata.get("extra"):  # ObjectMeta's catch-all: not a wire field
            continue
        key = (cls, f.name)
        schema = _schema_for(hints[f.name], key)
        if key in _DOCS:  # a field's own words win over its type's (set by _object_schema)
            schema = {"description": _DOCS[key], **{k: v for k, v in schema.items() if k != "description"}}
        props[wire_name(f)] = schema
        if _is_required(cls, f, hints[f.name]):
            required.append(wire_name(f))
    out: dict[str, Any] = {"type": "object"}
    if cls in _TYPE_DOCS:
        out = {"description": _TYPE_DOCS[cls], **out}
    out["properties"] = props
    if required:
        out["required"] = required
    return out


def openapi_schema(root: type, description: str) -> dict[str, Any]:
    """The ``openAPIV3Schema`` of a top-level kind (Experiment, Trial or Suggestion)."""
    hints = typing.get_type_hints(root)
    metadata: dict[str, Any] = {"type": "object"}
    if root is m.Experiment:
        metadata["properties"] = {"name": dict(_EXPERIMENT_NAME)}
    return {
        "description": description,
        "type": "object",
        "properties": {
            "apiVersion": {"description": "APIVersion of this object: kubeflow.org/v1beta1.", "type": "string"},
            "kind": {"description": "Kind of this object.", "type": "string"},
            # Only name and generateName may be constrained at the root; the API server
            # validates the rest of ObjectMeta itself.
            "metadata": metadata,
            "spec": _schema_for(hints["spec"], (root, "spec")),
            "status": _schema_for(hints["status"], (root, "status")),
        },
        "required": ["spec"],
    }


# ---- the CRDs ---------------------------------------------------------------------------------

def _condition_columns() -> list[dict[str, Any]]:
    # The last condition is the newest: upstream appends on every transition.
    return [
        {"name": "Type", "type": "string", "jsonPath": ".status.conditions[-1:].type"},
        {"name": "Status", "type": "string", "jsonPath": ".status.conditions[-1:].status"},
    ]


_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def crd(kind: str, root: type, description: str, columns: list[dict[str, Any]],
        short_names: list[str]) -> dict[str, Any]:
    plural = kind.lower() + "s"
    names: dict[str, Any] = {"kind": kind, "listKind": kind + "List", "plural": plural,
                             "singular": kind.lower()}
    if short_names:
        names["shortNames"] = short_names
    names["categories"] = ["all", "kubeflow", "katib"]  # as upstream: `kubectl get katib`
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": names,
            "scope": "Namespaced",
            "versions": [{
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": columns,
                "schema": {"openAPIV3Schema": openapi_schema(root, description)},
            }],
        },
    }


def crds() -> list[dict[str, Any]]:
    """The Experiment, Trial and Suggestion CRDs, in that order."""
    wide = 1  # priority 1: shown by `kubectl get -o wide` only, like upstream's default view
    return [
        crd(m.KIND_EXPERIMENT, m.Experiment,
            "An Experiment: a search space, an objective, an algorithm and a trial template.",
            _condition_columns() + [
                {"name": "Algorithm", "type": "string", "priority": wide,
                 "jsonPath": ".spec.algorithm.algorithmName"},
                {"name": "Trials", "type": "integer", "priority": wide, "jsonPath": ".status.trials"},
                {"name": "Succeeded", "type": "integer", "priority": wide,
                 "jsonPath": ".status.trialsSucceeded"},
                {"name": "Best-Trial", "type": "string", "priority": wide,
                 "jsonPath": ".status.currentOptimalTrial.bestTrialName"},
                _AGE],
            ["exp"]),
        crd(m.KIND_TRIAL, m.Trial,
            "A Trial: one run of the trial template with one assignment of the parameters.",
            _condition_columns() + [
                # The whole list: a [*] path would show the first value only.
                {"name": "Assignments", "type": "string", "priority": wide,
                 "jsonPath": ".spec.parameterAssignments"},
                _AGE],
            []),
        crd(KIND_SUGGESTION, Suggestion,
            "A Suggestion: the algorithm state of one experiment (kept for compatibility; "
            "assignments live on Trials).",
            _condition_columns() + [
                {"name": "Requested", "type": "string", "jsonPath": ".spec.requests"},
                {"name": "Assigned", "type": "string", "jsonPath": ".status.suggestionCount"},
                _AGE],
            []),
    ]


_HEADER = "# Generated by `python -m katib.api.crd` from katib/api/model.py; do not edit.\n"


def render() -> str:
    """The CRDs as one multi-document YAML stream, as checked in under manifests/."""
    docs = [yaml.safe_dump(c, sort_keys=False, default_flow_style=False, width=100) for c in crds()]
    return _HEADER + "".join("---\n" + d for d in docs)


def main(argv: list[str] | None = None) -> int:
    """``python -m katib.api.crd [OUTPUT]``: write the CRDs to OUTPUT or stdout."""
    args = sys.argv[1:] if argv is None else argv
    text = render()
    if args:
        with open(args[0], "w", encoding="utf-8") as out:
            out.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
