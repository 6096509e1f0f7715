"""Small algorithms and helpers for testing the suggestion service and its clients.

Registered under ``test-*`` names when imported, so a server started in-process serves them.
"""

from __future__ import annotations

import random
import socket
import threading
from typing import ClassVar, Mapping, Sequence

from katib.api.model import (
    AlgorithmSetting,
    AlgorithmSpec,
    Experiment,
    ExperimentSpec,
    FeasibleSpace,
    ObjectiveSpec,
    ObjectMeta,
    ParameterSpec,
)
from katib.api.space import Parameter, SearchSpace, Value
from katib.errors import SearchSpaceExhausted
from suggestion import registry
from suggestion.base import Algorithm, Assignment, TrialResult, parse_int

__all__ = ["TinyRandom", "TellCounter", "Finite", "Stateful", "Slow", "experiment", "mixed_parameters", "free_port"]


def _sample(p: Parameter, rng: random.Random) -> Value:
    if p.values:
        return rng.choice(p.values)
    assert p.low is not None and p.high is not None
    if p.step:
        k = rng.randint(0, int((p.high - p.low) / p.step + 1e-9))
        value = p.low + k * p.step
        return int(value) if isinstance(p.low, int) else round(value, 12)
    return rng.uniform(float(p.low), float(p.high))


class TinyRandom(Algorithm):
    """Uniform random points, distinct from each other and from every point told."""

    name = "test-random"
    settings = {"random_state": None}

    def __init__(self, space: SearchSpace, objective: ObjectiveSpec, settings: Mapping[str, str], **kw: int | None) -> None:
        super().__init__(space, objective, settings, **kw)  # type: ignore[arg-type]
        self.rng = random.Random(parse_int(settings, "random_state", 0))
        self.taken: set[tuple[Value, ...]] = set()

    @classmethod
    def validate_settings(cls, settings: Mapping[str, str], space: SearchSpace, objective: ObjectiveSpec,
                          **kw: int | None) -> None:
        super().validate_settings(settings, space, objective, **kw)
        parse_int(settings, "random_state", 0, min_value=0)

    def _key(self, values: Mapping[str, Value]) -> tuple[Value, ...]:
        return tuple(values[p.name] for p in self.space)

    def tell(self, trials: Sequence[TrialResult]) -> None:
        self.taken.update(self._key(t.assignments) for t in trials)

    def ask(self, n: int) -> list[Assignment]:
        out: list[Assignment] = []
        for _ in range(50 * n):
            if len(out) == n:
                break
            values = {p.name: _sample(p, self.rng) for p in self.space}
            if self._key(values) not in self.taken:
                self.taken.add(self._key(values))
                out.append(Assignment(values))
        return out


class TellCounter(TinyRandom):
    """TinyRandom that records the size of every ``tell`` (class-wide, per instance id)."""

    name = "test-counter"
    tells: ClassVar[list[list[str]]] = []
    instances: ClassVar[int] = 0
    lock = threading.Lock()

    def __init__(self, *args: object, **kw: int | None) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        with self.lock:
            TellCounter.instances += 1

    def tell(self, trials: Sequence[TrialResult]) -> None:
        with self.lock:
            TellCounter.tells.append([t.name for t in trials])
        super().tell(trials)

    @classmethod
    def reset(cls) -> None:
        cls.tells = []
        cls.instances = 0


class Finite(Algorithm):
    """Walks the grid of a finite space in order; exhausted when every point was handed out
    and none is still running."""

    name = "test-finite"

    def __init__(self, space: SearchSpace, objective: ObjectiveSpec, settings: Mapping[str, str], **kw: int | None) -> None:
        super().__init__(space, objective, settings, **kw)  # type: ignore[arg-type]
        import itertools

        self.points = [dict(zip(space.names, combo)) for combo in itertools.product(*(p.grid() for p in space))]
        self.handed: set[tuple[Value, ...]] = set()
        self.running: set[str] = set()

    def tell(self, trials: Sequence[TrialResult]) -> None:
        for t in trials:
            self.handed.add(tuple(t.assignments[n] for n in self.space.names))
            (self.running.discard if t.finished else self.running.add)(t.name)

    def ask(self, n: int) -> list[Assignment]:
        left = [p for p in self.points if tuple(p.values()) not in self.handed]
        if not left and not self.running:
            raise SearchSpaceExhausted(f"all {len(self.points)} points were tried")
        batch = left[:n]
        self.handed.update(tuple(p.values()) for p in batch)
        return [Assignment(p, trial_name=None, labels={"test": "finite"}) for p in batch]


class Stateful(TinyRandom):
    """Hands its progress back through ``state_settings`` (as hyperband does) and accepts it
    as a setting; counts how often it is built."""

    name = "test-stateful"
    settings = {"random_state": None, "round": None}
    built: ClassVar[int] = 0

    def __init__(self, *args: object, **kw: int | None) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        Stateful.built += 1
        self.round = parse_int(self.raw_settings, "round", 0) or 0

    def ask(self, n: int) -> list[Assignment]:
        self.round += 1
        return super().ask(n)

    def state_settings(self) -> dict[str, str]:
        return {"round": str(self.round)}


class Slow(TinyRandom):
    """TinyRandom taking ``delay`` seconds per ask (calls in flight during shutdown)."""

    name = "test-slow"
    settings = {"random_state": None, "delay": None}

    def ask(self, n: int) -> list[Assignment]:
        import time

        time.sleep(float(self.raw_settings.get("delay", "1")))
        return super().ask(n)


for _cls in (TinyRandom, TellCounter, Finite, Stateful, Slow):
    registry.register(_cls.name, _cls)


def mixed_parameters(distribution: str = "uniform", *, continuous: bool = True) -> list[ParameterSpec]:
    """int, double (with and without step), categorical and discrete parameters; the numeric
    ones use ``distribution``. Every bound is positive so log distributions apply."""
    params = [
        ParameterSpec("layers", "int", FeasibleSpace(min="1", max="9", distribution=distribution)),
        ParameterSpec("momentum", "double", FeasibleSpace(min="0.5", max="0.9", step="0.1", distribution=distribution)),
        ParameterSpec("activation", "categorical", FeasibleSpace(list=["relu", "tanh", "sigmoid"], distribution="uniform")),
        ParameterSpec("batch", "discrete", FeasibleSpace(list=["16", "32.5", "64"], distribution="uniform")),
    ]
    if continuous:
        params.insert(1, ParameterSpec("lr", "double", FeasibleSpace(min="0.001", max="0.1", distribution=distribution)))
    return params


def experiment(name: str, algorithm: str, parameters: list[ParameterSpec] | None = None,
               settings: Mapping[str, str] | None = None, *, max_trial_count: int | None = 20,
               parallel_trial_count: int | None = 9, objective_type: str = "maximize") -> Experiment:
    return Experiment(
        metadata=ObjectMeta(name=name),
        spec=ExperimentSpec(
            parameters=parameters if parameters is not None else mixed_parameters(),
            objective=ObjectiveSpec(type=objective_type, objective_metric_name="accuracy",
                                    additional_metric_names=["loss"]),
            algorithm=AlgorithmSpec(algorithm, [AlgorithmSetting(k, v) for k, v in (settings or {}).items()]),
            max_trial_count=max_trial_count,
            parallel_trial_count=parallel_trial_count,
        ),
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
