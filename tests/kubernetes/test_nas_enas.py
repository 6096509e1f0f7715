"""The ENAS example on Kubernetes: the controller asks the shared suggestion service (`katib
suggestion serve`) for architectures, and Job trials run the package's child trainer."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from katib.backends.kubernetes.client import Kube
from katib.backends.kubernetes.resources import EXPERIMENTS
from katib.backends.kubernetes.services import Services
from suggestion.service import serve
from tests.kubernetes.support import PY, condition, finished, metric, running_controller, trial_state, trials_of, wait_for
from tests.nas.conftest import need_torch

pytestmark = [pytest.mark.k8s, pytest.mark.slow]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "nas" / "enas-cpu.yaml"


def test_the_enas_example_runs_through_the_shared_suggestion_service(kube: Kube, k8s_namespace: str) -> None:
    need_torch()
    ns = k8s_namespace
    body = yaml.safe_load(EXAMPLE.read_text())
    body["metadata"]["namespace"] = ns
    body["spec"].update(maxTrialCount=3, parallelTrialCount=2)
    container = body["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    # The test kubelet runs containers on this host: the interpreter that has the nas extra.
    container["command"] = [PY if a == "python3" else a for a in container["command"]]
    server = serve(0, "127.0.0.1")  # every built-in algorithm, as `katib suggestion serve`
    try:
        kube.create(EXPERIMENTS, ns, body)
        services = Services({"enas": f"127.0.0.1:{server.port}"}, suggestion_timeout=30, suggestion_retries=2)
        with running_controller(kube, ns, services=services):
            exp = wait_for("the ENAS experiment to finish", finished(kube, ns, "enas-cpu"), timeout=300)
        services.close()
    finally:
        server.stop(0)

    assert (condition(exp, "Succeeded") or {}).get("reason") == "ExperimentMaxTrialsReached", exp["status"]
    trials = trials_of(kube, ns, "enas-cpu")
    assert [trial_state(t) for t in trials] == ["Succeeded"] * 3
    for t in trials:
        assigned = {a["name"]: a["value"] for a in t["spec"]["parameterAssignments"]}
        assert set(assigned) == {"architecture", "nn_config"}
        accuracy = metric(t, "Validation-Accuracy")
        assert accuracy is not None and 0.0 <= float(accuracy["max"]) <= 1.0
    optimal = exp["status"]["currentOptimalTrial"]
    assert {a["name"] for a in optimal["parameterAssignments"]} == {"architecture", "nn_config"}
