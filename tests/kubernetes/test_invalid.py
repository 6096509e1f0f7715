"""An invalid experiment is refused with katib.api's messages and gets no trials."""

from __future__ import annotations

import time

import pytest

from katib.backends.kubernetes.client import Kube
from katib.backends.kubernetes.resources import EXPERIMENTS
from tests.kubernetes.support import condition, finished, running_controller, trials_of, wait_for
from tests.kubernetes.test_random_job import experiment

pytestmark = pytest.mark.k8s


def test_invalid_experiment_fails_with_every_message_and_no_trials(kube: Kube, k8s_namespace: str) -> None:
    ns = k8s_namespace
    body = experiment("bad-exp", ns, parallelTrialCount=5, maxTrialCount=2)
    body["spec"]["parameters"][0]["feasibleSpace"] = {"min": "0.5", "max": "0.1"}
    body["spec"]["trialTemplate"]["trialParameters"].append({"name": "unused", "reference": "nope"})
    kube.create(EXPERIMENTS, ns, body)
    # A valid one next to it runs: one bad experiment does not hold the controller up.
    kube.create(EXPERIMENTS, ns, experiment("good-exp", ns, maxTrialCount=1, parallelTrialCount=1,
                                            maxFailedTrialCount=1))
    with running_controller(kube, ns):
        exp = wait_for("the invalid experiment to fail", finished(kube, ns, "bad-exp"), timeout=60)
        wait_for("the valid experiment to finish", finished(kube, ns, "good-exp"), timeout=120)
        time.sleep(1.0)  # a few more reconciles: still nothing created for it
        assert trials_of(kube, ns, "bad-exp") == []
    failed = condition(exp, "Failed")
    assert failed is not None and failed["status"] == "True" and failed["reason"] == "ExperimentFailed"
    message = failed["message"]
    assert message.startswith("Experiment validation failed: ")
    # Every problem, each with its field path.
    assert "spec.parallelTrialCount" in message  # 5 > maxTrialCount 2
    assert "spec.parameters[0].feasibleSpace" in message  # min above max
    assert "spec.trialTemplate.trialParameters" in message  # references an unknown parameter
    assert condition(exp, "Succeeded") is None
    assert exp["status"].get("completionTime")
    good = kube.get(EXPERIMENTS, ns, "good-exp")
    assert (condition(good, "Succeeded") or {}).get("status") == "True", good["status"]["conditions"]
