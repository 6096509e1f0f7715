"""The same N trials in a katib-lite store and in an Optuna study, for benchmarks/ui.py.

Trials are those of a finished random search over the quickstart's space (lr and alpha on a
log scale, an integer width, a categorical activation): 10 reported steps of the objective
each, about 5 % failed and 10 % stopped early (Optuna: pruned, with the steps reported before
the stop). Both stores get identical parameter values, objective values and intermediate
values, so the two dashboards are asked to show the same thing.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

STEPS = 10
EXPERIMENT = "ui-bench"

EXPERIMENT_YAML = """
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: ui-bench
spec:
  objective:
    type: maximize
    objectiveMetricName: accuracy
    additionalMetricNames: [loss]
  algorithm:
    algorithmName: random
  parallelTrialCount: 4
  maxTrialCount: {n}
  maxFailedTrialCount: {n}
  parameters:
    - name: lr
      parameterType: double
      feasibleSpace: {{min: "0.0001", max: "0.1", distribution: logUniform}}
    - name: alpha
      parameterType: double
      feasibleSpace: {{min: "0.00001", max: "0.01", distribution: logUniform}}
    - name: hidden
      parameterType: int
      feasibleSpace: {{min: "16", max: "256"}}
    - name: activation
      parameterType: categorical
      feasibleSpace: {{list: [relu, tanh, logistic]}}
  trialTemplate:
    primaryContainerName: training-container
    trialParameters:
      - {{name: lr, reference: lr}}
      - {{name: alpha, reference: alpha}}
      - {{name: hidden, reference: hidden}}
      - {{name: activation, reference: activation}}
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            restartPolicy: Never
            containers:
              - name: training-container
                image: local
                command: [python3, -c, "print('accuracy=0.5')",
                          "${{trialParameters.lr}}", "${{trialParameters.alpha}}",
                          "${{trialParameters.hidden}}", "${{trialParameters.activation}}"]
"""


@dataclass
class SyntheticTrial:
    params: dict[str, Any]
    curve: list[float]  # accuracy per step (shorter when stopped early)
    state: str  # Succeeded, Failed, EarlyStopped
    start: datetime
    end: datetime


def synthetic_trials(n: int, seed: int = 0) -> list[SyntheticTrial]:
    rng = random.Random(seed)
    t0 = datetime(2026, 12, 1, tzinfo=timezone.utc)
    out = []
    for i in range(n):
        lr = 10 ** rng.uniform(-4, -1)
        alpha = 10 ** rng.uniform(-5, -2)
        hidden = rng.randint(16, 256)
        act = rng.choice(["relu", "tanh", "logistic"])
        # Peak near lr = 3e-3, wider is better, relu best; noise per trial.
        top = 0.97 - 0.08 * (math.log10(lr) + 2.5) ** 2 - 0.02 * math.log10(256 / hidden)
        top -= {"relu": 0.0, "tanh": 0.01, "logistic": 0.04}[act] + 0.5 * alpha + rng.gauss(0, 0.01)
        curve = [top * (1 - math.exp(-(s + 1) / 3)) for s in range(STEPS)]
        roll = rng.random()
        state = "Failed" if roll < 0.05 else "EarlyStopped" if roll < 0.15 else "Succeeded"
        if state == "EarlyStopped":
            curve = curve[: rng.randint(2, STEPS // 2)]
        if state == "Failed":
            curve = curve[: rng.randint(0, 2)]
        start = t0 + timedelta(seconds=30 * i)
        out.append(SyntheticTrial({"lr": lr, "alpha": alpha, "hidden": hidden, "activation": act},
                                  curve, state, start, start + timedelta(seconds=25 + 2 * len(curve))))
    return out


def _rfc(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


_REASONS = {
    "Succeeded": ("TrialSucceeded", "Trial has succeeded"),
    "Failed": ("TrialFailed", "Trial has failed: exit code 1: ValueError: loss is nan"),
    "EarlyStopped": ("TrialEarlyStopped", "Trial is early stopped: medianstop"),
}


def fill_katib(url: str, trials: list[SyntheticTrial]) -> None:
    """Create the experiment and its trials (with observations) in the store at ``url``."""
    from katib.api.loader import load_experiment
    from katib.api.model import ExperimentCondition, Trial
    from katib.api.observation import MetricLog
    from katib.backends.local import prepare
    from katib.controller.conditions import set_condition
    from katib.controller.reconcile import compute_status
    from katib.store import EXPERIMENT_LABEL, Store

    exp = load_experiment(EXPERIMENT_YAML.format(n=len(trials)))
    prepare(exp)
    store = Store(url)
    store.create_experiment(exp)
    stored = []
    run_spec = exp.spec.trial_template.trial_spec if exp.spec.trial_template else {}
    with store.transaction():
        for i, t in enumerate(trials):
            name = f"{EXPERIMENT}-{i:06d}"
            reason, message = _REASONS[t.state]
            final = t.curve[-1] if t.curve else None
            metrics = [] if final is None else [
                {"name": "accuracy", "min": repr(min(t.curve)), "max": repr(max(t.curve)), "latest": repr(final)},
                {"name": "loss", "min": repr(1 - max(t.curve)), "max": repr(1 - min(t.curve)),
                 "latest": repr(1 - final)}]
            conditions = [
                {"type": "Created", "status": "True", "reason": "TrialCreated", "message": "Trial is created",
                 "lastUpdateTime": _rfc(t.start), "lastTransitionTime": _rfc(t.start)},
                {"type": "Running", "status": "False", "reason": "TrialRunning", "message": message,
                 "lastUpdateTime": _rfc(t.end), "lastTransitionTime": _rfc(t.end)},
                {"type": t.state, "status": "True", "reason": reason, "message": message,
                 "lastUpdateTime": _rfc(t.end), "lastTransitionTime": _rfc(t.end)},
            ]
            trial = Trial.from_dict({
                "metadata": {"name": name, "namespace": "default", "labels": {EXPERIMENT_LABEL: EXPERIMENT}},
                "spec": {"objective": exp.spec.objective.to_dict() if exp.spec.objective else {},
                         "parameterAssignments": [{"name": k, "value": str(v)} for k, v in t.params.items()],
                         "runSpec": run_spec},
                "status": {"startTime": _rfc(t.start), "completionTime": _rfc(t.end), "conditions": conditions,
                           **({"observation": {"metrics": metrics}} if metrics else {})},
            })
            stored.append(store.create_trial(trial, EXPERIMENT))
            logs = []
            for s, acc in enumerate(t.curve):
                when = t.start + timedelta(seconds=2 * (s + 1))
                logs.append(MetricLog("accuracy", repr(acc), when, s, s + 1))
                logs.append(MetricLog("loss", repr(1 - acc), when, s, s + 1))
            store.report_observations(name, logs)
    exp = store.get_experiment(EXPERIMENT)
    exp.status = compute_status(exp, stored)
    # A finished experiment, as `katib run` leaves one.
    start, end = _rfc(trials[0].start), _rfc(max(t.end for t in trials))
    exp.status.start_time, exp.status.completion_time = start, end
    C = ExperimentCondition
    set_condition(exp.status.conditions, C.CREATED, "True", C.REASON_CREATED, "Experiment is created", start)
    done = "Experiment has succeeded because max trial count has reached"
    set_condition(exp.status.conditions, C.RUNNING, "False", C.REASON_RUNNING, done, end)
    set_condition(exp.status.conditions, C.SUCCEEDED, "True", C.REASON_MAX_TRIALS_REACHED, done, end)
    store.update_experiment_status(exp)
    store.close()


def fill_optuna(url: str, trials: list[SyntheticTrial]) -> int:
    """The same trials as an Optuna study in RDB storage at ``url``; returns the study id.

    The first trial goes in through Optuna (which creates the schema and writes each
    distribution in its own format); the rest are bulk-inserted in the rows Optuna wrote for
    it, because ``add_trials`` spends about 0.1 s a trial in the ORM (half an hour for 20,000)."""
    import json

    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    from optuna.trial import TrialState, create_trial
    from sqlalchemy import create_engine, text

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = {"lr": FloatDistribution(1e-4, 0.1, log=True), "alpha": FloatDistribution(1e-5, 0.01, log=True),
             "hidden": IntDistribution(16, 256), "activation": CategoricalDistribution(["relu", "tanh", "logistic"])}
    study = optuna.create_study(storage=url, study_name=EXPERIMENT, direction="maximize")
    states = {"Succeeded": TrialState.COMPLETE, "Failed": TrialState.FAIL, "EarlyStopped": TrialState.PRUNED}
    first = trials[0]
    study.add_trial(create_trial(
        state=states[first.state], params=first.params, distributions=dists,
        value=first.curve[-1] if states[first.state] == TrialState.COMPLETE else None,
        intermediate_values=dict(enumerate(first.curve)),
        user_attrs={"loss": 1 - first.curve[-1]} if first.curve else {}))
    study_id = int(study._study_id)
    engine = create_engine(url)
    with engine.begin() as conn:
        dist_json = dict(conn.execute(text("SELECT param_name, distribution_json FROM trial_params")).all())
        rows: dict[str, list[dict[str, Any]]] = {"t": [], "p": [], "v": [], "i": [], "u": []}
        for number, t in enumerate(trials[1:], start=1):
            trial_id = number + 1
            state = states[t.state]
            rows["t"].append({"id": trial_id, "n": number, "s": study_id, "st": state.name,
                              "a": t.start.replace(tzinfo=None), "b": t.end.replace(tzinfo=None)})
            for name, value in t.params.items():
                internal = dists[name].to_internal_repr(value)
                rows["p"].append({"id": trial_id, "k": name, "v": float(internal), "d": dist_json[name]})
            if state == TrialState.COMPLETE:
                rows["v"].append({"id": trial_id, "v": t.curve[-1]})
            for step, value in enumerate(t.curve):
                rows["i"].append({"id": trial_id, "s": step, "v": value})
            if t.curve:
                rows["u"].append({"id": trial_id, "v": json.dumps(1 - t.curve[-1])})
        conn.execute(text("INSERT INTO trials (trial_id, number, study_id, state, datetime_start, "
                          "datetime_complete) VALUES (:id, :n, :s, :st, :a, :b)"), rows["t"])
        conn.execute(text("INSERT INTO trial_params (trial_id, param_name, param_value, distribution_json) "
                          "VALUES (:id, :k, :v, :d)"), rows["p"])
        conn.execute(text("INSERT INTO trial_values (trial_id, objective, value, value_type) "
                          "VALUES (:id, 0, :v, 'FINITE')"), rows["v"])
        conn.execute(text("INSERT INTO trial_intermediate_values (trial_id, step, intermediate_value, "
                          "intermediate_value_type) VALUES (:id, :s, :v, 'FINITE')"), rows["i"])
        conn.execute(text("INSERT INTO trial_user_attributes (trial_id, key, value_json) "
                          "VALUES (:id, 'loss', :v)"), rows["u"])
    engine.dispose()
    # Read back through Optuna: the bulk rows must be trials it understands.
    loaded = optuna.load_study(study_name=EXPERIMENT, storage=url).get_trials(deepcopy=False)
    if len(loaded) != len(trials) or loaded[-1].params != trials[-1].params:
        raise RuntimeError(f"the Optuna study holds {len(loaded)} trials, expected {len(trials)}")
    return study_id


def build(directory: Path, n: int) -> tuple[str, str, int]:
    """Both stores for ``n`` trials under ``directory`` (reused when built before)."""
    directory.mkdir(parents=True, exist_ok=True)
    katib_db, optuna_db = directory / f"katib-{n}.db", directory / f"optuna-{n}.db"
    katib_url, optuna_url = f"sqlite:///{katib_db}", f"sqlite:///{optuna_db}"
    done = directory / f"ready-{n}"
    if not done.exists():
        for p in (katib_db, optuna_db):
            p.unlink(missing_ok=True)
        trials = synthetic_trials(n)
        fill_katib(katib_url, trials)
        study_id = fill_optuna(optuna_url, trials)
        done.write_text(str(study_id))
    return katib_url, optuna_url, int(done.read_text())
