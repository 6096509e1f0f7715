"""A 20,000-trial experiment written through ``katib.store.Store`` as the local runner writes
its trials (rendered run spec, conditions, observation), with three reported steps each: what
the dashboard's speed is measured on."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta, timezone
from typing import Any

from katib.api.loader import load_experiment
from katib.api.model import Trial
from katib.api.observation import MetricLog
from katib.backends.local import prepare
from katib.controller.reconcile import compute_status
from katib.store import EXPERIMENT_LABEL, Store
from katib.visualization.data import gc_paused

NAME = "ui-scale"
STEPS = 3

EXPERIMENT = """
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: ui-scale
spec:
  objective: {type: maximize, objectiveMetricName: accuracy, additionalMetricNames: [loss]}
  algorithm: {algorithmName: random}
  parallelTrialCount: 4
  maxTrialCount: %(n)d
  maxFailedTrialCount: %(n)d
  parameters:
    - {name: lr, parameterType: double, feasibleSpace: {min: "0.0001", max: "0.1", distribution: logUniform}}
    - {name: hidden, parameterType: int, feasibleSpace: {min: "16", max: "256"}}
    - {name: activation, parameterType: categorical, feasibleSpace: {list: [relu, tanh, logistic]}}
  trialTemplate:
    primaryContainerName: main
    trialParameters:
      - {name: lr, reference: lr}
      - {name: hidden, reference: hidden}
      - {name: activation, reference: activation}
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            restartPolicy: Never
            containers:
              - name: main
                image: local
                command: [python3, train.py, "--lr=${trialParameters.lr}", "--hidden=${trialParameters.hidden}",
                          "--activation=${trialParameters.activation}"]
"""


def _rfc(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def fill(url: str, n: int, seed: int = 0) -> None:
    exp = load_experiment(EXPERIMENT % {"n": n})
    prepare(exp)
    store = Store(url)
    store.create_experiment(exp)
    rng = random.Random(seed)
    t0 = datetime(2026, 12, 1, tzinfo=timezone.utc)
    template = exp.spec.trial_template.trial_spec if exp.spec.trial_template else {}
    objective = exp.spec.objective.to_dict() if exp.spec.objective else {}
    stored = []
    with gc_paused(), store.transaction():
        for i in range(n):
            name = f"{NAME}-{i:06d}"
            lr, hidden, act = 10 ** rng.uniform(-4, -1), rng.randint(16, 256), rng.choice(["relu", "tanh", "logistic"])
            top = 0.97 - 0.08 * (math.log10(lr) + 2.5) ** 2 - 0.02 * math.log10(256 / hidden) - rng.gauss(0, 0.01)
            curve = [top * (1 - math.exp(-(s + 1) / 2)) for s in range(STEPS)]
            failed = rng.random() < 0.05
            state, reason, message = (("Failed", "TrialFailed", "Trial has failed: exited with status 1")
                                      if failed else ("Succeeded", "TrialSucceeded", "Trial has succeeded"))
            start = t0 + timedelta(seconds=30 * i)
            end = start + timedelta(seconds=25)
            run_spec = dict(template or {}, metadata={"name": name, "namespace": "default"})
            trial = Trial.from_dict({
                "metadata": {"name": name, "namespace": "default", "labels": {EXPERIMENT_LABEL: NAME}},
                "spec": {"objective": objective, "runSpec": run_spec, "primaryContainerName": "main",
                         "parameterAssignments": [{"name": "lr", "value": repr(lr)},
                                                  {"name": "hidden", "value": str(hidden)},
                                                  {"name": "activation", "value": act}]},
                "status": {"startTime": _rfc(start), "completionTime": _rfc(end), "conditions": [
                    {"type": "Created", "status": "True", "reason": "TrialCreated", "message": "Trial is created",
                     "lastTransitionTime": _rfc(start)},
                    {"type": "Running", "status": "False", "reason": "TrialRunning", "message": message,
                     "lastTransitionTime": _rfc(end)},
                    {"type": state, "status": "True", "reason": reason, "message": message,
                     "lastTransitionTime": _rfc(end)}],
                    "observation": {"metrics": [
                        {"name": "accuracy", "min": repr(min(curve)), "max": repr(max(curve)), "latest": repr(curve[-1])},
                        {"name": "loss", "min": repr(1 - max(curve)), "max": repr(1 - min(curve)),
                         "latest": repr(1 - curve[-1])}]}},
            })
            stored.append(store.create_trial(trial, NAME))
            store.report_observations(name, [MetricLog(m, repr(v if m == "accuracy" else 1 - v),
                                                       start + timedelta(seconds=s + 1), s + 1, s + 1)
                                             for s, v in enumerate(curve) for m in ("accuracy", "loss")])
    stored_exp: Any = store.get_experiment(NAME)
    stored_exp.status = compute_status(stored_exp, stored)
    store.update_experiment_status(stored_exp)
    store.close()
