"""A controller process killed (SIGKILL) mid-experiment and started again neither loses nor
duplicates a trial, nor an observation row, and the experiment completes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from katib.backends.kubernetes.client import Kube
from katib.backends.kubernetes.resources import EXPERIMENTS
from katib.store import Store
from tests.kubernetes.support import condition, finished, metric, trial_state, trials_of, wait_for
from tests.kubernetes.test_random_job import experiment

pytestmark = pytest.mark.k8s

SLOW_TRAIN = """
import sys, time
args = dict(a.lstrip("-").split("=", 1) for a in sys.argv[1:])
lr, layers = float(args["lr"]), int(args["layers"])
for epoch in range(1, 7):
    acc = (1 - abs(lr - 0.05) - 0.01 * layers) * epoch / 6
    print(f"epoch={epoch} accuracy={acc:.6f} loss={1 - acc:.6f}", flush=True)
    time.sleep(0.6)
"""


def start_controller(kubeconfig: str, namespace: str, db_url: str, log: Path) -> subprocess.Popen[bytes]:
    out = open(log, "ab")  # noqa: SIM115 - handed to the child
    return subprocess.Popen(
        [sys.executable, "-m", "katib.cli", "controller", "--kubeconfig", kubeconfig, "--namespace", namespace,
         "--db", db_url, "--poll-interval", "0.3", "--resync-period", "3", "-v"],
        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(Path(__file__).parents[2]))


def test_controller_killed_and_restarted_mid_experiment(kube: Kube, k8s_namespace: str, k8s_control_plane: Any,
                                                         tmp_path: Path) -> None:
    ns = k8s_namespace
    body = experiment("restart", ns, maxTrialCount=6, parallelTrialCount=2)
    container = body["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"][2] = SLOW_TRAIN
    kube.create(EXPERIMENTS, ns, body)
    db_url = f"sqlite:///{tmp_path}/observations.db"
    log = tmp_path / "controller.log"
    kubeconfig = str(k8s_control_plane.kubeconfig_path)

    first = start_controller(kubeconfig, ns, db_url, log)
    try:
        # Kill it while trials run: after the first trials finished, while another has
        # reported some of its epochs (so some of its rows are in the DB, some not yet).
        def mid_run() -> bool:
            trials = trials_of(kube, ns, "restart")
            states = Counter(trial_state(t) for t in trials)
            partial = [t for t in trials if trial_state(t) == "Running" and metric(t, "accuracy") is not None]
            return states["Succeeded"] >= 1 and bool(partial)
        wait_for("trials to be under way", mid_run, timeout=120, interval=0.1)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    before = {t["metadata"]["name"] for t in trials_of(kube, ns, "restart")}
    time.sleep(1.0)  # trials go on while no controller watches

    second = start_controller(kubeconfig, ns, db_url, log)
    try:
        exp = wait_for("the experiment to finish after the restart", finished(kube, ns, "restart"), timeout=180)
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            second.wait(30)
        except subprocess.TimeoutExpired:
            second.kill()
    assert second.returncode == 0, log.read_text()[-3000:]

    succeeded = condition(exp, "Succeeded")
    assert succeeded is not None and succeeded["reason"] == "ExperimentMaxTrialsReached", log.read_text()[-3000:]
    trials = trials_of(kube, ns, "restart")
    names = [t["metadata"]["name"] for t in trials]
    # Not duplicated: exactly maxTrialCount trials; not lost: every one created before the
    # kill is still there and finished normally, with its full observation.
    assert len(names) == len(set(names)) == 6
    assert before <= set(names)
    assert exp["status"]["trials"] == 6 and exp["status"]["trialsSucceeded"] == 6
    store = Store(db_url)
    try:
        for t in trials:
            assert trial_state(t) == "Succeeded", (t["metadata"]["name"], t.get("status"))
            accuracy = metric(t, "accuracy")
            assert accuracy is not None and float(accuracy["latest"]) == float(accuracy["max"])
            # Each of the 6 epochs' two values is stored once, also for trials that ran
            # across the restart.
            rows = store.get_observations(t["metadata"]["name"])
            counts = Counter(r.metric_name for r in rows)
            assert counts == {"accuracy": 6, "loss": 6}, (t["metadata"]["name"], counts)
    finally:
        store.close()
