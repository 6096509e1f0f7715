"""An Argo Workflow trial (any kind works): the test installs a minimal Workflow CRD and plays
Argo, running each container template as a pod named after its step, in order, with the
template's labels and Argo's container name ``main``; ``status.phase`` follows the pods.
The conditions are the upstream example's phase-based GJSON paths."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from katib.backends.kubernetes.client import ApiError, Kube, Resource
from katib.backends.kubernetes.resources import EXPERIMENTS, PODS, owner_reference
from tests.kubernetes import crds
from tests.kubernetes.support import (
    PY, condition, finished, metric, running_controller, trial_state, trials_of, wait_for,
)

pytestmark = pytest.mark.k8s

WORKFLOWS = Resource("argoproj.io", "v1alpha1", "workflows", "Workflow")
WORKFLOW_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "workflows.argoproj.io"},
    "spec": {"group": "argoproj.io", "scope": "Namespaced",
             "names": {"kind": "Workflow", "plural": "workflows", "singular": "workflow", "listKind": "WorkflowList"},
             "versions": [{"name": "v1alpha1", "served": True, "storage": True, "subresources": {"status": {}},
                           "schema": {"openAPIV3Schema": {"type": "object",
                                                          "x-kubernetes-preserve-unknown-fields": True}}}]},
}

TRAIN = """
import os, sys
lr = float(sys.argv[1].split("=")[1])
assert os.environ["KATIB_TRIAL_NAME"]  # injected into the primary template's container only
for epoch in (1, 2):
    print(f"Validation-accuracy={(1 - abs(lr - 0.02)) * epoch / 2:.6f}", flush=True)
"""


class FakeArgo(threading.Thread):
    def __init__(self, kube: Kube, namespace: str) -> None:
        super().__init__(name="fake-argo", daemon=True)
        self.kube, self.namespace = kube, namespace
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            try:
                for wf in self.kube.list(WORKFLOWS, self.namespace)[0]:
                    self._sync(wf)
            except ApiError:
                pass

    def _sync(self, wf: dict[str, Any]) -> None:
        meta = wf["metadata"]
        if meta.get("deletionTimestamp") or (wf.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return
        steps = [t for t in wf["spec"]["templates"] if "container" in t]
        phase = "Running"
        for template in steps:
            name = f"{meta['name']}-{template['name']}"
            pod = self.kube.get_or_none(PODS, self.namespace, name)
            if pod is None:
                container = dict(template["container"], name="main")
                labels = {**((template.get("metadata") or {}).get("labels") or {}),
                          "workflows.argoproj.io/workflow": meta["name"]}
                self.kube.create(PODS, self.namespace, {
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "labels": labels, "ownerReferences": [owner_reference(wf)]},
                    "spec": {"restartPolicy": "Never", "containers": [container]}})
                break
            pod_phase = (pod.get("status") or {}).get("phase")
            if pod_phase == "Failed":
                phase = "Failed"
                break
            if pod_phase != "Succeeded":
                break
        else:
            phase = "Succeeded"
        if (wf.get("status") or {}).get("phase") != phase:
            wf["status"] = {"phase": phase, "message": f"workflow {phase.lower()}"}
            self.kube.replace_status(WORKFLOWS, wf)


def test_argo_workflow_trials(kube: Kube, k8s_namespace: str) -> None:
    ns = k8s_namespace
    crds.install(kube, [WORKFLOW_CRD])
    body = {
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
        "metadata": {"name": "argo", "namespace": ns},
        "spec": {
            "objective": {"type": "maximize", "objectiveMetricName": "Validation-accuracy"},
            "algorithm": {"algorithmName": "random"},
            "parallelTrialCount": 2, "maxTrialCount": 2, "maxFailedTrialCount": 1,
            "parameters": [{"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.01", "max": "0.03"}}],
            "trialTemplate": {
                "primaryPodLabels": {"katib.kubeflow.org/model-training": "true"},
                "primaryContainerName": "main",
                "successCondition": 'status.[@this].#(phase=="Succeeded")#',
                "failureCondition": 'status.[@this].#(phase=="Failed")#',
                "trialParameters": [{"name": "learningRate", "reference": "lr"}],
                "trialSpec": {
                    "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
                    "spec": {"entrypoint": "hp-workflow", "templates": [
                        {"name": "hp-workflow", "steps": [[{"name": "prepare", "template": "prepare"}],
                                                          [{"name": "train", "template": "model-training"}]]},
                        {"name": "prepare", "container": {"image": "alpine", "command": [PY, "-c", "print('ready')"]}},
                        {"name": "model-training",
                         "metadata": {"labels": {"katib.kubeflow.org/model-training": "true"}},
                         "container": {"image": "python:3.12", "command": [
                             PY, "-c", TRAIN, "--lr=${trialParameters.learningRate}"]}},
                    ]},
                },
            },
        },
    }
    kube.create(EXPERIMENTS, ns, body)
    argo = FakeArgo(kube, ns)
    argo.start()
    try:
        with running_controller(kube, ns):
            exp = wait_for("the Argo experiment to finish", finished(kube, ns, "argo"), timeout=180)
    finally:
        argo.stop.set()
        argo.join(5)
    assert (condition(exp, "Succeeded") or {}).get("reason") == "ExperimentMaxTrialsReached", exp["status"]
    for t in trials_of(kube, ns, "argo"):
        assert trial_state(t) == "Succeeded"
        succeeded = condition(t, "Succeeded")
        assert succeeded is not None and succeeded["message"] == "Trial has succeeded. Job message: workflow succeeded"
        accuracy = metric(t, "Validation-accuracy")
        assert accuracy is not None and float(accuracy["max"]) > float(accuracy["min"])
