"""How trials and experiments end: goal reached (running trials Killed), failures,
metrics unavailable, and resume policies when maxTrialCount is raised."""

from __future__ import annotations

import time
from typing import Any

import pytest

from katib.backends.kubernetes.client import Kube, Resource
from katib.backends.kubernetes.resources import EXPERIMENTS
from tests.kubernetes.support import (
    PY, condition, finished, metric, running_controller, trial_state, trials_of, wait_for,
)
from tests.kubernetes.test_random_job import experiment

pytestmark = pytest.mark.k8s

JOBS = Resource("batch", "v1", "jobs", "Job")

BY_MODE = """
import sys, time
mode = sys.argv[1]
if mode == "fast":
    print("accuracy=0.95", flush=True)
elif mode == "fail":
    print("accuracy=0.1", flush=True)
    sys.exit(2)
elif mode == "silent":
    print("no metrics here", flush=True)
else:
    print("accuracy=0.5", flush=True)
    time.sleep(120)
"""


def grid_experiment(name: str, ns: str, modes: list[str], **spec: Any) -> dict[str, Any]:
    body = experiment(name, ns, algorithm={"algorithmName": "grid"},
                      parameters=[{"name": "mode", "parameterType": "categorical", "feasibleSpace": {"list": modes}}],
                      parallelTrialCount=len(modes), maxTrialCount=len(modes), maxFailedTrialCount=len(modes),
                      **spec)
    template = body["spec"]["trialTemplate"]
    template["trialParameters"] = [{"name": "mode", "reference": "mode"}]
    container = template["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] = [PY, "-c", BY_MODE, "${trialParameters.mode}"]
    return body


def test_goal_reached_kills_the_running_trials(kube: Kube, k8s_namespace: str) -> None:
    ns = k8s_namespace
    body = grid_experiment("goal", ns, ["fast", "slow-a", "slow-b"])
    body["spec"]["objective"]["goal"] = 0.9
    kube.create(EXPERIMENTS, ns, body)
    with running_controller(kube, ns):
        exp = wait_for("the goal to be reached", finished(kube, ns, "goal"), timeout=120)
        wait_for("the killed trials' Jobs to go", lambda: not kube.list(JOBS, ns)[0], timeout=60)
        wait_for("the killed trials to be counted",
                 lambda: kube.get(EXPERIMENTS, ns, "goal")["status"].get("trialsKilled") == 2, timeout=30)
        exp = kube.get(EXPERIMENTS, ns, "goal")
    assert condition(exp, "Succeeded")["reason"] == "ExperimentGoalReached"  # type: ignore[index]
    status = exp["status"]
    assert status["trialsSucceeded"] == 1 and status["trialsKilled"] == 2 and not status.get("trialsRunning")
    assert sorted(status["killedTrialList"]) == sorted(
        t["metadata"]["name"] for t in trials_of(kube, ns, "goal") if trial_state(t) == "Killed")
    for t in trials_of(kube, ns, "goal"):
        if trial_state(t) == "Killed":
            c = condition(t, "Killed")
            assert c is not None and c["reason"] == "TrialKilled" and "experiment has completed" in c["message"]
            assert metric(t, "accuracy")["latest"] == "0.5"  # type: ignore[index]  # read before it was stopped
            assert t["status"].get("completionTime")


def test_failed_and_silent_trials_fail_the_experiment(kube: Kube, k8s_namespace: str) -> None:
    ns = k8s_namespace
    body = grid_experiment("failing", ns, ["fast", "fail", "silent"])
    body["spec"]["maxFailedTrialCount"] = 2
    # One at a time, in the grid's order: run side by side, "fail" and "silent" can end the
    # experiment while "fast" is still being collected, and the controller rightly kills it.
    body["spec"]["parallelTrialCount"] = 1
    kube.create(EXPERIMENTS, ns, body)
    with running_controller(kube, ns):
        exp = wait_for("the experiment to fail", finished(kube, ns, "failing"), timeout=120)
    failed = condition(exp, "Failed")
    assert failed is not None and failed["reason"] == "ExperimentFailed", exp["status"]
    by_mode = {next(a["value"] for a in t["spec"]["parameterAssignments"]): t for t in trials_of(kube, ns, "failing")}
    assert trial_state(by_mode["fast"]) == "Succeeded"
    assert trial_state(by_mode["fail"]) == "Failed"
    fail = condition(by_mode["fail"], "Failed")
    assert fail is not None and fail["reason"] == "TrialFailed. Job reason: BackoffLimitExceeded"
    assert fail["message"].startswith("Trial has failed. Job message: ")
    assert trial_state(by_mode["silent"]) == "MetricsUnavailable"
    assert exp["status"]["trialsFailed"] == 1 and exp["status"]["trialMetricsUnavailable"] == 1


def test_raising_max_trial_count_restarts_only_a_resumable_experiment(kube: Kube, k8s_namespace: str) -> None:
    ns = k8s_namespace
    kube.create(EXPERIMENTS, ns, experiment("long-running", ns, maxTrialCount=2, parallelTrialCount=2,
                                            resumePolicy="LongRunning"))
    kube.create(EXPERIMENTS, ns, experiment("from-volume", ns, maxTrialCount=2, parallelTrialCount=2,
                                            resumePolicy="FromVolume"))
    kube.create(EXPERIMENTS, ns, experiment("never", ns, maxTrialCount=2, parallelTrialCount=2))
    with running_controller(kube, ns):
        for name in ("long-running", "from-volume", "never"):
            exp = wait_for(f"{name} to finish", finished(kube, ns, name), timeout=120)
            assert condition(exp, "Succeeded")["reason"] == "ExperimentMaxTrialsReached"  # type: ignore[index]
            kube.merge_patch(EXPERIMENTS, ns, name, {"spec": {"maxTrialCount": 3}})

        def restarted_and_done(name: str) -> Any:
            def probe() -> dict[str, Any] | None:
                exp = kube.get(EXPERIMENTS, ns, name)
                done = condition(exp, "Succeeded")
                return exp if exp["status"].get("trials") == 3 and done and done["status"] == "True" else None
            return probe
        for name in ("long-running", "from-volume"):
            exp = wait_for(f"{name} to run a third trial", restarted_and_done(name), timeout=120)
            restarting = condition(exp, "Restarting")
            assert restarting is not None and restarting["reason"] == "ExperimentRestarting"
            assert len(trials_of(kube, ns, name)) == 3
        time.sleep(2.0)  # several reconciles of "never"
        never = kube.get(EXPERIMENTS, ns, "never")
    assert never["status"]["trials"] == 2 and len(trials_of(kube, ns, "never")) == 2
    assert condition(never, "Succeeded")["status"] == "True"  # type: ignore[index]
    assert condition(never, "Restarting") is None
