"""Trials of the Kubeflow training-operator kinds (PyTorchJob, TFJob, XGBoostJob, MPIJob) and
of Tekton PipelineRuns on the real test control plane. Each test installs a minimal CRD for
the kind, plays its operator (``tests.kubernetes.operators.OperatorPlayer``) and runs a
two-trial random search whose trial template is shaped like upstream's example for the kind.

The non-primary replicas / tasks print a different metric value, so an observation that
mixed their logs in would show up in ``min``/``max``."""

from __future__ import annotations

from typing import Any

import pytest

from katib.backends.kubernetes.client import Kube
from katib.backends.kubernetes.resources import EXPERIMENTS
from tests.kubernetes import crds
from tests.kubernetes.operators import KINDS, OperatorPlayer, crd_for
from tests.kubernetes.support import (
    PY,
    condition,
    finished,
    metric,
    running_controller,
    trial_state,
    trials_of,
    wait_for,
)

pytestmark = pytest.mark.k8s

TRAIN = """
import os, sys
args = dict(a.lstrip("-").split("=", 1) for a in sys.argv[1:])
if args.get("role") == "worker":
    print("accuracy=0.000001", flush=True)  # not the primary replica: must not be collected
    sys.exit(0)
assert os.environ["KATIB_TRIAL_NAME"], "the controller injects it into the primary container"
lr = float(args["lr"])
print(f"accuracy={1 - abs(lr - 0.02):.6f}", flush=True)
if lr > 1:
    sys.exit("diverged")
"""

LR = "--lr=${trialParameters.learningRate}"


def _command(*extra: str) -> list[str]:
    return [PY, "-c", TRAIN, LR, *extra]


def _replica(container: str, *extra: str, replicas: int = 1, restart: str = "OnFailure",
             command: bool = True) -> dict[str, Any]:
    c: dict[str, Any] = {"name": container, "image": "docker.io/kubeflowkatib/trial:latest"}
    if command:
        c["command"] = _command(*extra)
    return {"replicas": replicas, "restartPolicy": restart, "template": {"spec": {"containers": [c]}}}


# kind -> (trialTemplate fields other than trialParameters, expected primaryPodLabels on the Trial)
TEMPLATES: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
    # pytorchjob-mnist.yaml: Master + Worker, conditions and labels defaulted.
    "PyTorchJob": ({
        "primaryContainerName": "pytorch",
        "trialSpec": {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "spec": {"pytorchReplicaSpecs": {
            "Master": _replica("pytorch"),
            "Worker": _replica("pytorch", "--role=worker")}}},
    }, {"training.kubeflow.org/job-role": "master"}),
    # A TFJob with a Chief (the operator's master role) and Workers, defaults as upstream's.
    "TFJob": ({
        "primaryContainerName": "tensorflow",
        "trialSpec": {"apiVersion": "kubeflow.org/v1", "kind": "TFJob", "spec": {"tfReplicaSpecs": {
            "Chief": _replica("tensorflow"),
            "Worker": _replica("tensorflow", "--role=worker", replicas=2)}}},
    }, {"training.kubeflow.org/job-role": "master"}),
    # xgboostjob-lightgbm.yaml: Master + Workers.
    "XGBoostJob": ({
        "primaryContainerName": "xgboost",
        "trialSpec": {"apiVersion": "kubeflow.org/v1", "kind": "XGBoostJob", "spec": {"xgbReplicaSpecs": {
            "Master": _replica("xgboost", restart="Never"),
            "Worker": _replica("xgboost", "--role=worker", restart="ExitCode")}}},
    }, {"training.kubeflow.org/job-role": "master"}),
    # mpijob-horovod.yaml: Launcher runs the training, Workers only serve it; the example sets
    # the conditions and primary pod labels itself.
    "MPIJob": ({
        "primaryContainerName": "mpi-launcher",
        "primaryPodLabels": {"mpi-job-role": "launcher"},
        "successCondition": 'status.conditions.#(type=="Succeeded")#|#(status=="True")#',
        "failureCondition": 'status.conditions.#(type=="Failed")#|#(status=="True")#',
        "trialSpec": {"apiVersion": "kubeflow.org/v1", "kind": "MPIJob", "spec": {
            "slotsPerWorker": 1, "cleanPodPolicy": "Running", "mpiReplicaSpecs": {
                "Launcher": _replica("mpi-launcher"),
                "Worker": _replica("mpi-worker", replicas=2, command=False)}}},
    }, {"mpi-job-role": "launcher"}),
    # tekton-pipeline-run.yaml: two tasks, the metrics in the model-training task's step.
    "PipelineRun": ({
        "primaryContainerName": "step-model-training",
        "primaryPodLabels": {"tekton.dev/pipelineTask": "model-training"},
        "successCondition": 'status.conditions.#(type=="Succeeded")#|#(status=="True")#',
        "failureCondition": 'status.conditions.#(type=="Succeeded")#|#(status=="False")#',
        "trialSpec": {"apiVersion": "tekton.dev/v1", "kind": "PipelineRun", "spec": {
            "params": [{"name": "lr", "value": "${trialParameters.learningRate}"}],
            "pipelineSpec": {
                "params": [{"name": "lr", "description": "Learning rate"}],
                "tasks": [
                    {"name": "data-preprocessing", "taskSpec": {"steps": [{
                        "name": "prepare", "image": "python:3.12-alpine",
                        "command": [PY, "-c", TRAIN, "--lr=$(params.lr)", "--role=worker"]}]},
                     "params": [{"name": "lr", "value": "$(params.lr)"}]},
                    {"name": "model-training", "runAfter": ["data-preprocessing"],
                     "params": [{"name": "lr", "value": "$(params.lr)"}],
                     "taskSpec": {"params": [{"name": "lr"}], "steps": [{
                         "name": "model-training", "image": "docker.io/kubeflowkatib/trial:latest",
                         "command": [PY, "-c", TRAIN, "--lr=$(params.lr)"]}]}},
                ]}}},
    }, {"tekton.dev/pipelineTask": "model-training"}),
}


def _experiment(kind: str, ns: str, name: str, lr_range: tuple[str, str]) -> dict[str, Any]:
    template, _ = TEMPLATES[kind]
    return {
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "objective": {"type": "maximize", "objectiveMetricName": "accuracy"},
            "algorithm": {"algorithmName": "random"},
            "parallelTrialCount": 2, "maxTrialCount": 2, "maxFailedTrialCount": 2,
            "parameters": [{"name": "lr", "parameterType": "double",
                            "feasibleSpace": {"min": lr_range[0], "max": lr_range[1]}}],
            "trialTemplate": {"trialParameters": [{"name": "learningRate", "reference": "lr"}], **template},
        },
    }


@pytest.mark.parametrize("kind", list(TEMPLATES))
def test_operator_kind_trials(kube: Kube, k8s_namespace: str, kind: str) -> None:
    ns, name = k8s_namespace, f"{kind.lower()}-random"
    workload = KINDS[kind]
    crds.install(kube, [crd_for(workload)])
    primary_labels = TEMPLATES[kind][1]
    kube.create(EXPERIMENTS, ns, _experiment(kind, ns, name, ("0.01", "0.03")))
    with OperatorPlayer(kube, ns, workload) as operator, running_controller(kube, ns):
        exp = wait_for(f"the {kind} experiment to finish", finished(kube, ns, name), timeout=90)

    assert (condition(exp, "Succeeded") or {}).get("reason") == "ExperimentMaxTrialsReached", exp["status"]
    assert exp["status"]["trials"] == 2 and exp["status"]["trialsSucceeded"] == 2, exp["status"]
    trials = trials_of(kube, ns, name)
    assert len(trials) == 2
    assert set(operator.pods) == {t["metadata"]["name"] for t in trials}, operator.pods
    for t in trials:
        assert trial_state(t) == "Succeeded", t["status"]
        assert t["spec"]["primaryPodLabels"] == primary_labels
        succeeded = condition(t, "Succeeded")
        assert succeeded is not None and succeeded["message"].startswith("Trial has succeeded. Job message: "), t
        lr = float(next(p["value"] for p in t["spec"]["parameterAssignments"] if p["name"] == "lr"))
        accuracy = metric(t, "accuracy")
        assert accuracy is not None, t["status"]
        # Only the primary pod's log: the other replicas' 0.000001 would be the min.
        expected = round(1 - abs(lr - 0.02), 6)
        assert float(accuracy["min"]) == float(accuracy["max"]) == float(accuracy["latest"]) == expected, accuracy
    best = exp["status"]["currentOptimalTrial"]
    assert best["bestTrialName"] in {t["metadata"]["name"] for t in trials}


# The two shapes of failure condition: the training operator's Failed=True, Tekton's Succeeded=False.
@pytest.mark.parametrize(("kind", "job_reason"), [("PyTorchJob", "PyTorchJobFailed"), ("PipelineRun", "Failed")])
def test_operator_kind_trials_fail(kube: Kube, k8s_namespace: str, kind: str, job_reason: str) -> None:
    ns, name = k8s_namespace, f"{kind.lower()}-diverges"
    workload = KINDS[kind]
    crds.install(kube, [crd_for(workload)])
    kube.create(EXPERIMENTS, ns, _experiment(kind, ns, name, ("2", "3")))  # lr > 1: the primary exits 1
    with OperatorPlayer(kube, ns, workload), running_controller(kube, ns):
        exp = wait_for(f"the {kind} experiment to fail", finished(kube, ns, name), timeout=90)

    assert (condition(exp, "Failed") or {}).get("status") == "True", exp["status"]
    assert exp["status"]["trialsFailed"] == 2, exp["status"]
    for t in trials_of(kube, ns, name):
        assert trial_state(t) == "Failed", t["status"]
        failed = condition(t, "Failed")
        assert failed is not None and failed["reason"] == f"TrialFailed. Job reason: {job_reason}", failed
