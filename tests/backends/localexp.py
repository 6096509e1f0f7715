"""Build small experiments for the local backend tests: inline Python trials, any kind."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import yaml

# A trial that prints `name=value` lines for `steps` steps; the score is a known function of x.
STEPS_TRIAL = """
import sys, time
x = float(sys.argv[1]); steps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
for step in range(1, steps + 1):
    print(f"epoch {step}: accuracy={1 - (x - 0.3) ** 2 - 0.1 / step:.6f} loss={(x - 0.3) ** 2 + 0.1 / step:.6f}", flush=True)
    time.sleep(0.02)
"""


# Reports 0.2 s apart, for tests that act on a runner while its trials run: a trial lasts
# about STEPS / 5 s. Only the objective, accuracy.
SLOW_TRIAL = """
import sys, time
x = float(sys.argv[1])
for step in range(1, int(sys.argv[2]) + 1):
    print(f"accuracy={1 - (x - 0.3) ** 2 - 0.1 / step:.6f}", flush=True)
    time.sleep(0.2)
"""


def slow_experiment(name: str, max_trials: int, parallel: int, steps: int) -> dict[str, Any]:
    """An experiment of SLOW_TRIAL trials of ``steps`` reports each."""
    return experiment(name, max_trials=max_trials, parallel=parallel,
                      objective={"type": "maximize", "objectiveMetricName": "accuracy"},
                      command=["python3", "-c", SLOW_TRIAL, "${trialParameters.x}", str(steps)])


def wait_until(check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"condition not reached within {timeout} s")


def experiment(name: str, *, command: list[str] | None = None, parameters: list[dict[str, Any]] | None = None,
               trial_parameters: list[dict[str, str]] | None = None, kind: str = "Job",
               algorithm: str = "random", settings: dict[str, str] | None = None, max_trials: int | None = 4,
               parallel: int = 2, objective: dict[str, Any] | None = None, collector: dict[str, Any] | None = None,
               extra_spec: dict[str, Any] | None = None, env: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    parameters = parameters or [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}]
    trial_parameters = trial_parameters or [{"name": "x", "reference": "x"}]
    command = command or ["python3", "-c", STEPS_TRIAL, "${trialParameters.x}"]
    container: dict[str, Any] = {"name": "training-container", "image": "unused:latest", "command": command}
    if env:
        container["env"] = env
    spec: dict[str, Any] = {
        "objective": objective or {"type": "maximize", "objectiveMetricName": "accuracy",
                                   "additionalMetricNames": ["loss"]},
        "algorithm": {"algorithmName": algorithm,
                      "algorithmSettings": [{"name": k, "value": v} for k, v in (settings or {}).items()]},
        "parallelTrialCount": parallel,
        "parameters": parameters,
        "trialTemplate": {"primaryContainerName": "training-container", "trialParameters": trial_parameters,
                          "trialSpec": trial_spec(kind, container)},
    }
    if max_trials is not None:
        spec["maxTrialCount"] = max_trials
    if collector:
        spec["metricsCollectorSpec"] = collector
    spec.update(extra_spec or {})
    return {"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": name}, "spec": spec}


def trial_spec(kind: str, container: dict[str, Any]) -> dict[str, Any]:
    pod = {"spec": {"containers": [container], "restartPolicy": "Never"}}
    if kind == "Job":
        return {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": pod}}
    if kind == "TrainJob":
        return {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob",
                "spec": {"runtimeRef": {"name": "torch-distributed"},
                         "trainer": {"numNodes": 1, "command": container["command"], "env": container.get("env", [])}}}
    if kind in ("PyTorchJob", "XGBoostJob"):
        key = "pytorchReplicaSpecs" if kind == "PyTorchJob" else "xgbReplicaSpecs"
        worker = json.loads(json.dumps(pod))
        worker["spec"]["containers"][0]["name"] = "other"
        return {"apiVersion": "kubeflow.org/v1", "kind": kind,
                "spec": {key: {"Master": {"replicas": 1, "template": pod},
                               "Worker": {"replicas": 2, "template": worker}}}}
    if kind == "TFJob":
        return {"apiVersion": "kubeflow.org/v1", "kind": "TFJob",
                "spec": {"tfReplicaSpecs": {"Chief": {"replicas": 1, "template": pod}}}}
    if kind == "MPIJob":
        return {"apiVersion": "kubeflow.org/v2beta1", "kind": "MPIJob",
                "spec": {"mpiReplicaSpecs": {"Launcher": {"replicas": 1, "template": pod}}}}
    raise ValueError(kind)


def write(tmp: Path, doc: dict[str, Any] | list[dict[str, Any]], name: str = "exp.yaml") -> Path:
    path = tmp / name
    docs = doc if isinstance(doc, list) else [doc]
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


def stop_runners_left(home: Path, timeout: float = 15.0) -> list[int]:
    """SIGTERM every runner still holding an experiment's lock under ``home`` (detached
    runners a failed test left), as Ctrl-C would: they stop their trials. Returns their pids."""
    import os
    import signal
    import time

    from katib.backends.local.lock import lock_holder

    pids = [pid for d in home.glob("runs/*/*") if (pid := lock_holder(d)) and pid != os.getpid()]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return pids
