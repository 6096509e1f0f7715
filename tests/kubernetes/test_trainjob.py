"""A Trainer TrainJob (trainer.kubeflow.org/v1alpha1) experiment: the test installs a minimal
TrainJob CRD and plays the Trainer controller, which runs each TrainJob's trainer command in
a Job whose pods carry the JobSet labels (so the controller must find them through the
TrainJob's default primaryPodLabels and the owner chain pod -> Job -> TrainJob -> Trial)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from katib.backends.kubernetes.client import ApiError, Kube, Resource
from katib.backends.kubernetes.resources import EXPERIMENTS, owner_reference
from tests.kubernetes import crds
from tests.kubernetes.support import (
    PY, condition, finished, metric, running_controller, trial_state, trials_of, wait_for,
)

pytestmark = pytest.mark.k8s

TRAINJOBS = Resource("trainer.kubeflow.org", "v1alpha1", "trainjobs", "TrainJob")
JOBS = Resource("batch", "v1", "jobs", "Job")

TRAINJOB_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "trainjobs.trainer.kubeflow.org"},
    "spec": {"group": "trainer.kubeflow.org", "scope": "Namespaced",
             "names": {"kind": "TrainJob", "plural": "trainjobs", "singular": "trainjob", "listKind": "TrainJobList"},
             "versions": [{"name": "v1alpha1", "served": True, "storage": True, "subresources": {"status": {}},
                           "schema": {"openAPIV3Schema": {"type": "object",
                                                          "x-kubernetes-preserve-unknown-fields": True}}}]},
}

TRAIN = """
import sys, time
args = dict(a.lstrip("-").split("=", 1) for a in sys.argv[1:])
lr, momentum = float(args["lr"]), float(args["momentum"])
for epoch in range(1, 4):
    loss = (abs(lr - 0.03) + abs(momentum - 0.7)) / epoch
    print(f"epoch {epoch}: loss={loss:.6f}", flush=True)
    time.sleep(0.1)
"""


class FakeTrainer(threading.Thread):
    """What the Trainer controller does, reduced to what Katib sees: one Job per TrainJob
    running ``spec.trainer.command`` in a container named ``node``; TrainJob ``Complete`` or
    ``Failed`` when the Job ends."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        super().__init__(name="fake-trainer", daemon=True)
        self.kube = kube
        self.namespace = namespace
        self.stop = threading.Event()
        self.created: list[str] = []

    def run(self) -> None:
        while not self.stop.wait(0.2):
            try:
                for tj in self.kube.list(TRAINJOBS, self.namespace)[0]:
                    self._sync(tj)
            except ApiError:
                pass  # try again next round

    def _sync(self, tj: dict[str, Any]) -> None:
        meta = tj["metadata"]
        if meta.get("deletionTimestamp") or condition(tj, "Complete") or condition(tj, "Failed"):
            return
        name = f"{meta['name']}-node-0"
        job = self.kube.get_or_none(JOBS, self.namespace, name)
        if job is None:
            trainer = tj["spec"]["trainer"]
            self.kube.create(JOBS, self.namespace, {
                "apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": name, "ownerReferences": [owner_reference(tj)]},
                "spec": {"backoffLimit": 0, "template": {
                    "metadata": {"labels": {"jobset.sigs.k8s.io/replicatedjob-name": "node",
                                            "batch.kubernetes.io/job-completion-index": "0"}},
                    "spec": {"restartPolicy": "Never", "containers": [{
                        "name": "node", "image": trainer.get("image", "x"),
                        "command": trainer["command"], "args": trainer.get("args") or [],
                        "env": trainer.get("env") or []}]}}},
            })
            self.created.append(meta["name"])
            return
        for type_ in ("Complete", "Failed"):
            c = condition(job, type_)
            if c is not None and c["status"] == "True":
                tj["status"] = {"conditions": [{"type": type_, "status": "True",
                                                "reason": "JobsCompleted" if type_ == "Complete" else "JobsFailed",
                                                "message": f"trainer job {name} {type_.lower()}",
                                                "lastTransitionTime": c.get("lastTransitionTime")}]}
                self.kube.replace_status(TRAINJOBS, tj)


def test_trainjob_experiment_succeeds(kube: Kube, k8s_namespace: str) -> None:
    ns = k8s_namespace
    crds.install(kube, [TRAINJOB_CRD])
    body = {
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
        "metadata": {"name": "torch-distributed", "namespace": ns},
        "spec": {
            "parallelTrialCount": 2, "maxTrialCount": 3, "maxFailedTrialCount": 1,
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "random"},
            "parameters": [
                {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.01", "max": "0.05"}},
                {"name": "momentum", "parameterType": "double", "feasibleSpace": {"min": "0.5", "max": "0.9"}},
            ],
            "trialTemplate": {
                "primaryContainerName": "node",
                "trialParameters": [{"name": "learningRate", "reference": "lr"},
                                    {"name": "momentum", "reference": "momentum"}],
                "trialSpec": {
                    "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob",
                    "spec": {"runtimeRef": {"name": "torch-distributed"},
                             "trainer": {"numNodes": 1, "image": "docker.io/kubeflowkatib/pytorch-mnist",
                                         "command": [PY, "-c", TRAIN, "--lr=${trialParameters.learningRate}",
                                                     "--momentum=${trialParameters.momentum}"]}},
                },
            },
        },
    }
    kube.create(EXPERIMENTS, ns, body)
    trainer = FakeTrainer(kube, ns)
    trainer.start()
    try:
        with running_controller(kube, ns):
            exp = wait_for("the TrainJob experiment to finish", finished(kube, ns, "torch-distributed"), timeout=180)
            wait_for("the TrainJobs to be deleted", lambda: not kube.list(TRAINJOBS, ns)[0], timeout=60)
    finally:
        trainer.stop.set()
        trainer.join(5)

    succeeded = condition(exp, "Succeeded")
    assert succeeded is not None and succeeded["reason"] == "ExperimentMaxTrialsReached", exp["status"]
    status = exp["status"]
    assert status["trials"] == 3 and status["trialsSucceeded"] == 3
    trials = trials_of(kube, ns, "torch-distributed")
    assert sorted(trainer.created) == sorted(t["metadata"]["name"] for t in trials)
    for t in trials:
        assert trial_state(t) == "Succeeded"
        # The defaults for TrainJob (§1.6) were copied to the trial.
        assert t["spec"]["primaryPodLabels"] == {"jobset.sigs.k8s.io/replicatedjob-name": "node",
                                                 "batch.kubernetes.io/job-completion-index": "0"}
        assert "Job reason: JobsCompleted" in condition(t, "Succeeded")["reason"]  # type: ignore[index]
        loss = metric(t, "loss")
        assert loss is not None and float(loss["min"]) == float(loss["latest"]) < float(loss["max"])
    best = status["currentOptimalTrial"]
    values = {t["metadata"]["name"]: float(metric(t, "loss")["min"]) for t in trials}  # type: ignore[index]
    assert values[best["bestTrialName"]] == min(values.values())
