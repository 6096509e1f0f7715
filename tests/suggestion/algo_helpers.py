"""Helpers for the algorithm tests: search spaces, a simulated trial loop."""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

from katib.api.model import FeasibleSpace, ObjectiveSpec, ParameterSpec
from katib.api.space import SearchSpace, Value
from suggestion import registry
from suggestion.base import Algorithm, Assignment, TrialResult, TrialState

# Settings an algorithm needs to run at all (hyperband needs its resource).
REQUIRED = {"hyperband": {"r_l": "9", "eta": "3", "resource_name": "epochs"}}
ALL = ["random", "grid", "sobol", "tpe", "multivariate-tpe", "cmaes", "bayesianoptimization", "hyperband"]
MODEL_BASED = ["tpe", "multivariate-tpe", "cmaes", "bayesianoptimization"]

MINIMIZE = ObjectiveSpec(type="minimize", objective_metric_name="loss")
MAXIMIZE = ObjectiveSpec(type="maximize", objective_metric_name="accuracy")


def param(name: str, type_: str, low: str | None = None, high: str | None = None, *,
          step: str | None = None, values: Sequence[str] | None = None,
          distribution: str = "uniform") -> ParameterSpec:
    return ParameterSpec(name, type_, FeasibleSpace(min=low, max=high, step=step,
                                                    list=list(values) if values else None,
                                                    distribution=distribution))


def space_of(*specs: ParameterSpec) -> SearchSpace:
    return SearchSpace.from_specs(list(specs))


def mixed_space(distribution: str = "uniform", *, continuous: bool = True) -> SearchSpace:
    """Every type; numeric parameters use ``distribution``; ``epochs`` is hyperband's resource."""
    specs = [
        param("x", "double", "-2", "3", distribution="uniform" if distribution.startswith("log") else distribution),
        param("lr", "double", "0.0001", "0.1", distribution=distribution),
        param("m", "double", "0.1", "0.9", step="0.1", distribution=distribution),
        param("units", "int", "1", "512", distribution=distribution),
        param("layers", "int", "2", "20", step="3", distribution=distribution),
        param("opt", "categorical", values=["sgd", "adam", "ftrl"]),
        param("batch", "discrete", values=["16", "32.5", "64"]),
        param("epochs", "int", "1", "9"),
    ]
    if not continuous:
        specs = [s for s in specs if s.name not in ("x", "lr")]
    return space_of(*specs)


def settings_for(name: str, **extra: str) -> dict[str, str]:
    return {**REQUIRED.get(name, {}), **extra}


def make(name: str, space: SearchSpace, objective: ObjectiveSpec = MINIMIZE,
         parallel: int | None = 9, max_trials: int | None = None, **extra: str) -> Algorithm:
    cls = registry.get(name)
    settings = settings_for(name, **extra)
    cls.validate_settings(settings, space, objective, max_trial_count=max_trials, parallel_trial_count=parallel)
    return cls(space, objective, settings, max_trial_count=max_trials, parallel_trial_count=parallel)


def result(name: str, a: Assignment | Mapping[str, Value], value: float | None,
           state: str = TrialState.SUCCEEDED, order: float = 0.0) -> TrialResult:
    values = a.values if isinstance(a, Assignment) else a
    labels = a.labels if isinstance(a, Assignment) else {}
    return TrialResult(name=name, assignments=dict(values), state=state, value=value, order=order,
                       labels=dict(labels))


class Loop:
    """Simulates a controller: asks, 'runs' trials with ``objective``, tells the results."""

    def __init__(self, algo: Algorithm, objective: Callable[[Mapping[str, Value]], float]) -> None:
        self.algo = algo
        self.objective = objective
        self.trials: list[TrialResult] = []

    def round(self, n: int, finish: bool = True) -> list[Assignment]:
        batch = self.algo.ask(n)
        fresh = []
        for a in batch:
            i = len(self.trials)
            state = TrialState.SUCCEEDED if finish else TrialState.RUNNING
            value = self.objective(a.values) if finish else None
            t = result(f"trial-{i}", a, value, state, order=float(i))
            self.trials.append(t)
            fresh.append(t)
        self.algo.tell(fresh)
        return batch

    def finish_running(self) -> None:
        done = []
        for i, t in enumerate(self.trials):
            if t.state == TrialState.RUNNING:
                t = TrialResult(t.name, t.assignments, TrialState.SUCCEEDED, self.objective(t.assignments),
                                order=t.order, labels=t.labels)
                self.trials[i] = t
                done.append(t)
        self.algo.tell(done)


def key(space: SearchSpace, values: Mapping[str, Value]) -> tuple[str, ...]:
    return tuple(space[n].format(values[n]) for n in space.names)
