"""The trial table, sorted, filtered and cut into pages on the server: a 20,000-trial
experiment sends its browser one page of rows, never all of them.

Columns are keyed ``number``, ``name``, ``state``, ``value`` (the objective), ``duration``
(seconds), ``param:NAME`` and ``metric:NAME``. A filter applies to one column:

* a number column takes ``>x``, ``>=x``, ``<x``, ``<=x``, ``=x``, a range ``a..b`` (both ends
  included), or text that the shown value must contain (``0.12`` matches ``0.123456``);
* a text column (name, state, a categorical parameter) takes text the value must contain
  (any case), several alternatives separated by commas (``Failed,Killed``), or ``=text`` for
  exactly that;
* ``-`` matches rows without a value in that column.

Numbers are shown as the CLI shows them (6 significant digits, ``katib.terminal.number``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from katib.api.model import Condition, ObjectMeta, Trial, TrialStatus
from katib.display import trial_reason
from katib.terminal import number
from katib.visualization.data import ExperimentData, TrialPoint

__all__ = ["Column", "columns", "query", "MAX_LIMIT"]

MAX_LIMIT = 500
_COMPARE = re.compile(r"^(>=|<=|>|<|=)\s*(.+)$")
_RANGE = re.compile(r"^(.+?)\s*\.\.\s*(.+)$")


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    numeric: bool
    get: Callable[[TrialPoint], Any]


def columns(data: ExperimentData) -> list[Column]:
    out = [Column("number", "#", True, lambda t: t.number),
           Column("name", "Trial", False, lambda t: t.name),
           Column("state", "State", False, lambda t: t.state)]
    for p in data.parameters:
        out.append(Column(f"param:{p.name}", p.name, not p.is_categorical, _param(p.name)))
    for m in data.metric_names:
        out.append(Column(f"metric:{m}", m, True, _metric(m)))
    out.append(Column("duration", "Duration", True, lambda t: t.duration))
    return out


def _param(name: str) -> Callable[[TrialPoint], Any]:
    return lambda t: t.params.get(name)


def _metric(name: str) -> Callable[[TrialPoint], Any]:
    return lambda t: t.metrics.get(name)


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _bound(text: str, column: Column) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"filter on {column.label}: {text!r} is not a number; use >x, >=x, <x, <=x, =x, "
                         "a range a..b, or text the value contains") from None


def _matcher(column: Column, expr: str) -> Callable[[TrialPoint], bool]:
    expr = expr.strip()
    get = column.get
    if expr == "-":
        return lambda t: get(t) is None or get(t) == ""
    if column.numeric:
        compare = _COMPARE.match(expr)
        ranged = _RANGE.match(expr) if compare is None else None
        if compare is not None:
            op, bound = compare.group(1), _bound(compare.group(2).strip(), column)
            test: Callable[[float], bool] = {
                ">": lambda v: v > bound, ">=": lambda v: v >= bound, "<": lambda v: v < bound,
                "<=": lambda v: v <= bound, "=": lambda v: v == bound}[op]
        elif ranged is not None:
            low, high = _bound(ranged.group(1).strip(), column), _bound(ranged.group(2).strip(), column)
            test = lambda v: low <= v <= high  # noqa: E731
        else:
            needle = expr.lower()
            return lambda t: needle in number(get(t)).lower()

        def numeric(t: TrialPoint) -> bool:
            v = _float(get(t))
            return v is not None and test(v)
        return numeric
    if expr.startswith("="):
        exact = expr[1:].strip().lower()
        return lambda t: str(get(t) if get(t) is not None else "").lower() == exact
    options = [o.strip().lower() for o in expr.split(",") if o.strip()]
    return lambda t: any(o in str(get(t) if get(t) is not None else "").lower() for o in options)


def _sort_key(column: Column, descending: bool) -> Callable[[TrialPoint], Any]:
    # Rows without a value go last in either order.
    if column.numeric:
        def key(t: TrialPoint) -> Any:
            v = _float(column.get(t))
            return (v is None, 0.0 if v is None else (-v if descending else v))
        return key

    def text_key(t: TrialPoint) -> Any:
        v = column.get(t)
        return (v is None, "" if v is None else str(v).lower())
    return text_key


def query(data: ExperimentData, *, sort: str = "number", descending: bool = False,
          filters: Mapping[str, str] | None = None, offset: int = 0, limit: int = 50) -> dict[str, Any]:
    """One page of the trial table as JSON-ready rows (values as shown, ``raw`` beside them)."""
    cols = columns(data)
    by_key = {c.key: c for c in cols}
    if sort == "value":
        sort = f"metric:{data.objective_metric}" if data.objective_metric else "number"
    if sort not in by_key:
        raise ValueError(f"sort: unknown column {sort!r}; one of {', '.join(by_key)}")
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit: expected 1 to {MAX_LIMIT} rows, got {limit}")
    if offset < 0:
        raise ValueError(f"offset: expected 0 or more, got {offset}")
    tests = []
    for key, expr in (filters or {}).items():
        if not expr.strip():
            continue
        if key not in by_key:
            raise ValueError(f"filter: unknown column {key!r}; one of {', '.join(by_key)}")
        tests.append(_matcher(by_key[key], expr))
    rows: Sequence[TrialPoint] = data.trials
    if tests:
        rows = [t for t in rows if all(test(t) for test in tests)]
    column = by_key[sort]
    if sort != "number":  # creation order is the stored order
        ordered = sorted(rows, key=_sort_key(column, descending))
    else:
        ordered = list(reversed(rows)) if descending else list(rows)
    page = ordered[offset:offset + limit]
    best = data.best_trial()
    return {
        "total": len(data.trials), "matched": len(rows), "offset": offset, "limit": limit,
        "sort": sort, "descending": descending, "best": best.name if best else None,
        "columns": [{"key": c.key, "label": c.label, "numeric": c.numeric} for c in cols],
        "rows": [_row(t, cols) for t in page],
    }


def _row(t: TrialPoint, cols: list[Column]) -> dict[str, Any]:
    cells = {}
    for c in cols[3:]:
        v = c.get(t)
        cells[c.key] = _duration(v) if c.key == "duration" else number(v)
    return {"number": t.number, "name": t.name, "state": t.state, "cells": cells, "reason": _reason(t),
            "value": number(t.value)}


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(seconds)
    if s < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{s}s"
    minutes, secs = divmod(s, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _reason(t: TrialPoint) -> str:
    """Why a trial did not succeed, in one line, as ``katib get trials`` says it (empty for
    Succeeded, Running and Pending)."""
    if t.state in ("Succeeded", "Running", "Pending"):
        return ""
    trial = Trial(metadata=ObjectMeta(name=t.name),
                  status=TrialStatus(conditions=[Condition(type=t.state, reason=t.reason, message=t.message)]))
    return trial_reason(trial, None)
