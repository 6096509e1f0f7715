"""Defaults of upstream's mutating webhook (``Experiment.SetDefault``, reference §4.1).

Order and rules are upstream's:

1. ``parallelTrialCount`` = 3 if unset.
2. ``resumePolicy`` = ``Never`` if empty.
3. ``objective.metricStrategies`` completed: the objective metric and every additional
   metric without a strategy gets ``min`` (minimize) / ``max`` (maximize) / ``latest``.
4. Trial template success/failure conditions and ``primaryPodLabels`` for known kinds.
5. Metrics collector: ``StdOut`` when absent; per-kind source defaults.
6. Every parameter's ``distribution`` = ``uniform`` if empty.

Nothing else is defaulted (no maxTrialCount, maxFailedTrialCount or algorithm settings).

One deliberate difference: upstream defaults conditions only for inline ``trialSpec``
templates. We also default them for ``configMap`` templates when the ConfigMap can be read
(``config_maps``) and its template's kind is known (reference §13 item 11), so a ConfigMap
holding a plain Job needs no hand-written GJSON conditions.
"""

from __future__ import annotations

import logging
from typing import Any

from katib.api.model import (
    CollectorKind,
    CollectorSpec,
    Distribution,
    Experiment,
    FileSystemPath,
    MetricsCollectorSpec,
    MetricStrategy,
    ObjectiveType,
    ResumePolicy,
    SourceSpec,
    TrialTemplate,
)
from katib.api.trialtemplate import ConfigMapGetter, template_object
from katib.errors import KatibError

__all__ = [
    "set_defaults",
    "job_defaults",
    "DEFAULT_PARALLEL_TRIAL_COUNT",
    "DEFAULT_RESUME_POLICY",
    "DEFAULT_METRICS_FILE",
    "DEFAULT_TFEVENT_DIR",
    "DEFAULT_PROMETHEUS_PATH",
    "DEFAULT_PROMETHEUS_PORT",
    "KUBEFLOW_JOB_KINDS",
]

log = logging.getLogger(__name__)

DEFAULT_PARALLEL_TRIAL_COUNT = 3
DEFAULT_RESUME_POLICY = ResumePolicy.NEVER
DEFAULT_METRICS_FILE = "/var/log/katib/metrics.log"
DEFAULT_TFEVENT_DIR = "/var/log/katib/tfevent/"
DEFAULT_PROMETHEUS_PATH = "/metrics"
DEFAULT_PROMETHEUS_PORT = 8080

KUBEFLOW_JOB_KINDS = ("TFJob", "PyTorchJob", "XGBoostJob", "MPIJob")


def _conditions(kind_word: str) -> tuple[str, str]:
    return (f'status.conditions.#(type=="{kind_word}")#|#(status=="True")#',
            'status.conditions.#(type=="Failed")#|#(status=="True")#')


_JOB = _conditions("Complete")
_KUBEFLOW_JOB = _conditions("Succeeded")
_TRAIN_JOB = _conditions("Complete")
_KUBEFLOW_LABELS = {"training.kubeflow.org/job-role": "master"}
_TRAIN_JOB_LABELS = {"jobset.sigs.k8s.io/replicatedjob-name": "node",
                     "batch.kubernetes.io/job-completion-index": "0"}


def job_defaults(kind: str | None) -> tuple[str, str, dict[str, str] | None] | None:
    """(successCondition, failureCondition, primaryPodLabels or None) for a trial kind
    upstream knows, else None (Argo, Tekton and other kinds need explicit conditions)."""
    if kind == "Job":
        return _JOB[0], _JOB[1], None
    if kind in KUBEFLOW_JOB_KINDS:
        return _KUBEFLOW_JOB[0], _KUBEFLOW_JOB[1], dict(_KUBEFLOW_LABELS)
    if kind == "TrainJob":
        return _TRAIN_JOB[0], _TRAIN_JOB[1], dict(_TRAIN_JOB_LABELS)
    return None


def set_defaults(exp: Experiment, *, config_maps: ConfigMapGetter | None = None) -> Experiment:
    """Apply upstream's webhook defaults to ``exp`` IN PLACE and return it (as upstream's
    ``SetDefault`` mutates the object), so both ``set_defaults(exp)`` and
    ``exp = set_defaults(exp)`` work. Pass ``config_maps`` to also default conditions of
    ConfigMap templates. Idempotent."""
    spec = exp.spec
    if spec.parallel_trial_count is None:
        spec.parallel_trial_count = DEFAULT_PARALLEL_TRIAL_COUNT
    if not spec.resume_policy:
        spec.resume_policy = DEFAULT_RESUME_POLICY
    _default_objective(exp)
    if spec.trial_template is not None:
        _default_trial_template(spec.trial_template, config_maps)
    _default_metrics_collector(exp)
    for parameter in spec.parameters:
        if not parameter.feasible_space.distribution:
            parameter.feasible_space.distribution = Distribution.UNIFORM
    return exp


def _strategy_for(objective_type: str | None) -> str:
    if objective_type == ObjectiveType.MINIMIZE:
        return "min"
    if objective_type == ObjectiveType.MAXIMIZE:
        return "max"
    return "latest"


def _default_objective(exp: Experiment) -> None:
    obj = exp.spec.objective
    if obj is None:
        return
    # Exactly upstream's bookkeeping: strategies the user gave are kept; the objective's own
    # strategy is tracked apart from the others (setDefaultObjective).
    objective_has_strategy = False
    others_with_strategy: set[str] = set()
    for strategy in obj.metric_strategies:
        if strategy.name == obj.objective_metric_name:
            objective_has_strategy = True
        else:
            others_with_strategy.add(strategy.name)
    value = _strategy_for(obj.type)
    if not objective_has_strategy:
        obj.metric_strategies.append(MetricStrategy(obj.objective_metric_name or "", value))
    for name in obj.additional_metric_names:
        if name not in others_with_strategy:
            # The upstream comment says "latest"; the code (and we) use the objective's rule.
            obj.metric_strategies.append(MetricStrategy(name, value))
            others_with_strategy.add(name)


def _template_kind(template: TrialTemplate, config_maps: ConfigMapGetter | None) -> str | None:
    if template.trial_spec is not None:
        kind = template.trial_spec.get("kind") if isinstance(template.trial_spec, dict) else None
        return kind if isinstance(kind, str) else None
    if template.config_map is None or config_maps is None:
        return None
    try:
        kind = template_object(template, config_maps).get("kind")
    except KatibError as exc:  # validation reports it with the field path
        log.debug("no condition defaults for the ConfigMap template: %s", exc)
        return None
    return kind if isinstance(kind, str) else None


def _default_trial_template(template: TrialTemplate, config_maps: ConfigMapGetter | None) -> None:
    known = job_defaults(_template_kind(template, config_maps))
    if known is None:
        return
    success, failure, labels = known
    if not template.success_condition:
        template.success_condition = success
    if not template.failure_condition:
        template.failure_condition = failure
    if labels is not None and not template.primary_pod_labels:
        template.primary_pod_labels = labels


def _default_metrics_collector(exp: Experiment) -> None:
    spec = exp.spec
    if spec.metrics_collector_spec is None:
        spec.metrics_collector_spec = MetricsCollectorSpec()
    mc = spec.metrics_collector_spec
    if mc.collector is None:
        mc.collector = CollectorSpec(kind=CollectorKind.STDOUT)
    kind = mc.collector.kind
    if kind == CollectorKind.PROMETHEUS:
        mc.source = mc.source or SourceSpec()
        http_get: dict[str, Any] = mc.source.http_get if mc.source.http_get is not None else {}
        mc.source.http_get = http_get
        if not http_get.get("path"):
            http_get["path"] = DEFAULT_PROMETHEUS_PATH
        # Upstream tests IntOrString.String() == "0": absent, 0 and "0" all mean "unset".
        if str(http_get.get("port", 0) or 0) == "0":
            http_get["port"] = DEFAULT_PROMETHEUS_PORT
    elif kind in (CollectorKind.FILE, CollectorKind.TENSORFLOW_EVENT):
        mc.source = mc.source or SourceSpec()
        fsp = mc.source.file_system_path = mc.source.file_system_path or FileSystemPath()
        if kind == CollectorKind.FILE:
            fsp.kind = fsp.kind or "File"
            fsp.path = fsp.path or DEFAULT_METRICS_FILE
            fsp.format = fsp.format or "TEXT"
        else:
            fsp.kind = fsp.kind or "Directory"
            fsp.path = fsp.path or DEFAULT_TFEVENT_DIR
