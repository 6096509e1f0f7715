"""Search-space plumbing shared by the algorithms.

Every algorithm needs the same few things: turn a point of the unit cube into a legal
assignment (honouring type, bounds, step and distribution), turn an assignment back into
the unit cube (to learn from trials it did not create), a canonical key to compare points,
and a way to fill a batch with distinct, not yet seen points.

The unit-cube mapping is the *documented mapping* for distributions the libraries lack:

* ``uniform``: linear on ``[min, max]``.
* ``logUniform``: linear in ``ln x`` on ``[min, max]``. A range with ``min <= 0`` is clamped
  to ``[1, max]`` for int and ``[1e-10, max]`` for double, as upstream's optuna service does;
  ``max <= 0`` is rejected by validation.
* ``normal``: a normal with ``mu = (min+max)/2`` and ``sigma = (max-min)/6`` (upstream's
  hyperopt choice), **truncated** to ``[min, max]`` through its inverse CDF, so values never
  leave the feasible space (upstream's hyperopt could).
* ``logNormal``: the same in ``ln x``.

A ``step`` quantizes to ``min + k*step`` (``k`` clamped so the value stays within ``max``);
the continuous range is widened by half a step on each side so the end points of the grid
get their full share of probability.
"""

from __future__ import annotations

import math
import random
from statistics import NormalDist
from typing import Any, Iterable, Iterator, Mapping, Sequence

from katib.api.model import Distribution, ObjectiveSpec, ParameterType
from katib.api.space import Parameter, SearchSpace, Value
from katib.errors import SearchSpaceExhausted, SettingsError
from suggestion.base import Algorithm, Assignment, check_known, parse_int

__all__ = ["Dim", "SpaceCodec", "SeenPoints", "SettingsParsed", "check_space", "parse_seed", "to_assignments"]

LOG_FLOOR_INT = 1
LOG_FLOOR_DOUBLE = 1e-10
_KNOWN_DISTRIBUTIONS = (None, "", Distribution.UNIFORM, Distribution.LOG_UNIFORM,
                        Distribution.NORMAL, Distribution.LOG_NORMAL, Distribution.UNKNOWN)
_STD_NORMAL = NormalDist()


def parse_seed(settings: Mapping[str, str]) -> int | None:
    return parse_int(settings, "random_state", None, min_value=0)


def param_path(space: SearchSpace, name: str, tail: str = "") -> str:
    index = space.names.index(name)
    return f"spec.parameters[{index}]{tail}"


def check_space(space: SearchSpace, algorithm: str) -> None:
    """Reject, naming the parameter, what no algorithm here can sample."""
    for p in space:
        if p.distribution not in _KNOWN_DISTRIBUTIONS:
            raise SettingsError(param_path(space, p.name, ".feasibleSpace.distribution"),
                                f"parameter {p.name!r}: {algorithm} does not support distribution "
                                f"{p.distribution!r}; use uniform, logUniform, normal or logNormal")
        if p.type in (ParameterType.CATEGORICAL, ParameterType.DISCRETE):
            if not p.values:
                raise SettingsError(param_path(space, p.name, ".feasibleSpace.list"),
                                    f"parameter {p.name!r}: the list of values is empty")
            continue
        if p.type not in (ParameterType.INT, ParameterType.DOUBLE):
            raise SettingsError(param_path(space, p.name, ".parameterType"),
                                f"parameter {p.name!r}: {algorithm} cannot sample type {p.type!r}")
        if p.low is None or p.high is None or p.low > p.high:
            raise SettingsError(param_path(space, p.name, ".feasibleSpace"),
                                f"parameter {p.name!r}: needs min <= max")
        if p.step is not None and p.step <= 0:
            raise SettingsError(param_path(space, p.name, ".feasibleSpace.step"),
                                f"parameter {p.name!r}: step must be > 0")
        if p.is_log and p.high <= 0:
            raise SettingsError(param_path(space, p.name, ".feasibleSpace.max"),
                                f"parameter {p.name!r}: {p.distribution} needs max > 0")


class Dim:
    """One parameter's mapping between the unit interval and legal values."""

    def __init__(self, param: Parameter) -> None:
        self.param = param
        self.name = param.name
        self.choices: list[Value] = []
        self.count: int | None = None  # number of legal values, None when continuous
        if param.type in (ParameterType.CATEGORICAL, ParameterType.DISCRETE):
            self.kind = "choice"
            self.choices = list(param.values)
            self._index = {v: i for i, v in enumerate(self.choices)}
            self.count = len(self.choices)
            return
        self.kind = "int" if param.type == ParameterType.INT else "double"
        assert param.low is not None and param.high is not None
        self.low = float(param.low)
        self.high = float(param.high)
        self.step = float(param.step) if param.step else None
        dist = param.distribution
        self.log = dist in (Distribution.LOG_UNIFORM, Distribution.LOG_NORMAL)
        self.normal = dist in (Distribution.NORMAL, Distribution.LOG_NORMAL)
        if self.step:
            self.count = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
            self.grid_high = self.grid_value(self.count - 1)
        else:
            self.grid_high = self.high
        lo = self.low
        if self.log and lo <= 0:
            floor = LOG_FLOOR_INT if self.kind == "int" else LOG_FLOOR_DOUBLE
            lo = min(float(floor), self.high)
        self.low_eff = lo  # lowest value the (log) distribution can reach
        a, b = lo, float(self.grid_high)
        if self.step:
            if not self.log or lo - self.step / 2 > 0:
                a = lo - self.step / 2
            b = b + self.step / 2
        if self.log:
            a, b = math.log(a), math.log(b)
            mu_lo, mu_hi = math.log(lo), math.log(self.high)
        else:
            mu_lo, mu_hi = lo, self.high
        self.a, self.b = a, b
        self.mu = (mu_lo + mu_hi) / 2
        self.sigma = (mu_hi - mu_lo) / 6
        if self.normal and self.sigma > 0:
            self.cdf_a = _STD_NORMAL.cdf((a - self.mu) / self.sigma)
            self.cdf_b = _STD_NORMAL.cdf((b - self.mu) / self.sigma)

    @property
    def constant(self) -> bool:
        return self.count == 1 or (self.kind != "choice" and self.low == self.high)

    def grid_value(self, k: int) -> Value:
        """The k-th point of the step grid, computed exactly as ``Parameter.grid`` does so
        that grid, random and model-based algorithms agree on the text of a value."""
        if self.kind == "int":
            return int(self.low) + k * int(self.step or 1)
        assert self.step
        return round(self.low + k * self.step, 12)

    def quantize(self, x: float) -> Value:
        """The legal value nearest to ``x`` (on the grid when there is a step)."""
        if self.kind == "choice":
            raise TypeError("quantize is for numeric parameters")
        if not math.isfinite(x):
            x = self.low if x < 0 else self.high
        if self.step:
            assert self.count is not None
            k = int(math.floor((x - self.low) / self.step + 0.5))
            return self.grid_value(min(max(k, 0), self.count - 1))
        return float(min(max(x, self.low), self.high))

    def from_unit(self, u: float) -> Value:
        if self.kind == "choice":
            return self.choices[min(int(u * len(self.choices)), len(self.choices) - 1)]
        if self.constant:
            return self.quantize(self.low)
        u = min(max(u, 0.0), 1.0)
        if self.normal and self.sigma > 0:
            p = self.cdf_a + u * (self.cdf_b - self.cdf_a)
            t = self.mu + self.sigma * _STD_NORMAL.inv_cdf(min(max(p, 1e-15), 1 - 1e-15))
            t = min(max(t, self.a), self.b)
        else:
            t = self.a + u * (self.b - self.a)
        return self.quantize(math.exp(t) if self.log else t)

    def to_unit(self, value: Any) -> float:
        """Inverse of ``from_unit`` (up to quantization); foreign values are clamped."""
        if self.kind == "choice":
            index = self._index.get(value)
            return 0.5 if index is None else (index + 0.5) / len(self.choices)
        try:
            x = float(value)
        except (TypeError, ValueError):
            return 0.5
        if self.constant or self.b <= self.a:
            return 0.5
        t = math.log(max(x, 1e-300)) if self.log else x
        t = min(max(t, self.a), self.b)
        if self.normal and self.sigma > 0:
            p = _STD_NORMAL.cdf((t - self.mu) / self.sigma)
            u = (p - self.cdf_a) / (self.cdf_b - self.cdf_a)
        else:
            u = (t - self.a) / (self.b - self.a)
        return min(max(u, 0.0), 1.0)

    def value_at(self, k: int) -> Value:
        """The k-th legal value of a finite parameter (enumeration order of ``grid()``)."""
        return self.choices[k] if self.kind == "choice" else self.grid_value(k)


class SpaceCodec:
    """The whole search space as a list of ``Dim``."""

    def __init__(self, space: SearchSpace, exclude: Iterable[str] = ()) -> None:
        skip = set(exclude)
        self.space = space
        self.dims = [Dim(p) for p in space if p.name not in skip]
        self.names = [d.name for d in self.dims]
        size: int | None = 1
        for d in self.dims:
            if d.count is None:
                size = None
                break
            size *= d.count  # type: ignore[operator]
        self.finite_size = size  # None when any dimension is continuous

    def key(self, values: Mapping[str, Any]) -> tuple[str, ...]:
        """Canonical identity of a point: the assignment texts in parameter order."""
        return tuple(d.param.format(values[d.name]) for d in self.dims)

    def decode(self, unit: Sequence[float]) -> dict[str, Value]:
        return {d.name: d.from_unit(u) for d, u in zip(self.dims, unit)}

    def encode(self, values: Mapping[str, Any]) -> list[float]:
        return [d.to_unit(values.get(d.name)) for d in self.dims]

    def sample(self, rng: random.Random) -> dict[str, Value]:
        return {d.name: d.from_unit(rng.random()) for d in self.dims}

    def point_at(self, index: int) -> dict[str, Value]:
        """The index-th point of the full grid (last parameter varies fastest, like
        ``itertools.product``); only for finite spaces."""
        values: dict[str, Value] = {}
        for d in reversed(self.dims):
            assert d.count is not None
            index, k = divmod(index, d.count)
            values[d.name] = d.value_at(k)
        return {name: values[name] for name in self.names}

    def in_space(self, values: Mapping[str, Any]) -> bool:
        try:
            return all(d.name in values and d.param.contains(values[d.name]) for d in self.dims)
        except (TypeError, ValueError):
            return False


class SeenPoints:
    """Keys of every point told or suggested, so batches never repeat them."""

    def __init__(self, codec: SpaceCodec) -> None:
        self.codec = codec
        self._keys: set[tuple[str, ...]] = set()
        self._in_space = 0

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, values: Mapping[str, Any]) -> tuple[str, ...] | None:
        """Remember a point; returns its key (None for assignments missing a parameter)."""
        try:
            key = self.codec.key(values)
        except (KeyError, TypeError, ValueError, IndexError):
            return None
        self.add_key(key, values)
        return key

    def add_key(self, key: tuple[str, ...], values: Mapping[str, Any]) -> None:
        if key not in self._keys:
            self._keys.add(key)
            if self.codec.finite_size is not None and self.codec.in_space(values):
                self._in_space += 1

    @property
    def remaining(self) -> int | None:
        """How many legal points were never seen (None for continuous spaces)."""
        if self.codec.finite_size is None:
            return None
        return max(self.codec.finite_size - self._in_space, 0)

    def check_exhausted(self) -> None:
        if self.remaining == 0:
            raise SearchSpaceExhausted(
                f"all {self.codec.finite_size} points of the search space have been suggested")

    def unseen(self, rng: random.Random, limit: int = 200_000) -> Iterator[dict[str, Value]]:
        """Unseen points of a finite space in random order (enumerates; bounded by ``limit``)."""
        size = self.codec.finite_size
        if size is None or size > limit:
            return
        order = list(range(size))
        rng.shuffle(order)
        for index in order:
            values = self.codec.point_at(index)
            if self.codec.key(values) not in self._keys:
                yield values

    def fill(self, batch: list[dict[str, Value]], n: int, rng: random.Random,
             tries: int = 64) -> list[dict[str, Value]]:
        """Top ``batch`` up to ``n`` distinct unseen points: random draws first, then (for a
        nearly exhausted finite space) enumeration. Every point added is marked seen."""
        attempts = 0
        # A seeded instance rebuilt after a restart replays its own sequence and skips what
        # it is told about, so allow one extra draw per point already seen.
        budget = tries * n + len(self._keys)
        while len(batch) < n and attempts < budget:
            attempts += 1
            values = self.codec.sample(rng)
            key = self.codec.key(values)
            if key not in self._keys:
                self.add_key(key, values)
                batch.append(values)
        if len(batch) < n:
            for values in self.unseen(rng):
                self.add(values)
                batch.append(values)
                if len(batch) >= n:
                    break
        return batch


def to_assignments(points: Iterable[Mapping[str, Value]],
                   labels: Mapping[str, str] | None = None) -> list[Assignment]:
    return [Assignment(values=dict(p), labels=dict(labels or {})) for p in points]


class SettingsParsed(Algorithm):
    """Base of built-in algorithms whose validation is: known setting names, settings that
    parse (``parse_settings``, raising SettingsError naming the setting), and a search space
    the algorithm supports. ``parse_settings`` is also what ``__init__`` uses, so validation
    and construction can never disagree."""

    @classmethod
    def parse_settings(cls, settings: Mapping[str, str]) -> Any:
        return parse_seed(settings)

    @classmethod
    def validate_settings(cls, settings: Mapping[str, str], space: SearchSpace, objective: ObjectiveSpec, *,
                          max_trial_count: int | None = None, parallel_trial_count: int | None = None) -> None:
        check_known(cls.name, settings, cls.settings)
        cls.parse_settings(settings)
        check_space(space, cls.name)
