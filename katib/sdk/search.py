"""Search-space helpers for ``katib.tune``: ``double``, ``int``, ``categorical``, ``discrete``.

Each returns a ``katib.api.model.ParameterSpec`` with an empty name; ``tune`` names it after
its key in the ``parameters`` dict. Upstream's helpers (reference §11.3) take neither a
``distribution`` nor offer ``discrete``; these do, and they check their arguments at once,
raising ``ValueError`` naming the argument, instead of leaving it to the webhook or to the
first suggestion call.

The objective receives each value typed: ``int`` parameters as int, ``double`` as float,
``discrete`` as int when every value is a whole number (else float) and ``categorical``
values as the objects listed (str, int, float or bool).

``int`` shadows the builtin in this module (upstream's name); ``builtins.int`` is used
wherever the builtin is meant.
"""

from __future__ import annotations

import builtins
import math
from typing import Any, Sequence

from katib.api.model import Distribution, FeasibleSpace, ParameterSpec, ParameterType
from katib.api.space import format_value

__all__ = ["double", "int", "categorical", "discrete", "DISTRIBUTIONS", "VALUES_ATTR"]

DISTRIBUTIONS = (Distribution.UNIFORM, Distribution.LOG_UNIFORM, Distribution.NORMAL, Distribution.LOG_NORMAL)
Number = builtins.int | float
VALUES_ATTR = "_katib_categorical_values"


def _is_number(value: Any) -> bool:
    return isinstance(value, (builtins.int, float)) and not isinstance(value, bool)


def _check_number(helper: str, arg: str, value: Any, whole: bool) -> None:
    if not _is_number(value):
        raise ValueError(f"katib.search.{helper}: {arg} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"katib.search.{helper}: {arg} must be finite, got {value!r}")
    if whole and not float(value).is_integer():
        raise ValueError(f"katib.search.{helper}: {arg} must be a whole number, got {value!r}; "
                         "use katib.search.double for fractions")


def _check_distribution(helper: str, distribution: str, low: Number) -> None:
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"katib.search.{helper}: distribution must be one of {', '.join(DISTRIBUTIONS)}, "
                         f"got {distribution!r}")
    if distribution in (Distribution.LOG_UNIFORM, Distribution.LOG_NORMAL) and low <= 0:
        raise ValueError(f"katib.search.{helper}: min must be above 0 for distribution {distribution!r} "
                         f"(the logarithm of {low!r} does not exist), got min={low!r}")


def _range(helper: str, kind: str, low: Any, high: Any, step: Any, distribution: str) -> ParameterSpec:
    whole = kind == ParameterType.INT
    _check_number(helper, "min", low, whole)
    _check_number(helper, "max", high, whole)
    if low > high:
        raise ValueError(f"katib.search.{helper}: min ({low!r}) must not be above max ({high!r}); swap them")
    if step is not None:
        _check_number(helper, "step", step, whole)
        if step <= 0:
            raise ValueError(f"katib.search.{helper}: step must be above 0, got {step!r}")
        if high > low and step > high - low:
            raise ValueError(f"katib.search.{helper}: step ({step!r}) is larger than max - min ({high - low!r})")
    _check_distribution(helper, distribution, low)

    def text(v: Number) -> str:
        return str(builtins.int(v)) if whole else format_value(float(v))

    return ParameterSpec(name="", parameter_type=kind, feasible_space=FeasibleSpace(
        min=text(low), max=text(high), step=None if step is None else text(step), distribution=distribution))


def double(min: float, max: float, step: float | None = None,  # noqa: A002 - upstream's argument names
           distribution: str = Distribution.UNIFORM) -> ParameterSpec:
    """A float between ``min`` and ``max`` (inclusive), on a grid of ``step`` if given.

    ``distribution``: ``uniform`` (default), ``logUniform`` (min > 0), ``normal`` or
    ``logNormal`` (min > 0); algorithms that cannot sample a distribution say so before the
    first trial.
    """
    return _range("double", ParameterType.DOUBLE, min, max, step, distribution)


def int(min: builtins.int, max: builtins.int, step: builtins.int | None = None,  # noqa: A001,A002
        distribution: str = Distribution.UNIFORM) -> ParameterSpec:
    """A whole number between ``min`` and ``max`` (inclusive), every ``step`` if given."""
    return _range("int", ParameterType.INT, min, max, step, distribution)


def categorical(list: Sequence[str | builtins.int | float | bool]) -> ParameterSpec:  # noqa: A002 - upstream's name
    """One of the values listed. Values may be str, int, float or bool; the objective
    receives the listed object itself (``True``, not ``"true"``)."""
    values = _values("categorical", list)
    for i, v in enumerate(values):
        if not isinstance(v, (str, builtins.int, float)):
            raise ValueError(f"katib.search.categorical: list[{i}] must be a str, int, float or bool, "
                             f"got {type(v).__name__} {v!r}")
    texts = [format_value(v) for v in values]
    _unique("categorical", texts)
    spec = ParameterSpec(name="", parameter_type=ParameterType.CATEGORICAL, feasible_space=FeasibleSpace(list=texts))
    if any(not isinstance(v, str) for v in values):
        # The wire form is text ("true", "1"); remember the objects so tune() can hand the
        # objective ``True`` and ``1`` back. Not a dataclass field: it never reaches the API.
        setattr(spec, VALUES_ATTR, tuple(values))
    return spec


def discrete(list: Sequence[builtins.int | float]) -> ParameterSpec:  # noqa: A002 - upstream's name
    """One of the numbers listed (an ordered set: algorithms may treat it as numeric)."""
    values = _values("discrete", list)
    for i, v in enumerate(values):
        if not _is_number(v) or not math.isfinite(v):
            raise ValueError(f"katib.search.discrete: list[{i}] must be a finite number, got {v!r}; "
                             "use katib.search.categorical for other values")
    texts = [format_value(v) for v in values]
    _unique("discrete", [repr(float(v)) for v in values])
    return ParameterSpec(name="", parameter_type=ParameterType.DISCRETE, feasible_space=FeasibleSpace(list=texts))


def _values(helper: str, values: Any) -> builtins.list[Any]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ValueError(f"katib.search.{helper}: list must be a list of values, got {values!r}")
    out = builtins.list(values)
    if not out:
        raise ValueError(f"katib.search.{helper}: list must hold at least one value")
    return out


def _unique(helper: str, keys: builtins.list[str]) -> None:
    seen: dict[str, builtins.int] = {}
    for i, key in enumerate(keys):
        if key in seen:
            raise ValueError(f"katib.search.{helper}: list[{i}] repeats list[{seen[key]}]; remove the duplicate")
        seen[key] = i
