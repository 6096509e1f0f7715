"""Turn ``tune()``'s arguments into a ``kubeflow.org/v1beta1`` Experiment.

The same Experiment runs locally and on Kubernetes; only the objective's transport differs
(a warm worker pool locally, ``python3 -c`` in a pod; see ``katib.sdk.objective``). The
trial's primary container runs ``katib.sdk.objective`` with the parameter types as JSON and
one ``NAME ${trialParameters.NAME}`` pair per searched parameter.
"""

from __future__ import annotations

import json
import re
import secrets
import sys
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from katib.api.model import (
    AlgorithmSetting,
    AlgorithmSpec,
    CollectorKind,
    CollectorSpec,
    EarlyStoppingSpec,
    Experiment,
    ExperimentSpec,
    MetricsCollectorSpec,
    ObjectiveSpec,
    ObjectiveType,
    ObjectMeta,
    ParameterSpec,
    ParameterType,
    TrialParameterSpec,
    TrialTemplate,
)
from katib.sdk.objective import SEPARATOR, SINK_ENV
from katib.sdk.search import VALUES_ATTR

__all__ = ["Plan", "Trainer", "ExperimentArgs", "objective_options", "python_version", "plan_parameters", "build_experiment", "default_name", "env_list",
           "resources", "to_plain", "CONTAINER_NAME", "TRAINJOB_CONTAINER", "DEFAULT_METRIC"]

CONTAINER_NAME = "training-container"  # upstream tune()'s container name
TRAINJOB_CONTAINER = "node"  # the container Kubeflow Trainer's runtimes run the trainer in
DEFAULT_METRIC = "objective"  # the metric a returned number is reported as, unless named
_ES_DEFAULT = "medianstop"


@dataclass
class Plan:
    """The parameters of one tune() call: searched specs (named), fixed values, type codes."""

    searched: list[ParameterSpec]
    fixed: dict[str, Any]
    codecs: dict[str, Any]

    def trial_args(self) -> list[str]:
        """``-- TYPES NAME ${trialParameters.NAME} ...``: types as JSON, one argv item per value."""
        args = [SEPARATOR, json.dumps(self.codecs, sort_keys=True, separators=(",", ":"))]
        for p in self.searched:
            args += [p.name, "${trialParameters.%s}" % p.name]
        return args


@dataclass
class Trainer:
    """Run each trial as a Kubeflow Trainer ``TrainJob`` (trainer.kubeflow.org/v1alpha1)."""

    runtime: str = "torch-distributed"
    num_nodes: int = 1
    resources_per_node: Any = None

    @classmethod
    def of(cls, value: Any) -> "Trainer":
        if isinstance(value, Trainer):
            return value
        if isinstance(value, Mapping):
            known = {"runtime", "runtime_ref", "num_nodes", "resources_per_node"}
            unknown = set(value) - known
            if unknown:
                raise ValueError(f"trainer: unknown key(s) {sorted(unknown)}; use {sorted(known)}")
            return cls(runtime=value.get("runtime") or value.get("runtime_ref") or cls.runtime,
                       num_nodes=value.get("num_nodes", 1), resources_per_node=value.get("resources_per_node"))
        raise ValueError(f"trainer: expected katib.sdk.Trainer or a dict, got {value!r}")


def _codec(p: ParameterSpec) -> Any:
    if p.parameter_type == ParameterType.INT:
        return "int"
    if p.parameter_type == ParameterType.DOUBLE:
        return "float"
    texts = p.feasible_space.list or []
    if p.parameter_type == ParameterType.DISCRETE:
        # Whole-number texts ("4", not "4.0") were ints in the list.
        return "int" if all(re.fullmatch(r"[+-]?\d+", t) for t in texts) else "float"
    values = getattr(p, VALUES_ATTR, None)
    if values is not None:
        return {"map": dict(zip(texts, values))}
    return "str"


def plan_parameters(parameters: Mapping[str, Any]) -> Plan:
    """Searched parameters are ``katib.search`` specs (named after their key); anything else
    is passed to the objective as given (upstream does the same)."""
    if not isinstance(parameters, Mapping) or not parameters:
        raise ValueError("parameters: give a dict of name -> katib.search.double/int/categorical/discrete(...) "
                         "(other values are passed to the objective unchanged)")
    searched, fixed, codecs = [], {}, {}
    for key, value in parameters.items():
        if not isinstance(key, str) or not key or "{" in key or "}" in key or key.startswith("--"):
            raise ValueError(f"parameters: {key!r} is not a usable parameter name")
        if isinstance(value, ParameterSpec):
            spec = value.copy()  # the same helper result may be used under two names
            if getattr(value, VALUES_ATTR, None) is not None:
                setattr(spec, VALUES_ATTR, getattr(value, VALUES_ATTR))
            spec.name = key
            searched.append(spec)
            codecs[key] = _codec(spec)
        else:
            fixed[key] = value
    if not searched:
        raise ValueError("parameters: nothing to search; use katib.search.double/int/categorical/discrete "
                         "for at least one parameter")
    return Plan(searched, fixed, codecs)


def default_name(objective: Any) -> str:
    """``tune-<function name>-<random>``: a valid experiment name, unique per call."""
    base = re.sub(r"[^a-z0-9-]+", "-", getattr(objective, "__name__", "objective").lower()).strip("-")
    base = re.sub(r"^[^a-z]+", "", base)[:20].rstrip("-") or "objective"
    if base == "lambda":
        base = "objective"
    return f"tune-{base}-{secrets.token_hex(3)}"


def to_plain(obj: Any) -> Any:
    """A Kubernetes client model (``V1EnvVar``, ``V1ResourceRequirements`` ...) as the JSON
    the API expects, without importing the kubernetes package (layering, DESIGN.md)."""
    attribute_map = getattr(obj, "attribute_map", None)
    if isinstance(attribute_map, dict) and hasattr(obj, "openapi_types"):
        return {attribute_map[k]: to_plain(getattr(obj, k)) for k in attribute_map if getattr(obj, k) is not None}
    if isinstance(obj, Mapping):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj


def env_list(env_per_trial: Any) -> list[dict[str, Any]]:
    """``env_per_trial`` (dict, or a list of EnvVar dicts/models) as container env entries."""
    if not env_per_trial:
        return []
    if isinstance(env_per_trial, Mapping):
        return [{"name": str(k), "value": str(v)} for k, v in env_per_trial.items()]
    out = []
    for i, item in enumerate(env_per_trial):
        plain = to_plain(item)
        if not isinstance(plain, dict) or not plain.get("name"):
            raise ValueError(f"env_per_trial[{i}]: expected {{'name': ..., 'value': ...}} or a V1EnvVar, got {item!r}")
        out.append(plain)
    return out


def resources(value: Any) -> dict[str, Any] | None:
    """Upstream's ``resources_per_trial``: ``{"cpu", "memory", "gpu"}`` becomes requests and
    limits (``gpu`` -> ``nvidia.com/gpu``); a dict with requests/limits or a
    V1ResourceRequirements passes through."""
    if value is None:
        return None
    plain = to_plain(value)
    if not isinstance(plain, dict):
        raise ValueError(f"resources_per_trial: expected a dict or V1ResourceRequirements, got {value!r}")
    if {"requests", "limits"} & set(plain):
        return plain
    amounts = {("nvidia.com/gpu" if k == "gpu" else k): str(v) for k, v in plain.items()}
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _settings(algorithm_settings: Any, what: str) -> list[AlgorithmSetting]:
    if not algorithm_settings:
        return []
    if isinstance(algorithm_settings, Mapping):
        return [AlgorithmSetting(str(k), _setting_text(v)) for k, v in algorithm_settings.items()]
    out = []
    for item in algorithm_settings:
        plain = to_plain(item) if not isinstance(item, AlgorithmSetting) else item.to_dict()
        if not isinstance(plain, dict) or "name" not in plain:
            raise ValueError(f"{what}: expected a dict of name -> value, got {algorithm_settings!r}")
        out.append(AlgorithmSetting(str(plain["name"]), _setting_text(plain.get("value", ""))))
    return out


def _setting_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _early_stopping(value: Any) -> EarlyStoppingSpec | None:
    """``True`` (medianstop, its defaults), an algorithm name, a dict with ``algorithm_name``
    and ``algorithm_settings``, or an EarlyStoppingSpec."""
    if value is None or value is False:
        return None
    if value is True:
        return EarlyStoppingSpec(algorithm_name=_ES_DEFAULT)
    if isinstance(value, str):
        return EarlyStoppingSpec(algorithm_name=value)
    if isinstance(value, EarlyStoppingSpec):
        return value.copy()
    if isinstance(value, Mapping):
        unknown = set(value) - {"algorithm_name", "algorithm_settings"}
        if unknown:
            raise ValueError(f"early_stopping: unknown key(s) {sorted(unknown)}; use algorithm_name and "
                             "algorithm_settings, e.g. {'algorithm_name': 'medianstop', "
                             "'algorithm_settings': {'min_trials_required': 2, 'start_step': 2}}")
        return EarlyStoppingSpec(algorithm_name=value.get("algorithm_name", _ES_DEFAULT),
                                 algorithm_settings=_settings(value.get("algorithm_settings"),
                                                              "early_stopping.algorithm_settings"))
    raise ValueError(f"early_stopping: expected True, an algorithm name or a dict, got {value!r}")


@dataclass
class ExperimentArgs:
    """tune()'s Experiment-level arguments, with upstream's names."""

    name: str
    namespace: str
    objective_metric_name: str = DEFAULT_METRIC
    additional_metric_names: Sequence[str] = ()
    objective_type: str = ObjectiveType.MAXIMIZE
    objective_goal: float | None = None
    algorithm_name: str = "random"
    algorithm_settings: Any = None
    early_stopping: Any = None
    max_trial_count: int | None = None
    parallel_trial_count: int | None = None
    max_failed_trial_count: int | None = None
    metrics_collector_config: Mapping[str, Any] = field(default_factory=lambda: {"kind": CollectorKind.STDOUT})
    retain_trials: bool = False
    trial_active_deadline_seconds: int | None = None

    @property
    def collector_kind(self) -> str:
        return str((self.metrics_collector_config or {}).get("kind") or CollectorKind.STDOUT)


def objective_options(args: ExperimentArgs) -> list[str]:
    """The options every transport shares: the metric name and how results are reported."""
    options = ["--metric", args.objective_metric_name]
    if args.collector_kind == CollectorKind.PUSH:
        options += ["--report", "push"]
    return options


def build_experiment(args: ExperimentArgs, plan: Plan, command: list[str], *, image: str,
                     env: list[dict[str, Any]], resources_per_trial: dict[str, Any] | None = None,
                     trainer: Trainer | None = None) -> Experiment:
    """The Experiment whose primary container runs ``command`` (which ends in
    ``plan.trial_args()``)."""
    if args.objective_type not in ObjectiveType.ALL:
        raise ValueError(f"objective_type must be 'minimize' or 'maximize', got {args.objective_type!r}")
    if args.collector_kind not in (CollectorKind.STDOUT, CollectorKind.PUSH):
        raise ValueError(f"metrics_collector_config: kind {args.collector_kind!r} is not supported by tune(); "
                         "use {'kind': 'StdOut'} (printed or returned metrics) or {'kind': 'Push'}")
    env = list(env)
    if args.collector_kind == CollectorKind.STDOUT:
        env.append({"name": SINK_ENV, "value": "stdout"})
    container_name = TRAINJOB_CONTAINER if trainer is not None else CONTAINER_NAME
    trial_spec = _trainjob(trainer, image, command, env) if trainer is not None else \
        _job(image, command, env, resources_per_trial, args.trial_active_deadline_seconds)
    spec = ExperimentSpec(
        parameters=plan.searched,
        objective=ObjectiveSpec(type=args.objective_type, goal=args.objective_goal,
                                objective_metric_name=args.objective_metric_name,
                                additional_metric_names=[m for m in args.additional_metric_names]),
        algorithm=AlgorithmSpec(algorithm_name=args.algorithm_name,
                                algorithm_settings=_settings(args.algorithm_settings, "algorithm_settings")),
        early_stopping=_early_stopping(args.early_stopping),
        trial_template=TrialTemplate(
            retain=args.retain_trials, trial_spec=trial_spec, primary_container_name=container_name,
            trial_parameters=[TrialParameterSpec(name=p.name, reference=p.name) for p in plan.searched]),
        parallel_trial_count=args.parallel_trial_count,
        max_trial_count=args.max_trial_count,
        max_failed_trial_count=args.max_failed_trial_count,
        metrics_collector_spec=MetricsCollectorSpec(collector=CollectorSpec(kind=args.collector_kind)),
    )
    meta = ObjectMeta(name=args.name, namespace=args.namespace,
                      annotations={"katib.kubeflow.org/created-by": "katib.tune"})
    return Experiment(metadata=meta, spec=spec)


def _job(image: str, command: list[str], env: list[dict[str, Any]], res: dict[str, Any] | None,
         deadline: int | None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": CONTAINER_NAME, "image": image, "command": command}
    if env:
        container["env"] = env
    if res:
        container["resources"] = res
    job_spec: dict[str, Any] = {"template": {"spec": {"containers": [container], "restartPolicy": "Never"}}}
    if deadline:
        job_spec["activeDeadlineSeconds"] = int(deadline)
    return {"apiVersion": "batch/v1", "kind": "Job", "spec": job_spec}


def _trainjob(trainer: Trainer, image: str, command: list[str], env: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = {"image": image, "command": command, "numNodes": int(trainer.num_nodes)}
    if env:
        spec["env"] = env
    per_node = resources(trainer.resources_per_node)
    if per_node:
        spec["resourcesPerNode"] = per_node
    return {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob",
            "spec": {"runtimeRef": {"name": trainer.runtime}, "trainer": spec}}


def python_version() -> str:
    return f"{sys.version_info[0]}.{sys.version_info[1]}"
