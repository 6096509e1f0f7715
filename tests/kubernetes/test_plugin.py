"""An algorithm name mapped to a Suggestion service address (the plug-in path): the
controller asks that service, over gRPC with deadlines and retries, for every trial."""

from __future__ import annotations

import pytest

from katib.backends.kubernetes.client import Kube
from katib.backends.kubernetes.resources import EXPERIMENTS
from katib.backends.kubernetes.services import Services
from suggestion.random import RandomSearch
from suggestion.service import serve
from tests.kubernetes.support import condition, finished, running_controller, trials_of, wait_for
from tests.kubernetes.test_random_job import experiment

pytestmark = pytest.mark.k8s


def test_algorithm_served_by_a_remote_suggestion_service(kube: Kube, k8s_namespace: str) -> None:
    ns = k8s_namespace
    # A service offering an algorithm under a name no built-in has: a user's plug-in.
    server = serve(0, "127.0.0.1", algorithms={"my-search": RandomSearch})
    try:
        kube.create(EXPERIMENTS, ns, experiment("plugin", ns, algorithm={"algorithmName": "my-search"},
                                                maxTrialCount=3, parallelTrialCount=2))
        services = Services({"my-search": f"127.0.0.1:{server.port}"}, suggestion_timeout=10, suggestion_retries=2)
        with running_controller(kube, ns, services=services):
            exp = wait_for("the plug-in experiment to finish", finished(kube, ns, "plugin"), timeout=120)
        services.close()
    finally:
        server.stop(0)
    assert condition(exp, "Succeeded")["reason"] == "ExperimentMaxTrialsReached"  # type: ignore[index]
    assert len(trials_of(kube, ns, "plugin")) == 3


def test_unknown_algorithm_is_refused(kube: Kube, k8s_namespace: str) -> None:
    ns = k8s_namespace
    kube.create(EXPERIMENTS, ns, experiment("unknown-alg", ns, algorithm={"algorithmName": "no-such-search"}))
    with running_controller(kube, ns):
        exp = wait_for("the experiment to be refused", finished(kube, ns, "unknown-alg"), timeout=60)
    failed = condition(exp, "Failed")
    assert failed is not None and "spec.algorithm.algorithmName" in failed["message"]
    assert "no-such-search" in failed["message"]
    assert trials_of(kube, ns, "unknown-alg") == []
