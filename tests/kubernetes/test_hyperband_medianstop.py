"""Hyperband with the median stopping rule runs every bracket and ends as
ExperimentSuggestionEndReached (upstream can do neither, §13 items 1 and 8); trials the rule
stops have their Job deleted and end EarlyStopped."""

from __future__ import annotations

from typing import Any

import pytest

from katib.backends.kubernetes.client import Kube, Resource
from katib.backends.kubernetes.resources import EXPERIMENTS
from suggestion.hyperband import LABEL_FILLER
from tests.kubernetes.support import (
    PY, condition, finished, metric, running_controller, trial_state, trials_of, wait_for,
)

pytestmark = pytest.mark.k8s

JOBS = Resource("batch", "v1", "jobs", "Job")

# The learning curve depends on the step only, so trials of different budgets compare fairly;
# its height depends on lr. Each step takes a while so the controller sees curves as they grow.
TRAIN = """
import sys, time
args = dict(a.lstrip("-").split("=", 1) for a in sys.argv[1:])
lr, epochs = float(args["lr"]), int(float(args["epochs"]))
quality = 1 - abs(lr - 0.05) * 8
for step in range(1, 3 * epochs + 1):
    print(f"step={step} accuracy={quality * (1 - 0.5 ** step):.6f}", flush=True)
    time.sleep(0.35)
"""


def hyperband_experiment(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "objective": {"type": "maximize", "objectiveMetricName": "accuracy"},
            "algorithm": {"algorithmName": "hyperband", "algorithmSettings": [
                {"name": "r_l", "value": "2"}, {"name": "eta", "value": "2"},
                {"name": "resource_name", "value": "epochs"}, {"name": "random_state", "value": "7"}]},
            "earlyStopping": {"algorithmName": "medianstop", "algorithmSettings": [
                {"name": "min_trials_required", "value": "1"}, {"name": "start_step", "value": "2"}]},
            "parallelTrialCount": 2,
            "parameters": [
                {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.0", "max": "0.1"}},
                {"name": "epochs", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "2"}},
            ],
            "trialTemplate": {
                "primaryContainerName": "training",
                "trialParameters": [{"name": "lr", "reference": "lr"}, {"name": "epochs", "reference": "epochs"}],
                "trialSpec": {
                    "apiVersion": "batch/v1", "kind": "Job",
                    "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [{
                        "name": "training", "image": "python:3.12",
                        "command": [PY, "-c", TRAIN, "--lr=${trialParameters.lr}",
                                    "--epochs=${trialParameters.epochs}"]}]}}},
                },
            },
        },
    }


def test_hyperband_with_medianstop_ends_when_the_search_is_exhausted(kube: Kube, k8s_namespace: str) -> None:
    ns = k8s_namespace
    kube.create(EXPERIMENTS, ns, hyperband_experiment("hyperband", ns))
    with running_controller(kube, ns):
        exp = wait_for("the hyperband experiment to finish", finished(kube, ns, "hyperband"), timeout=240)
        wait_for("the Jobs to be deleted", lambda: not kube.list(JOBS, ns)[0], timeout=60)

    succeeded = condition(exp, "Succeeded")
    assert succeeded is not None and succeeded["status"] == "True", exp["status"]["conditions"]
    assert succeeded["reason"] == "ExperimentSuggestionEndReached"
    everything = trials_of(kube, ns, "hyperband")
    # A reply must hold exactly as many trials as free slots; where the last rung leaves one
    # free, hyperband fills it with a 1-epoch filler trial outside its brackets.
    fillers = [t for t in everything if (t["metadata"].get("labels") or {}).get(LABEL_FILLER)]
    assert len(fillers) <= 1
    assert all(a["value"] == "1" for t in fillers for a in t["spec"]["parameterAssignments"] if a["name"] == "epochs")
    trials = [t for t in everything if t not in fillers]
    # eta=2, r_l=2: bracket s=1 runs 2 configurations at 1 epoch and the best at 2; bracket
    # s=0 runs 2 configurations at 2 epochs: 5 trials, all of them run.
    assert len(trials) == 5
    states = {t["metadata"]["name"]: trial_state(t) for t in everything}
    assert set(states.values()) <= {"Succeeded", "EarlyStopped"}, states
    stopped = [t for t in trials if trial_state(t) == "EarlyStopped"]
    assert stopped, f"the median rule stopped no trial: {states}"
    for t in stopped:
        c = condition(t, "EarlyStopped")
        assert c is not None and c["reason"] == "TrialEarlyStopped" and "medianstop" in c["message"]
        accuracy = metric(t, "accuracy")
        assert accuracy is not None and accuracy["latest"] != "unavailable"
        # Stopped before its last step.
        epochs = int(next(a["value"] for a in t["spec"]["parameterAssignments"] if a["name"] == "epochs"))
        assert float(accuracy["latest"]) < (1 - 0.5 ** (3 * epochs)) * 1.0
    status = exp["status"]
    stopped_fillers = [t for t in fillers if trial_state(t) == "EarlyStopped"]
    assert status["trialsEarlyStopped"] == len(stopped) + len(stopped_fillers)
    assert status["trialsSucceeded"] == len(everything) - status["trialsEarlyStopped"]
    epochs_used = sorted(int(a["value"]) for t in trials for a in t["spec"]["parameterAssignments"]
                         if a["name"] == "epochs")
    assert epochs_used == [1, 1, 2, 2, 2]
