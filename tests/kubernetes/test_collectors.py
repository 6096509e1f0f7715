"""The File collector (sidecar) and the Push collector (DBManager) on the real control plane."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from katib.backends.kubernetes.client import Kube
from katib.backends.kubernetes.render import RenderOptions
from katib.backends.kubernetes.resources import EXPERIMENTS
from katib.backends.kubernetes.services import DBManagerClient, Services
from katib.store import Store
from katib.store.dbmanager import serve
from tests.kubernetes.support import (
    condition, finished, metric, running_controller, trial_state, trials_of, wait_for,
)
from tests.kubernetes.test_random_job import experiment

pytestmark = pytest.mark.k8s


def _set_command(body: dict[str, Any], script: str, env: list[dict[str, str]] | None = None) -> dict[str, Any]:
    container = body["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"][2] = script
    if env is not None:
        container["env"] = env
    return container


# Writes upstream's default metrics file. Accuracy depends on the trial's own parameters, so a
# trial that read another trial's file would report the wrong values. The first two trials meet
# at a rendezvous (a host directory) after their first line: both files exist at the same time.
FILE_TRAIN = """
import os, pathlib, sys, time
args = dict(a.lstrip("-").split("=", 1) for a in sys.argv[1:])
lr, layers, rendezvous = float(args["lr"]), int(args["layers"]), pathlib.Path(args["rendezvous"])
print("accuracy=0.0001 printed on stdout is not read by the File collector", flush=True)
with open("/var/log/katib/metrics.log", "a") as f:
    for epoch in range(1, 4):
        acc = (1 - abs(lr - 0.05) - 0.01 * layers) * epoch / 3
        f.write(f"epoch={epoch} accuracy={acc:.6f} loss={1 - acc:.6f}\\n")
        f.flush()
        if epoch == 1:
            (rendezvous / os.environ["KATIB_TRIAL_NAME"]).touch()
            deadline = time.monotonic() + 60
            while len(os.listdir(rendezvous)) < 2:
                if time.monotonic() > deadline:
                    sys.exit("no other trial ran at the same time")
                time.sleep(0.05)
        time.sleep(0.2)
"""


def _accuracy_by_epoch(trial: dict[str, Any]) -> list[float]:
    values = {a["name"]: a["value"] for a in trial["spec"]["parameterAssignments"]}
    lr, layers = float(values["lr"]), int(values["layers"])
    return [float(f"{(1 - abs(lr - 0.05) - 0.01 * layers) * epoch / 3:.6f}") for epoch in range(1, 4)]


def test_file_collector_reads_each_trials_own_file_at_the_default_path(
        kube: Kube, k8s_namespace: str, k8s_volumes: None, tmp_path: Path) -> None:
    ns = k8s_namespace
    default_dir = Path("/var/log/katib")
    on_host_before = sorted(os.listdir(default_dir)) if default_dir.exists() else None
    rendezvous = tmp_path / "rendezvous"
    rendezvous.mkdir()
    # No source: the default, /var/log/katib/metrics.log, in an emptyDir of each trial's pod.
    body = experiment("file-collector", ns, maxTrialCount=4, parallelTrialCount=2, maxFailedTrialCount=1,
                      metricsCollectorSpec={"collector": {"kind": "File"}})
    container = _set_command(body, FILE_TRAIN)
    container["command"].append(f"--rendezvous={rendezvous}")
    kube.create(EXPERIMENTS, ns, body)
    with running_controller(kube, ns, render=RenderOptions(sidecar_python=sys.executable)):
        exp = wait_for("the File experiment to finish", finished(kube, ns, "file-collector"), timeout=180)
    assert (condition(exp, "Succeeded") or {}).get("status") == "True", exp["status"]
    trials = trials_of(kube, ns, "file-collector")
    assert len(trials) == 4
    assert len(os.listdir(rendezvous)) >= 2  # the first two trials ran side by side
    for trial in trials:
        assert trial_state(trial) == "Succeeded"
        expected = _accuracy_by_epoch(trial)
        accuracy = metric(trial, "accuracy")
        assert accuracy is not None, trial["status"]
        got = (float(accuracy["min"]), float(accuracy["max"]), float(accuracy["latest"]))
        assert got == (expected[0], expected[2], expected[2]), trial["metadata"]["name"]
    assert len({metric(t, "accuracy")["latest"] for t in trials}) > 1  # type: ignore[index]
    on_host_after = sorted(os.listdir(default_dir)) if default_dir.exists() else None
    assert on_host_after == on_host_before, "the trials' metrics files must stay in their pods"


def test_push_collector_reads_what_trials_report_to_the_db_manager(kube: Kube, k8s_namespace: str,
                                                                    tmp_path: Path) -> None:
    ns = k8s_namespace
    store = Store(f"sqlite:///{tmp_path}/dbm.db")
    server = serve(store, 0, host="127.0.0.1")
    address = f"127.0.0.1:{server.port}"
    try:
        body = experiment("push", ns, maxTrialCount=2, parallelTrialCount=2,
                          metricsCollectorSpec={"collector": {"kind": "Push"}})
        _set_command(body, """
import sys, time
import katib
args = dict(a.lstrip("-").split("=", 1) for a in sys.argv[1:])
lr = float(args["lr"])
for epoch in range(1, 4):
    katib.report_metrics({"accuracy": (1 - abs(lr - 0.05)) * epoch / 3, "loss": 1 - epoch / 3})
    time.sleep(0.2)
""", env=[{"name": "KATIB_DB_URL", "value": ""}])  # the test kubelet passes this host's env on
        kube.create(EXPERIMENTS, ns, body)
        services = Services(db=DBManagerClient(address))
        with running_controller(kube, ns, services=services, render=RenderOptions(db_manager_address=address)):
            exp = wait_for("the Push experiment to finish", finished(kube, ns, "push"), timeout=120)
        services.close()
        assert (condition(exp, "Succeeded") or {}).get("status") == "True", exp["status"]
        for trial in trials_of(kube, ns, "push"):
            assert trial_state(trial) == "Succeeded"
            name = trial["metadata"]["name"]
            rows = store.get_observations(name, "accuracy")
            assert len(rows) == 3
            accuracy = metric(trial, "accuracy")
            assert accuracy is not None and float(accuracy["latest"]) == float(rows[-1].value)
            assert float(accuracy["min"]) == min(float(r.value) for r in rows)
    finally:
        server.stop(0)
        store.close()
