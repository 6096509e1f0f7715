"""Typed search space: what algorithms see instead of upstream's strings.

``SearchSpace.from_experiment`` expects an experiment that passed validation; it still
raises ``ValidationError`` naming the field if a value does not parse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

from katib.api.model import Distribution, ExperimentSpec, NasConfig, ParameterSpec, ParameterType
from katib.errors import FieldError, ValidationError

__all__ = ["Parameter", "SearchSpace", "Value", "format_value"]

Value = int | float | str


def format_value(value: Value) -> str:
    """Text of a value as it travels in assignments: ints plainly, floats in the shortest
    form that round-trips, strings unchanged."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e16:
            return repr(value)  # "3.0", not "3", so a double stays a double
        return repr(value)
    return str(value)


def _number(text: str) -> int | float:
    number = float(text)
    if number.is_integer() and "." not in text and "e" not in text.lower():
        return int(number)
    return number


@dataclass(frozen=True)
class Parameter:
    """One typed parameter.

    ``low``/``high``/``step`` are set for int and double; ``values`` for categorical and
    discrete (discrete values are numbers, categorical values strings). ``distribution`` is
    one of ``katib.api.model.Distribution`` (never empty: validation defaults it).
    """

    name: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    values: tuple[Value, ...] = ()
    distribution: str = Distribution.UNIFORM
    texts: tuple[str, ...] = field(default=(), compare=False)  # original list items

    @property
    def is_numeric_range(self) -> bool:
        return self.type in (ParameterType.INT, ParameterType.DOUBLE)

    @property
    def is_log(self) -> bool:
        return self.distribution in (Distribution.LOG_UNIFORM, Distribution.LOG_NORMAL)

    def contains(self, value: Value) -> bool:
        """Whether ``value`` is a legal point of this parameter (type, bounds, step, list)."""
        if self.type in (ParameterType.CATEGORICAL, ParameterType.DISCRETE):
            return value in self.values
        if self.type == ParameterType.INT and (not isinstance(value, int) or isinstance(value, bool)):
            return False
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return False
        assert self.low is not None and self.high is not None
        if not (self.low <= value <= self.high):
            return False
        if self.step:
            k = (value - self.low) / self.step
            return math.isclose(k, round(k), abs_tol=1e-6)
        return True

    def parse(self, text: str) -> Value:
        """The typed value of an assignment string (as produced by ``format``)."""
        if self.type == ParameterType.INT:
            return int(float(text))
        if self.type == ParameterType.DOUBLE:
            return float(text)
        if self.type == ParameterType.DISCRETE:
            if text in self.texts:
                return self.values[self.texts.index(text)]
            number = float(text)
            for v in self.values:
                if isinstance(v, (int, float)) and math.isclose(float(v), number):
                    return v
            return _number(text)
        return text

    def format(self, value: Value) -> str:
        """The assignment string of a typed value; discrete values keep their original text."""
        if self.type == ParameterType.DISCRETE and value in self.values:
            return self.texts[self.values.index(value)]
        if self.type == ParameterType.INT:
            return str(int(value))  # type: ignore[arg-type]
        if self.type == ParameterType.DOUBLE:
            return format_value(float(value))  # type: ignore[arg-type]
        return format_value(value)

    def grid(self) -> list[Value]:
        """Every point of a finite parameter (int, double with step, lists)."""
        if self.type in (ParameterType.CATEGORICAL, ParameterType.DISCRETE):
            return list(self.values)
        assert self.low is not None and self.high is not None
        if self.type == ParameterType.INT:
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        if not self.step:
            raise ValidationError(f"parameter {self.name!r} is a double without a step; "
                                  "set feasibleSpace.step to enumerate it")
        count = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
        return [round(self.low + i * self.step, 12) for i in range(count)]

    @classmethod
    def from_spec(cls, spec: ParameterSpec, path: str = "") -> "Parameter":
        fs = spec.feasible_space
        dist = fs.distribution or Distribution.UNIFORM
        try:
            if spec.parameter_type in (ParameterType.INT, ParameterType.DOUBLE):
                to = int if spec.parameter_type == ParameterType.INT else float
                low = to(float(fs.min)) if spec.parameter_type == ParameterType.INT else float(fs.min)  # type: ignore[arg-type]
                high = to(float(fs.max)) if spec.parameter_type == ParameterType.INT else float(fs.max)  # type: ignore[arg-type]
                step: float | int | None = None
                if fs.step not in (None, ""):
                    step = int(float(fs.step)) if spec.parameter_type == ParameterType.INT else float(fs.step)  # type: ignore[arg-type]
                elif spec.parameter_type == ParameterType.INT:
                    step = 1
                return cls(spec.name, spec.parameter_type, low, high, step, (), dist)
            texts = tuple(fs.list or [])
            if spec.parameter_type == ParameterType.DISCRETE:
                values: tuple[Value, ...] = tuple(_number(t) for t in texts)
            else:
                values = texts
            return cls(spec.name, spec.parameter_type, values=values, distribution=dist, texts=texts)
        except (TypeError, ValueError) as exc:
            raise ValidationError([FieldError(f"{path}.feasibleSpace", f"does not parse: {exc}")]) from exc


@dataclass(frozen=True)
class SearchSpace:
    """An ordered collection of typed parameters.

    ``nas`` is the experiment's nasConfig, for architecture-search algorithms. Their
    assignments (ENAS's ``architecture``/``nn_config``, DARTS's ``search-space``...) are not
    parameters: ``parse`` and ``format`` carry them through as text.
    """

    parameters: tuple[Parameter, ...]
    nas: NasConfig | None = field(default=None, compare=False)

    def __iter__(self) -> Iterator[Parameter]:
        return iter(self.parameters)

    def __len__(self) -> int:
        return len(self.parameters)

    def __getitem__(self, name: str) -> Parameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]

    def parse(self, assignments: dict[str, str]) -> dict[str, Value]:
        if self.nas is not None:
            return {name: str(text) for name, text in assignments.items()}
        return {p.name: p.parse(assignments[p.name]) for p in self.parameters if p.name in assignments}

    def format(self, values: dict[str, Value]) -> dict[str, str]:
        if self.nas is not None:
            return {name: format_value(value) for name, value in values.items()}
        return {p.name: p.format(values[p.name]) for p in self.parameters if p.name in values}

    def contains(self, values: dict[str, Any]) -> bool:
        return set(values) == set(self.names) and all(p.contains(values[p.name]) for p in self.parameters)

    @classmethod
    def from_specs(cls, specs: Sequence[ParameterSpec]) -> "SearchSpace":
        return cls(tuple(Parameter.from_spec(s, f"spec.parameters[{i}]") for i, s in enumerate(specs)))

    @classmethod
    def from_experiment(cls, spec: ExperimentSpec) -> "SearchSpace":
        return cls(cls.from_specs(spec.parameters).parameters, nas=spec.nas_config)
