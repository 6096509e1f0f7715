"""The File collector (sidecar) and the Push collector (DBManager) on the real control plane."""

from __future__ import annotations

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


def test_file_collector_reads_the_metrics_file_through_the_sidecar(kube: Kube, k8s_namespace: str,
                                                                   tmp_path: Path) -> None:
    ns = k8s_namespace
    # The test kubelet has no volumes: every container sees this host's filesystem, so the
    # path is made unique here (in a cluster it is an emptyDir of the trial's pod).
    path = tmp_path / "metrics" / "metrics.log"
    body = experiment("file-collector", ns, maxTrialCount=1, parallelTrialCount=1, maxFailedTrialCount=1,
                      metricsCollectorSpec={"collector": {"kind": "File"},
                                            "source": {"fileSystemPath": {"path": str(path), "kind": "File"}}})
    _set_command(body, f"""
import sys, time
args = dict(a.lstrip("-").split("=", 1) for a in sys.argv[1:])
print("accuracy=0.0001 printed on stdout is not read by the File collector", flush=True)
with open({str(path)!r}, "a") as f:
    for epoch in range(1, 4):
        f.write(f"epoch={{epoch}} accuracy={{0.2 * epoch:.1f}} loss={{1 - 0.2 * epoch:.1f}}\\n")
        f.flush()
        time.sleep(0.2)
""")
    kube.create(EXPERIMENTS, ns, body)
    with running_controller(kube, ns, render=RenderOptions(sidecar_python=sys.executable)):
        exp = wait_for("the File experiment to finish", finished(kube, ns, "file-collector"), timeout=120)
    assert (condition(exp, "Succeeded") or {}).get("status") == "True", exp["status"]
    (trial,) = trials_of(kube, ns, "file-collector")
    assert trial_state(trial) == "Succeeded"
    accuracy = metric(trial, "accuracy")
    assert accuracy is not None and (accuracy["min"], accuracy["max"], accuracy["latest"]) == ("0.2", "0.6", "0.6")


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
