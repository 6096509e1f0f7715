"""Experiments with chosen trials for the visualization tests: built as the runner stores
them (conditions, observations, times), in memory or in the real Store."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Sequence

from katib.api.model import (Condition, Experiment, Metric, ObjectMeta, Observation, ParameterAssignment, Trial,
                             TrialCondition, TrialSpec, TrialStatus)
from katib.api.observation import MetricLog
from katib.store import Store
from tests.api.factory import experiment as base_experiment

EXPERIMENT_LABEL = "katib.kubeflow.org/experiment"
T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


def stamp(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def experiment(name: str = "demo", direction: str = "minimize", *, log_lr: bool = True,
               extra_params: Sequence[dict[str, Any]] = ()) -> Experiment:
    """lr (double, log-uniform when ``log_lr``), layers (int 1..5), optimizer (categorical
    sgd/adam/rmsprop); objective ``loss`` (or ``accuracy`` when maximizing) plus one more metric."""
    metric, other = ("loss", "accuracy") if direction == "minimize" else ("accuracy", "loss")

    def mutate(d: dict[str, Any]) -> None:
        d["metadata"]["name"] = name
        d["spec"]["objective"] = {"type": direction, "objectiveMetricName": metric, "additionalMetricNames": [other]}
        d["spec"]["maxTrialCount"] = 100000
        params = d["spec"]["parameters"]
        params[0]["feasibleSpace"] = {"min": "0.0001", "max": "0.1",
                                      **({"distribution": "logUniform"} if log_lr else {})}
        params[1]["feasibleSpace"] = {"min": "1", "max": "5"}
        params[2]["feasibleSpace"] = {"list": ["sgd", "adam", "rmsprop"]}
        params.extend(extra_params)

    return base_experiment(mutate)


def trial(exp: Experiment, number: int, params: dict[str, Any], state: str = TrialCondition.SUCCEEDED,
          metrics: dict[str, float] | None = None, *, message: str = "", duration: float = 10.0) -> Trial:
    """A trial as the runner leaves it: created/started/completed times a second apart per
    number, the conditions of ``state`` and an observation of ``metrics`` (min = max = latest)."""
    name = f"{exp.name}-{number:05d}"
    created = T0 + timedelta(seconds=number)
    conditions = [Condition("Created", "True", "TrialCreated", "created", stamp(created), stamp(created))]
    status = TrialStatus(start_time=stamp(created), conditions=conditions)
    if state != "Pending":
        conditions.append(Condition("Running", "True" if state == "Running" else "False", "TrialRunning", "running"))
    if state not in ("Pending", "Running"):
        status.completion_time = stamp(created + timedelta(seconds=duration))
        conditions.append(Condition(state, "True", TrialCondition.REASONS[state], message or state.lower()))
    if state == "Pending":
        status.start_time = None
    if metrics:
        status.observation = Observation([Metric(k, repr(v), repr(v), repr(v)) for k, v in metrics.items()])
    return Trial(metadata=ObjectMeta(name=name, namespace=exp.metadata.namespace or "default",
                                     labels={EXPERIMENT_LABEL: exp.name}, creation_timestamp=stamp(created)),
                 spec=TrialSpec(parameter_assignments=[ParameterAssignment(k, str(v)) for k, v in params.items()]),
                 status=status)


def quadratic(p: dict[str, Any]) -> float:
    """Dominated by lr (on its log scale); layers matters a little; optimizer not at all."""
    return (math.log10(p["lr"]) + 2.5) ** 2 + 0.01 * (p["layers"] - 3) ** 2


def random_trials(exp: Experiment, count: int, seed: int = 0, objective: Callable[[dict[str, Any]], float] = quadratic,
                  failed_every: int = 0) -> list[Trial]:
    rng = random.Random(seed)
    metric = exp.spec.objective.objective_metric_name or "" if exp.spec.objective else ""
    out = []
    for i in range(count):
        p = {"lr": 10 ** rng.uniform(-4, -1), "layers": rng.randint(1, 5), "optimizer": rng.choice(["sgd", "adam", "rmsprop"])}
        if failed_every and i % failed_every == failed_every - 1:
            out.append(trial(exp, i, p, TrialCondition.FAILED, message="exit status 1"))
        else:
            v = objective(p)
            out.append(trial(exp, i, p, metrics={metric: v, "accuracy" if metric == "loss" else "loss": 1 - v}))
    return out


def store_experiment(store: Store, exp: Experiment, trials: Sequence[Trial],
                     observations: dict[str, list[MetricLog]] | None = None) -> None:
    """Write the experiment, its trials and their observation rows through the Store."""
    store.create_experiment(exp)
    with store.transaction():
        for t in trials:
            store.create_trial(t, exp.name)  # status and creation time are stored as given
    for name, rows in (observations or {}).items():
        store.report_observations(name, rows)
