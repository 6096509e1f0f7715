"""Small valid experiments for the API tests, and helpers to assert on FieldErrors."""

from __future__ import annotations

import copy
from typing import Any, Callable

from katib.api.defaults import set_defaults
from katib.api.model import Experiment
from katib.api.validation import validate
from katib.errors import FieldError

UPSTREAM_ALGORITHMS = ("random", "grid", "tpe", "multivariate-tpe", "cmaes", "sobol", "bayesianoptimization",
                       "hyperband", "pbt", "enas", "darts")

JOB = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "spec": {"template": {"spec": {
        "containers": [{
            "name": "training",
            "image": "python:3.11",
            "command": ["python3", "train.py", "--lr=${trialParameters.learningRate}",
                        "--layers=${trialParameters.layers}", "--optimizer=${trialParameters.optimizer}"],
        }],
        "restartPolicy": "Never",
    }}},
}

BASE: dict[str, Any] = {
    "apiVersion": "kubeflow.org/v1beta1",
    "kind": "Experiment",
    "metadata": {"name": "demo", "namespace": "default"},
    "spec": {
        "objective": {"type": "maximize", "goal": 0.99, "objectiveMetricName": "accuracy",
                      "additionalMetricNames": ["loss"]},
        "algorithm": {"algorithmName": "random"},
        "parallelTrialCount": 2,
        "maxTrialCount": 6,
        "maxFailedTrialCount": 2,
        "parameters": [
            {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.01", "max": "0.1"}},
            {"name": "layers", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "3"}},
            {"name": "optimizer", "parameterType": "categorical", "feasibleSpace": {"list": ["sgd", "adam"]}},
        ],
        "trialTemplate": {
            "primaryContainerName": "training",
            "trialParameters": [
                {"name": "learningRate", "reference": "lr"},
                {"name": "layers", "reference": "layers"},
                {"name": "optimizer", "reference": "optimizer"},
            ],
            "trialSpec": JOB,
        },
    },
}


def experiment_dict(mutate: Callable[[dict[str, Any]], Any] | None = None) -> dict[str, Any]:
    d = copy.deepcopy(BASE)
    if mutate is not None:
        mutate(d)
    return d


def experiment(mutate: Callable[[dict[str, Any]], Any] | None = None, *, defaults: bool = True) -> Experiment:
    exp = Experiment.from_dict(experiment_dict(mutate))
    return set_defaults(exp) if defaults else exp


def errors_of(mutate: Callable[[dict[str, Any]], Any] | None = None, **kwargs: Any) -> list[FieldError]:
    return validate(experiment(mutate), **kwargs)


def find(errors: list[FieldError], path: str, *fragments: str) -> FieldError:
    """The error at ``path`` whose message holds every fragment; fails listing all errors."""
    for e in errors:
        if e.path == path and all(f in e.message for f in fragments):
            return e
    raise AssertionError(f"no error at {path!r} containing {fragments}; got:\n" + "\n".join(map(str, errors)))


def paths(errors: list[FieldError]) -> list[str]:
    return [e.path for e in errors]
