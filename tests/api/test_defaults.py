"""Upstream's webhook defaults (reference §4.1, §1.2, §1.6, §1.7)."""

from __future__ import annotations

from typing import Any

import pytest

from katib.api.defaults import set_defaults
from katib.api.loader import ConfigMapLookup
from katib.api.model import Experiment
from tests.api.factory import experiment, experiment_dict

JOB_OK = 'status.conditions.#(type=="Complete")#|#(status=="True")#'
FAILED = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
KF_OK = 'status.conditions.#(type=="Succeeded")#|#(status=="True")#'


def test_counts_and_resume_policy() -> None:
    exp = experiment(lambda d: d["spec"].pop("parallelTrialCount"))
    assert exp.spec.parallel_trial_count == 3
    assert exp.spec.resume_policy == "Never"
    assert exp.spec.max_trial_count == 6  # never defaulted, only kept
    bare = experiment(lambda d: [d["spec"].pop(k) for k in ("maxTrialCount", "maxFailedTrialCount")])
    assert bare.spec.max_trial_count is None and bare.spec.max_failed_trial_count is None


def test_given_values_are_kept() -> None:
    exp = experiment(lambda d: d["spec"].update(parallelTrialCount=5, resumePolicy="LongRunning"))
    assert exp.spec.parallel_trial_count == 5
    assert exp.spec.resume_policy == "LongRunning"


@pytest.mark.parametrize("objective_type, value", [("minimize", "min"), ("maximize", "max"), ("", "latest")])
def test_metric_strategies_follow_the_objective_type(objective_type: str, value: str) -> None:
    exp = experiment(lambda d: d["spec"]["objective"].update(type=objective_type))
    assert exp.spec.objective is not None
    # Additional metrics get the objective's rule too (upstream's code, not its comment).
    assert [(s.name, s.value) for s in exp.spec.objective.metric_strategies] == [("accuracy", value), ("loss", value)]


def test_metric_strategies_given_are_kept() -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["spec"]["objective"]["metricStrategies"] = [{"name": "loss", "value": "latest"}]

    exp = experiment(mutate)
    assert exp.spec.objective is not None
    assert [(s.name, s.value) for s in exp.spec.objective.metric_strategies] == [("loss", "latest"),
                                                                                   ("accuracy", "max")]


def test_distribution_defaults_to_uniform_on_every_parameter() -> None:
    exp = experiment()
    assert [p.feasible_space.distribution for p in exp.spec.parameters] == ["uniform"] * 3
    exp = experiment(lambda d: d["spec"]["parameters"][0]["feasibleSpace"].update(distribution="logUniform"))
    assert exp.spec.parameters[0].feasible_space.distribution == "logUniform"


def _with_kind(kind: str, api_version: str = "kubeflow.org/v1") -> Experiment:
    def mutate(d: dict[str, Any]) -> None:
        d["spec"]["trialTemplate"]["trialSpec"] = {"apiVersion": api_version, "kind": kind, "spec": {}}

    return experiment(mutate)


def test_job_conditions() -> None:
    tt = experiment().spec.trial_template
    assert tt is not None
    assert (tt.success_condition, tt.failure_condition, tt.primary_pod_labels) == (JOB_OK, FAILED, None)


@pytest.mark.parametrize("kind", ["TFJob", "PyTorchJob", "XGBoostJob", "MPIJob"])
def test_kubeflow_training_job_conditions_and_labels(kind: str) -> None:
    tt = _with_kind(kind).spec.trial_template
    assert tt is not None
    assert (tt.success_condition, tt.failure_condition) == (KF_OK, FAILED)
    assert tt.primary_pod_labels == {"training.kubeflow.org/job-role": "master"}


def test_trainjob_conditions_and_labels() -> None:
    tt = _with_kind("TrainJob", "trainer.kubeflow.org/v1alpha1").spec.trial_template
    assert tt is not None
    assert (tt.success_condition, tt.failure_condition) == (JOB_OK, FAILED)
    assert tt.primary_pod_labels == {"jobset.sigs.k8s.io/replicatedjob-name": "node",
                                     "batch.kubernetes.io/job-completion-index": "0"}


@pytest.mark.parametrize("kind, api", [("Workflow", "argoproj.io/v1alpha1"), ("PipelineRun", "tekton.dev/v1beta1")])
def test_other_kinds_get_no_conditions(kind: str, api: str) -> None:
    tt = _with_kind(kind, api).spec.trial_template
    assert tt is not None
    assert (tt.success_condition, tt.failure_condition, tt.primary_pod_labels) == (None, None, None)


def test_given_conditions_and_labels_are_kept() -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["spec"]["trialTemplate"].update(trialSpec={"apiVersion": "kubeflow.org/v1", "kind": "MPIJob", "spec": {}},
                                          successCondition="status.done", primaryPodLabels={"role": "launcher"})

    tt = experiment(mutate).spec.trial_template
    assert tt is not None
    assert tt.success_condition == "status.done" and tt.failure_condition == FAILED
    assert tt.primary_pod_labels == {"role": "launcher"}


def _configmap_experiment() -> Experiment:
    def mutate(d: dict[str, Any]) -> None:
        tt = d["spec"]["trialTemplate"]
        tt.pop("trialSpec")
        tt["configMap"] = {"configMapName": "templates", "configMapNamespace": "default", "templatePath": "job.yaml"}

    return Experiment.from_dict(experiment_dict(mutate))


def test_configmap_template_conditions_default_when_the_kind_is_known() -> None:
    lookup = ConfigMapLookup([{"kind": "ConfigMap", "metadata": {"name": "templates"},
                               "data": {"job.yaml": "apiVersion: batch/v1\nkind: Job\nspec: {}\n"}}])
    tt = set_defaults(_configmap_experiment(), config_maps=lookup).spec.trial_template
    assert tt is not None and (tt.success_condition, tt.failure_condition) == (JOB_OK, FAILED)


def test_configmap_template_without_lookup_gets_no_conditions_as_upstream() -> None:
    tt = set_defaults(_configmap_experiment()).spec.trial_template
    assert tt is not None and tt.success_condition is None and tt.failure_condition is None


@pytest.mark.parametrize("collector, source", [
    (None, None),
    ({"kind": "StdOut"}, None),
    ({"kind": "File"}, {"fileSystemPath": {"kind": "File", "path": "/var/log/katib/metrics.log", "format": "TEXT"}}),
    ({"kind": "TensorFlowEvent"}, {"fileSystemPath": {"kind": "Directory", "path": "/var/log/katib/tfevent/"}}),
    ({"kind": "PrometheusMetric"}, {"httpGet": {"path": "/metrics", "port": 8080}}),
    ({"kind": "Push"}, None),
])
def test_metrics_collector_defaults(collector: dict[str, Any] | None, source: dict[str, Any] | None) -> None:
    def mutate(d: dict[str, Any]) -> None:
        if collector is not None:
            d["spec"]["metricsCollectorSpec"] = {"collector": dict(collector)}

    mc = experiment(mutate).spec.metrics_collector_spec
    assert mc is not None
    assert mc.to_dict().get("collector") == (collector or {"kind": "StdOut"})
    assert mc.to_dict().get("source") == source


def test_file_collector_keeps_given_source() -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["spec"]["metricsCollectorSpec"] = {"collector": {"kind": "File"},
                                             "source": {"fileSystemPath": {"path": "/out/m.json", "format": "JSON"}}}

    mc = experiment(mutate).spec.metrics_collector_spec
    assert mc is not None and mc.source is not None
    assert mc.source.to_dict() == {"fileSystemPath": {"path": "/out/m.json", "kind": "File", "format": "JSON"}}


def test_defaults_apply_in_place_and_are_idempotent() -> None:
    exp = experiment(defaults=False)
    same = set_defaults(exp)
    assert same is exp
    once = exp.to_dict()
    assert set_defaults(exp).to_dict() == once
