"""examples/nas/darts-cpu.yaml on the test control plane: the controller asks the shared
suggestion service (over gRPC, as katib-config routes darts) and the trial Job runs the
packaged supernet trainer; the genotype ends up in the trial's observation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from katib.backends.kubernetes.client import Kube
from katib.backends.kubernetes.resources import EXPERIMENTS
from katib.backends.kubernetes.services import Services
from suggestion.service import serve
from tests.kubernetes.support import PY, condition, finished, metric, running_controller, trials_of, wait_for
from tests.nas.conftest import need_torch

pytestmark = pytest.mark.k8s

EXAMPLE = Path(__file__).resolve().parents[2] / "examples/nas/darts-cpu.yaml"
TINY = {"num_epochs": "1", "batch_size": "32", "init_channels": "2", "num_nodes": "2", "stem_multiplier": "1"}


def _experiment(namespace: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    doc["metadata"]["namespace"] = namespace
    spec = doc["spec"]
    spec["algorithm"]["algorithmSettings"] = [{"name": k, "value": v} for k, v in TINY.items()]
    (container,) = spec["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"]
    assert container["command"][:3] == ["python3", "-m", "katib.trainers.darts"]
    container["command"] = [PY, *container["command"][1:], "--data-limit=64"]  # the kubelet runs it here
    return doc


def test_darts_example_runs_through_the_shared_suggestion_service(kube: Kube, k8s_namespace: str) -> None:
    need_torch()
    ns = k8s_namespace
    server = serve(0, "127.0.0.1", remotes={})
    try:
        kube.create(EXPERIMENTS, ns, _experiment(ns))
        services = Services({"darts": f"127.0.0.1:{server.port}"}, suggestion_timeout=10, suggestion_retries=2)
        with running_controller(kube, ns, services=services):
            exp = wait_for("the DARTS experiment to finish", finished(kube, ns, "darts-cpu"), timeout=180)
        services.close()
    finally:
        server.stop(0)
    assert condition(exp, "Succeeded")["reason"] == "ExperimentMaxTrialsReached", exp["status"]  # type: ignore[index]
    (trial,) = trials_of(kube, ns, "darts-cpu")
    assignments = {a["name"]: a["value"] for a in trial["spec"]["parameterAssignments"]}
    assert assignments["search-space"] == "['max_pooling_3x3', 'separable_convolution_3x3', 'skip_connection']"
    assert assignments["num-layers"] == "2"
    genotype = metric(trial, "Best-Genotype")
    assert genotype is not None and genotype["latest"].startswith("Genotype(normal=[[("), genotype
    accuracy = metric(trial, "Validation-Accuracy")
    assert accuracy is not None and 0.0 <= float(accuracy["latest"]) <= 1.0
    best = exp["status"]["currentOptimalTrial"]
    assert best["bestTrialName"] == trial["metadata"]["name"]
