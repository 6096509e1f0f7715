"""A random-search experiment with a batch Job trial template runs to Succeeded."""

from __future__ import annotations

from typing import Any

import pytest

from katib.backends.kubernetes.client import Kube, Resource
from katib.backends.kubernetes.resources import EXPERIMENTS
from tests.kubernetes.support import (
    PY, condition, finished, metric, running_controller, trial_state, trials_of, wait_for,
)

pytestmark = pytest.mark.k8s

JOBS = Resource("batch", "v1", "jobs", "Job")

# accuracy peaks at lr = 0.05; loss goes down epoch by epoch.
TRAIN = """
import sys, time
args = dict(a.lstrip("-").split("=", 1) for a in sys.argv[1:])
lr, layers = float(args["lr"]), int(args["layers"])
for epoch in range(1, 4):
    acc = (1 - abs(lr - 0.05) - 0.01 * layers) * epoch / 3
    print(f"epoch={epoch} accuracy={acc:.6f} loss={1 - acc:.6f}", flush=True)
    time.sleep(0.1)
"""


def experiment(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"team": "katib"}},
        "spec": {
            "objective": {"type": "maximize", "objectiveMetricName": "accuracy", "additionalMetricNames": ["loss"]},
            "algorithm": {"algorithmName": "random"},
            "parallelTrialCount": 2, "maxTrialCount": 4, "maxFailedTrialCount": 2,
            "parameters": [
                {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.01", "max": "0.1"}},
                {"name": "layers", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "4"}},
            ],
            "trialTemplate": {
                "primaryContainerName": "training",
                "trialParameters": [{"name": "learningRate", "reference": "lr"},
                                    {"name": "numLayers", "reference": "layers"}],
                "trialSpec": {
                    "apiVersion": "batch/v1", "kind": "Job",
                    "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [{
                        "name": "training", "image": "python:3.12",
                        "command": [PY, "-c", TRAIN, "--lr=${trialParameters.learningRate}",
                                    "--layers=${trialParameters.numLayers}"]}]}}},
                },
            },
        },
    }
    body["spec"].update(spec)
    return body


def test_random_search_with_job_trials_succeeds(kube: Kube, k8s_namespace: str) -> None:
    ns = k8s_namespace
    kube.create(EXPERIMENTS, ns, experiment("random-job", ns))
    with running_controller(kube, ns):
        exp = wait_for("the experiment to finish", finished(kube, ns, "random-job"), timeout=180)
        # Completed trials' Jobs are deleted (retain is false) by the same controller.
        wait_for("the Jobs to be deleted", lambda: not kube.list(JOBS, ns)[0], timeout=60)

    status = exp["status"]
    succeeded = condition(exp, "Succeeded")
    assert succeeded is not None and succeeded["reason"] == "ExperimentMaxTrialsReached", status["conditions"]
    assert condition(exp, "Created")["status"] == "True"  # type: ignore[index]
    assert condition(exp, "Running")["status"] == "False"  # type: ignore[index]
    assert status["trials"] == 4 and status["trialsSucceeded"] == 4
    assert len(status["succeededTrialList"]) == 4
    assert status.get("completionTime") and status.get("startTime")

    trials = trials_of(kube, ns, "random-job")
    assert len(trials) == 4
    best_value = max(float(metric(t, "accuracy")["max"]) for t in trials)  # type: ignore[index]
    optimal = status["currentOptimalTrial"]
    best = next(t for t in trials if t["metadata"]["name"] == optimal["bestTrialName"])
    assert float(metric(best, "accuracy")["max"]) == best_value  # type: ignore[index]
    assert {a["name"] for a in optimal["parameterAssignments"]} == {"lr", "layers"}
    for t in trials:
        meta = t["metadata"]
        assert trial_state(t) == "Succeeded"
        assert meta["name"].startswith("random-job-") and len(meta["name"]) == len("random-job-") + 8
        assert meta["labels"]["katib.kubeflow.org/experiment"] == "random-job"
        assert meta["labels"]["team"] == "katib"
        owner = meta["ownerReferences"][0]
        assert owner["kind"] == "Experiment" and owner["name"] == "random-job" and owner["controller"]
        spec = t["spec"]
        assert spec["runSpec"]["metadata"]["name"] == meta["name"]
        assert spec["successCondition"].startswith("status.conditions.#(type==\"Complete\")#")
        assert {m["name"] for m in spec["objective"]["metricStrategies"]} == {"accuracy", "loss"}
        loss = metric(t, "loss")
        accuracy = metric(t, "accuracy")
        assert loss is not None and accuracy is not None
        # Three epochs were read: latest is the last one, min/max over all of them.
        assert float(accuracy["latest"]) == float(accuracy["max"]) > float(accuracy["min"])
        assert float(loss["latest"]) == float(loss["min"])


def test_trial_template_from_a_configmap(kube: Kube, k8s_namespace: str) -> None:
    import json

    from katib.backends.kubernetes.resources import CONFIGMAPS

    ns = k8s_namespace
    body = experiment("from-configmap", ns, maxTrialCount=2, parallelTrialCount=2)
    template = body["spec"]["trialTemplate"]
    kube.create(CONFIGMAPS, ns, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "trial-templates"},
                                 "data": {"job.yaml": json.dumps(template.pop("trialSpec"))}})
    template["configMap"] = {"configMapName": "trial-templates", "configMapNamespace": ns, "templatePath": "job.yaml"}
    kube.create(EXPERIMENTS, ns, body)
    with running_controller(kube, ns):
        exp = wait_for("the experiment to finish", finished(kube, ns, "from-configmap"), timeout=120)
    assert (condition(exp, "Succeeded") or {}).get("reason") == "ExperimentMaxTrialsReached", exp["status"]
    trials = trials_of(kube, ns, "from-configmap")
    assert len(trials) == 2 and all(trial_state(t) == "Succeeded" for t in trials)
    # The Job defaults apply to a ConfigMap template too (upstream leaves them out, §13 item 11).
    assert all(t["spec"]["successCondition"].startswith('status.conditions.#(type=="Complete")#') for t in trials)
