"""Finding the primary container of a rendered run spec, for every trial kind."""

from __future__ import annotations

from typing import Any

import pytest

from katib.api.model import ObjectMeta, Trial
from katib.controller.template import ContainerRef, primary_container
from katib.errors import TemplateError


def _c(name: str, *args: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": f"img-{name}", "command": ["python3"], "args": list(args), **extra}


def _pod(*containers: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"containers": list(containers)}}


def test_job() -> None:
    run = {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": _pod(
        _c("sidecar"), _c("training", "train.py", workingDir="/work",
                          env=[{"name": "A", "value": "1"}, {"name": "POD", "valueFrom": {"fieldRef": {
                              "fieldPath": "metadata.name"}}}]))}}
    ref = primary_container(run, "training")
    assert (ref.name, ref.image, ref.command, ref.args, ref.working_dir) == (
        "training", "img-training", ["python3"], ["train.py"], "/work")
    assert ref.argv == ["python3", "train.py"]
    assert ref.env == [{"name": "A", "value": "1"}, {"name": "POD", "valueFrom": {"fieldRef": {
        "fieldPath": "metadata.name"}}}]
    assert ref.path == "spec.template.spec.containers[1]"


def test_job_without_the_container() -> None:
    run = {"kind": "Job", "spec": {"template": _pod(_c("a"), _c("b"))}}
    with pytest.raises(TemplateError, match="no container named 'main' in the Job's .* \\(containers: 'a', 'b'\\)"):
        primary_container(run, "main")


def test_trainjob() -> None:
    run = {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "spec": {
        "runtimeRef": {"name": "torch-distributed"},
        "trainer": {"numNodes": 2, "image": "img", "command": ["python3", "mnist.py"], "args": ["--lr=0.1"],
                    "env": [{"name": "X", "value": "y"}]}}}
    ref = primary_container(run, "node")
    assert (ref.name, ref.image, ref.argv, ref.env, ref.path) == (
        "node", "img", ["python3", "mnist.py", "--lr=0.1"], [{"name": "X", "value": "y"}], "spec.trainer")
    with pytest.raises(TemplateError, match="no spec.trainer"):
        primary_container({"kind": "TrainJob", "spec": {}}, "node")


@pytest.mark.parametrize("kind, key", [("PyTorchJob", "pytorchReplicaSpecs"), ("TFJob", "tfReplicaSpecs"),
                                       ("XGBoostJob", "xgbReplicaSpecs")])
def test_training_operator_jobs_prefer_master_or_chief(kind: str, key: str) -> None:
    run = {"apiVersion": "kubeflow.org/v1", "kind": kind, "spec": {key: {
        "Worker": {"replicas": 2, "template": _pod(_c("main", "worker.py"))},
        "Chief" if kind == "TFJob" else "Master": {"template": _pod(_c("main", "master.py"))}}}}
    ref = primary_container(run, "main")
    assert ref.args == ["master.py"] and ref.replica in ("Master", "Chief")


def test_tfjob_with_workers_only() -> None:
    run = {"kind": "TFJob", "spec": {"tfReplicaSpecs": {"Worker": {"template": _pod(_c("tensorflow", "w.py"))}}}}
    ref = primary_container(run, "tensorflow")
    assert (ref.replica, ref.path) == ("Worker", "spec.tfReplicaSpecs.Worker.template.spec.containers[0]")


def test_mpijob_launcher() -> None:
    run = {"kind": "MPIJob", "spec": {"mpiReplicaSpecs": {
        "Worker": {"template": _pod(_c("mpi-worker"))},
        "Launcher": {"template": _pod(_c("mpi-launcher", "-np", "2"))}}}}
    ref = primary_container(run, "mpi-launcher")
    assert (ref.replica, ref.args) == ("Launcher", ["-np", "2"])
    with pytest.raises(TemplateError, match="containers: 'mpi-launcher', 'mpi-worker'"):
        primary_container(run, "launcher")


def test_any_replica_specs_kind() -> None:
    run = {"kind": "JAXJob", "spec": {"jaxReplicaSpecs": {"Worker": {"template": _pod(_c("jax", "run.py"))}}}}
    assert primary_container(run, "jax").args == ["run.py"]


ARGO = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "spec": {
    "arguments": {"parameters": [{"name": "epochs", "value": "3"}]},
    "templates": [
        {"name": "hp-workflow", "steps": [[{"name": "prep", "template": "prep"}]]},
        {"name": "prep", "script": {"image": "python", "command": ["python"], "source": "print(1)"}},
        {"name": "model-training", "metadata": {"labels": {"katib.kubeflow.org/model-training": "true"}},
         "inputs": {"parameters": [{"name": "num-examples", "value": "500"}, {"name": "unset"}]},
         "container": {"name": "model-training", "image": "img", "command": ["python3", "train.py"],
                       "args": ["--n={{inputs.parameters.num-examples}}", "--epochs={{ workflow.parameters.epochs }}",
                                "--u={{inputs.parameters.unset}}"]}},
    ]}}


def test_argo_main_container() -> None:
    ref = primary_container(ARGO, "main")
    assert (ref.name, ref.replica, ref.path) == ("main", "model-training", "spec.templates[2].container")
    assert ref.args == ["--n=500", "--epochs=3", "--u={{inputs.parameters.unset}}"]
    labelled = primary_container(ARGO, "main", primary_pod_labels={"katib.kubeflow.org/model-training": "true"})
    assert labelled.replica == "model-training"
    assert primary_container(ARGO, "model-training").replica == "model-training"


def test_argo_ambiguous_main() -> None:
    run = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "spec": {"templates": [
        {"name": "a", "container": {"image": "x"}}, {"name": "b", "container": {"image": "y"}}]}}
    with pytest.raises(TemplateError, match="candidates: a, b.*primaryPodLabels"):
        primary_container(run, "main")


TEKTON = {"apiVersion": "tekton.dev/v1beta1", "kind": "PipelineRun", "spec": {
    "params": [{"name": "lr", "value": "0.02"}],
    "pipelineSpec": {
        "params": [{"name": "lr"}, {"name": "examples", "default": "1000"}],
        "tasks": [
            {"name": "prep", "taskSpec": {"steps": [{"name": "optimize", "image": "python"}]}},
            {"name": "model-training",
             "params": [{"name": "lr", "value": "$(params.lr)"}, {"name": "n", "value": "$(params.examples)"},
                        {"name": "r", "value": "$(tasks.prep.results.n)"}],
             "taskSpec": {"params": [{"name": "lr"}, {"name": "n"}, {"name": "r"}, {"name": "d", "default": "x"}],
                          "steps": [{"name": "model-training", "image": "img", "command": ["python3", "train.py"],
                                     "args": ["--lr=$(params.lr)", "--n=$(params.n)", "--r=$(params.r)",
                                              "--d=$(params.d)"]}]}},
        ]}}}


def test_tekton_step_and_params() -> None:
    ref = primary_container(TEKTON, "step-model-training")
    assert (ref.name, ref.replica, ref.path) == (
        "step-model-training", "model-training", "spec.pipelineSpec.tasks[1].taskSpec.steps[0]")
    assert ref.args == ["--lr=0.02", "--n=1000", "--r=$(tasks.prep.results.n)", "--d=x"]
    with pytest.raises(TemplateError, match="containers: step-optimize, step-model-training"):
        primary_container(TEKTON, "step-train")
    with pytest.raises(TemplateError, match="pipelineRef"):
        primary_container({"kind": "PipelineRun", "spec": {"pipelineRef": {"name": "p"}}}, "step-x")


def test_other_kinds_are_searched() -> None:
    run = {"apiVersion": "example.com/v1", "kind": "Custom", "spec": {"stages": [
        {"pods": [{"containers": [_c("helper")]}]}, {"pods": [{"containers": [_c("trainer", "fit")]}]}]}}
    ref = primary_container(run, "trainer")
    assert ref.args == ["fit"] and ref.path == "spec.stages[1].pods[0].containers[0]"
    with pytest.raises(TemplateError, match="containers found: 'helper', 'trainer'"):
        primary_container(run, "missing")


def test_resolve_env() -> None:
    ref = ContainerRef(name="c", env=[
        {"name": "BASE", "value": "/data"},
        {"name": "PATHS", "value": "$(BASE)/train:$(UNKNOWN):$$(BASE)"},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "EXP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['katib.kubeflow.org/experiment']"}}},
        {"name": "TRIAL", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['katib.kubeflow.org/trial']"}}},
        {"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        {"name": "EMPTY"},
    ])
    trial = Trial(metadata=ObjectMeta(name="demo-1", namespace="team",
                                      labels={"katib.kubeflow.org/experiment": "demo"}))
    assert ref.resolve_env(trial) == {"BASE": "/data", "PATHS": "/data/train:$(UNKNOWN):$(BASE)", "POD": "demo-1",
                                      "NS": "team", "EXP": "demo", "TRIAL": "demo-1", "EMPTY": ""}
