"""KatibClient's actions against the real test API server with the controller running:
stop (no more trials, the running ones finish) and a raised budget that restarts it."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from katib.backends.kubernetes.client import Kube
from katib.sdk.client import KatibClient
from tests.kubernetes.support import condition, finished, running_controller, trial_state, trials_of, wait_for
from tests.kubernetes.test_random_job import experiment

pytestmark = pytest.mark.k8s

# Each trial reports three epochs a second apart: long enough to stop the experiment meanwhile.
SLOW = """
import sys, time
args = dict(a.lstrip("-").split("=", 1) for a in sys.argv[1:])
lr = float(args["lr"])
for epoch in range(1, 4):
    print(f"epoch={epoch} accuracy={1 - abs(lr - 0.05):.6f} loss={abs(lr - 0.05):.6f}", flush=True)
    time.sleep(1.0)
"""


@pytest.fixture
def client(k8s_control_plane: Any, katib_crds: None, k8s_namespace: str) -> Iterator[KatibClient]:
    c = KatibClient(config_file=str(k8s_control_plane.kubeconfig_path), namespace=k8s_namespace)
    try:
        yield c
    finally:
        c.close()


def slow_experiment(name: str, namespace: str) -> dict[str, Any]:
    body = experiment(name, namespace, parallelTrialCount=2, maxTrialCount=6, maxFailedTrialCount=5,
                      resumePolicy="LongRunning")
    container = body["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"][2] = SLOW
    return body


def test_stop_starts_no_more_trials_and_a_raised_budget_restarts(kube: Kube, client: KatibClient) -> None:
    ns = client.namespace
    client.create_experiment(slow_experiment("halted", ns))
    with running_controller(kube, ns):
        wait_for("two running trials", lambda: [trial_state(t) for t in trials_of(kube, ns, "halted")]
                 == ["Running", "Running"], timeout=120)
        stopped = client.stop_experiment("halted")
        # Lowered to the trials it has; the other counts with it, as validation requires.
        assert (stopped.spec.max_trial_count, stopped.spec.parallel_trial_count,
                stopped.spec.max_failed_trial_count) == (2, 2, 2)
        assert not client.is_running_locally("halted")  # nothing runs on this machine
        exp = wait_for("the experiment to end", finished(kube, ns, "halted"), timeout=120)
        ended = condition(exp, "Succeeded")
        assert ended is not None and ended["status"] == "True" and ended["reason"] == "ExperimentMaxTrialsReached"
        trials = trials_of(kube, ns, "halted")
        assert [trial_state(t) for t in trials] == ["Succeeded", "Succeeded"]  # they ran to their end
        assert client.stop_experiment("halted").spec.max_trial_count == 2  # ended: left as it is

        client.edit_experiment_budget("halted", max_trial_count=3)
        wait_for("a third trial", lambda: len(trials_of(kube, ns, "halted")) == 3, timeout=120)
        wait_for("the experiment to end again", finished(kube, ns, "halted"), timeout=120)
    assert [trial_state(t) for t in trials_of(kube, ns, "halted")] == ["Succeeded"] * 3
    assert client.get_experiment("halted").status.trials == 3  # type: ignore[union-attr]
