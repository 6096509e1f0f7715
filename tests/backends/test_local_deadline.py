"""A trial's active deadline on the local backend: `spec.activeDeadlineSeconds` of a Job,
`spec.runPolicy.activeDeadlineSeconds` of the training-operator kinds, as Kubernetes enforces
them: the trial is stopped and recorded Failed with reason DeadlineExceeded."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from katib.backends.local.deadline import active_deadline
from katib.cli import main
from katib.store import Store
from tests.backends.localexp import experiment, write

# Reports a value at once, then outlives any deadline the tests set.
SLEEPER = "import sys, time; print('accuracy=0.5', flush=True); time.sleep(20); print('accuracy=0.9', flush=True)"


def sleeper(name: str, kind: str = "Job") -> dict[str, Any]:
    return experiment(name, kind=kind, max_trials=1, parallel=1, command=["python3", "-c", SLEEPER, "${trialParameters.x}"],
                      parameters=[{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}],
                      trial_parameters=[{"name": "x", "reference": "x"}],
                      objective={"type": "maximize", "objectiveMetricName": "accuracy"})


def with_deadline(doc: dict[str, Any], seconds: int) -> dict[str, Any]:
    spec = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]
    if doc["spec"]["trialTemplate"]["trialSpec"]["kind"] == "Job":
        spec["activeDeadlineSeconds"] = seconds
    else:
        spec["runPolicy"] = {"activeDeadlineSeconds": seconds}
    return doc


def failed(trial: Any) -> Any:
    return next(c for c in trial.status.conditions if c.type == "Failed")


def pid_of(name: str, trial: str) -> int:
    return int((Path(os.environ["KATIB_HOME"]) / "runs/default" / name / trial / "pid").read_text().split()[0])


@pytest.mark.parametrize("kind", ["Job", "PyTorchJob"])
def test_a_trial_past_its_active_deadline_is_stopped_and_failed(tmp_path: Path, kind: str) -> None:
    name = f"deadline-{kind.lower()}"
    assert main(["run", str(write(tmp_path, with_deadline(sleeper(name, kind), 1))), "-q"]) in (0, 1)
    [trial] = Store().list_trials(name)
    assert trial.status.state == "Failed"
    assert failed(trial).reason == "DeadlineExceeded"
    assert failed(trial).message == "Trial exceeded its active deadline of 1 s"
    # The metrics it reported before the deadline are kept; it never reached its second value.
    assert trial.status.observation is not None and trial.status.observation.metric("accuracy").latest == "0.5"
    with pytest.raises(ProcessLookupError):  # its process group is gone, not orphaned
        os.killpg(pid_of(name, trial.name), 0)


def test_the_deadline_counts_from_the_trials_start_across_a_runner_restart(tmp_path: Path) -> None:
    path = write(tmp_path, with_deadline(sleeper("deadline-restart"), 3))
    runner = subprocess.Popen([sys.executable, "-m", "katib.cli", "run", str(path), "-q"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = Store()
    try:
        for _ in range(600):
            trials = store.list_trials("deadline-restart")
            if trials and trials[0].status.state == "Running" and store.get_observations(trials[0].name):
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the trial did not start")
    finally:
        runner.kill()  # SIGKILL: the trial runs on, its deadline still counting
        runner.wait(timeout=10)
    trial = store.list_trials("deadline-restart")[0]
    time.sleep(3.5)  # past the deadline while no runner watches
    os.killpg(pid_of("deadline-restart", trial.name), 0)  # still running
    again = subprocess.run([sys.executable, "-m", "katib.cli", "run", str(path), "-q"], capture_output=True,
                           text=True, timeout=60)
    assert again.returncode in (0, 1), again.stderr
    [trial] = store.list_trials("deadline-restart")
    assert trial.status.state == "Failed"
    assert failed(trial).reason == "DeadlineExceeded"
    assert trial.status.observation.metric("accuracy").latest == "0.5"  # type: ignore[union-attr]


def test_deadline_read_from_each_workload_kind() -> None:
    assert active_deadline({"kind": "Job", "spec": {"activeDeadlineSeconds": 30}}) == 30
    assert active_deadline({"kind": "TFJob", "spec": {"runPolicy": {"activeDeadlineSeconds": "7"}}}) == 7
    assert active_deadline({"kind": "Job", "spec": {"template": {}}}) is None
    assert active_deadline({"kind": "Job", "spec": {"activeDeadlineSeconds": 0}}) is None
    assert active_deadline(None) is None
