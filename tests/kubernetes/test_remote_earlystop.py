"""Early stopping by a remote EarlyStopping service.

Unit tests: ``RemoteEarlyStopping`` applies a service's rules to known curves (a fake client,
no cluster). Cluster test: the controller started with ``--earlystopping-address`` and
``--db-manager-address`` against real servers stops a hopeless trial and tells the service.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Sequence

import pytest

from earlystop.service import EarlyStoppingServicer, serve
from katib.api.model import EarlyStoppingRule, Experiment, Trial
from katib.api.observation import MetricLog
from katib.backends.kubernetes.main import build_controller, build_parser
from katib.backends.kubernetes.remote_earlystopping import RemoteEarlyStopping
from katib.backends.kubernetes.resources import EXPERIMENTS
from katib.errors import ServiceError
from katib.store import Store, dbmanager
from tests.kubernetes.support import PY, condition, finished, metric, trial_state, trials_of, wait_for

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def experiment(kind: str = "maximize") -> Experiment:
    errors: list[Any] = []
    exp = Experiment.from_dict({
        "metadata": {"name": "exp", "namespace": "ns"},
        "spec": {"objective": {"type": kind, "objectiveMetricName": "accuracy"},
                 "earlyStopping": {"algorithmName": "medianstop"}}}, "", errors)
    return exp  # type: ignore[no-any-return]


def rows(values: Sequence[float], metric_name: str = "accuracy") -> list[MetricLog]:
    return [MetricLog(metric_name, repr(v), T0 + timedelta(seconds=i)) for i, v in enumerate(values)]


class FakeClient:
    address = "es.test:6788"

    def __init__(self, rules: list[EarlyStoppingRule]) -> None:
        self.rules_to_give = rules
        self.calls: list[tuple[int, str]] = []
        self.stopped: list[str] = []
        self.fail: Exception | None = None

    def rules(self, experiment: Experiment, trials: Sequence[Trial], db_manager_address: str,
              timeout: float | None = None) -> list[EarlyStoppingRule]:
        self.calls.append((len(trials), db_manager_address))
        if self.fail is not None:
            raise self.fail
        return list(self.rules_to_give)

    def set_trial_status(self, trial_name: str, timeout: float | None = None) -> None:
        if self.fail is not None:
            raise self.fail
        self.stopped.append(trial_name)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def rule(value: float, comparison: str = "less", start_step: int = 3, name: str = "accuracy") -> EarlyStoppingRule:
    return EarlyStoppingRule(name=name, value=repr(value), comparison=comparison, start_step=start_step)


def stopper(client: FakeClient, kind: str = "maximize", clock: Clock | None = None) -> RemoteEarlyStopping:
    es = RemoteEarlyStopping(client, experiment(kind), "db.test:6789", clock=clock or Clock())
    es.finished("done", "Succeeded")  # one completed trial: rules are worth asking for
    return es


def test_maximize_stops_when_the_best_so_far_is_below_the_threshold_from_start_step() -> None:
    es = stopper(FakeClient([rule(0.5, "less", start_step=3)]))
    # Steps 1 and 2 are below 0.5 but come before start_step.
    assert es.report("t", rows([0.1, 0.2])) is None
    decision = es.report("t", rows([0.3]))
    assert decision is not None and decision.step == 3 and decision.value == pytest.approx(0.3)
    assert decision.threshold == 0.5
    assert "es.test:6788" in decision.message and "0.5" in decision.message and "step 3" in decision.message
    assert "medianstop" in decision.message
    assert es.report("t", rows([0.9])) is decision  # asked again: same decision


def test_best_so_far_spares_a_trial_that_was_good_once() -> None:
    es = stopper(FakeClient([rule(0.5, "less", start_step=2)]))
    assert es.report("t", rows([0.6, 0.1, 0.1, 0.1])) is None  # best stays 0.6


def test_rule_is_checked_at_every_report_not_only_at_start_step() -> None:
    es = stopper(FakeClient([rule(0.5, "less", start_step=2)]))
    assert es.report("t", rows([0.1])) is None
    # Upstream's sidecar only checks at step 2 exactly. Here rules arrive later (step 5) and
    # still apply. Simulate: rules only once a second trial completed.
    client = FakeClient([])
    clock = Clock()
    es = stopper(client, clock=clock)
    assert es.report("t", rows([0.1, 0.2])) is None  # no rules yet
    client.rules_to_give = [rule(0.5, "less", start_step=2)]
    es.finished("done2", "Succeeded")
    clock.now += 10
    decision = es.report("t", rows([0.3]))
    assert decision is not None and decision.step == 3


def test_minimize_uses_the_lowest_value_and_greater() -> None:
    es = stopper(FakeClient([rule(0.5, "greater", start_step=2)]), kind="minimize")
    assert es.report("a", rows([0.9, 0.4])) is None  # best 0.4 is not above 0.5
    decision = es.report("b", rows([0.9, 0.8]))
    assert decision is not None and decision.value == pytest.approx(0.8) and "above" in decision.message


def test_equal_comparison_and_all_rules_must_hold() -> None:
    es = stopper(FakeClient([rule(1.0, "equal", start_step=1, name="loss"), rule(0.5, "less", start_step=2)]))
    assert es.report("t", rows([0.1]) + rows([1.0], "loss")) is None  # accuracy at step 1 < start_step
    decision = es.report("t", rows([0.2]))
    assert decision is not None and decision.metric_name == "accuracy"
    es2 = stopper(FakeClient([rule(1.0, "equal", start_step=1, name="loss"), rule(0.5, "less", start_step=1)]))
    assert es2.report("t", rows([0.1]) + rows([2.0], "loss")) is None  # loss is not equal


def test_rules_are_refreshed_when_completed_trials_change_and_at_most_every_few_seconds() -> None:
    client = FakeClient([rule(0.5)])
    clock = Clock()
    es = stopper(client, clock=clock)
    es.update(experiment(), [])
    es.report("t", rows([0.9]))
    es.report("t", rows([0.9]))
    assert len(client.calls) == 1 and client.calls[0][1] == "db.test:6789"
    es.finished("other", "Succeeded")
    es.report("t", rows([0.9]))
    assert len(client.calls) == 1  # changed, but asked less than 5 s ago
    clock.now += 6
    es.report("t", rows([0.9]))
    assert len(client.calls) == 2
    es.finished("crashed", "Failed")  # not a completed trial: no new call
    clock.now += 6
    es.report("t", rows([0.9]))
    assert len(client.calls) == 2


def test_a_failing_service_keeps_the_rules_and_set_trial_status_is_best_effort() -> None:
    client = FakeClient([rule(0.5)])
    clock = Clock()
    es = stopper(client, clock=clock)
    assert es.report("a", rows([0.9])) is None
    client.fail = ServiceError("UNAVAILABLE: down", retryable=True)
    es.finished("other", "Succeeded")
    clock.now += 6
    decision = es.report("b", rows([0.1, 0.1, 0.1]))
    assert decision is not None  # the rule from before still applies
    es.trial_stopped("b")  # logged, not raised
    client.fail = None
    es.trial_stopped("b")
    assert client.stopped == ["b"]


def test_finished_trials_are_not_judged() -> None:
    es = stopper(FakeClient([rule(0.5, start_step=1)]))
    es.finished("t", "Killed")
    assert es.report("t", rows([0.1])) is None


# -- the controller on the real control plane ------------------------------------------------

# A hopeless trial (lr far from 0.05) learns slowly; the others reach ~0.99.
TRAIN = """
import sys, time
lr = float(sys.argv[1].split("=", 1)[1])
quality = 0.2 if lr > 0.5 else 1.0
for step in range(1, 9):
    print(f"accuracy={quality * (1 - 0.5 ** step):.6f}", flush=True)
    time.sleep(1.0 if quality < 1 else 0.05)
"""


def es_experiment(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "objective": {"type": "maximize", "objectiveMetricName": "accuracy"},
            "algorithm": {"algorithmName": "grid"},
            "earlyStopping": {"algorithmName": "medianstop", "algorithmSettings": [
                {"name": "min_trials_required", "value": "2"}, {"name": "start_step", "value": "2"}]},
            "parallelTrialCount": 1, "maxTrialCount": 3,
            "parameters": [{"name": "lr", "parameterType": "categorical",
                            "feasibleSpace": {"list": ["0.01", "0.02", "0.9"]}}],
            "trialTemplate": {
                "primaryContainerName": "training", "retain": True,
                "trialParameters": [{"name": "lr", "reference": "lr"}],
                "trialSpec": {
                    "apiVersion": "batch/v1", "kind": "Job",
                    "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [{
                        "name": "training", "image": "python:3.12",
                        "command": [PY, "-c", TRAIN, "--lr=${trialParameters.lr}"]}]}}},
                },
            },
        },
    }


@pytest.mark.k8s
def test_controller_stops_a_hopeless_trial_with_the_remote_service(
        k8s_control_plane: Any, kube: Any, k8s_namespace: str, tmp_path: Path) -> None:
    ns = k8s_namespace
    store = Store(f"sqlite:///{tmp_path}/obs.db")
    db = dbmanager.serve(store, 0, host="127.0.0.1")
    servicer = EarlyStoppingServicer()
    es = serve(0, host="127.0.0.1", servicer=servicer)
    args: argparse.Namespace = build_parser().parse_args([
        "--kubeconfig", str(k8s_control_plane.kubeconfig_path), "--namespace", ns,
        "--earlystopping-address", f"medianstop=127.0.0.1:{es.port}",
        "--db-manager-address", f"127.0.0.1:{db.port}",
        "--poll-interval", "0.3", "--resync-period", "3"])
    controller = build_controller(args)
    try:
        kube.create(EXPERIMENTS, ns, es_experiment("remote-es", ns))
        controller.start()
        exp = wait_for("the experiment to finish", finished(kube, ns, "remote-es"), timeout=180)
    finally:
        controller.stop()
        controller.services.close()
        controller.kube.close()
        es.stop(None).wait()
        db.stop(None).wait()
        servicer.db.close()
        store.close()

    assert condition(exp, "Succeeded") is not None, exp["status"]
    trials = {t["metadata"]["name"]: t for t in trials_of(kube, ns, "remote-es")}
    states = {n: trial_state(t) for n, t in trials.items()}
    stopped = [n for n, s in states.items() if s == "EarlyStopped"]
    assert len(stopped) == 1, states
    t = trials[stopped[0]]
    assert next(a["value"] for a in t["spec"]["parameterAssignments"]) == "0.9"
    c = condition(t, "EarlyStopped")
    assert c is not None and c["reason"] == "TrialEarlyStopped"
    assert f"127.0.0.1:{es.port}" in c["message"] and "medianstop" in c["message"], c["message"]
    accuracy = metric(t, "accuracy")
    assert accuracy is not None and float(accuracy["latest"]) < 0.2 * (1 - 0.5 ** 8)  # stopped before the end
    assert servicer.stopped_trials == stopped
    # A trial created once the service had a rule carries it in upstream's form (rules are
    # asked for at most every few seconds, so the hopeless trial may have been created first).
    for r in t["spec"].get("earlyStoppingRules") or []:
        assert r["name"] == "accuracy" and r["comparison"] == "less" and r["startStep"] == 2
    assert sorted(s for s in states.values()) == ["EarlyStopped", "Succeeded", "Succeeded"]
