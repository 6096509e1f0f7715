"""The experiment page's charts: ``katib.visualization.figures`` (the module the Python
plotting API shares), sent as JSON and kept until the experiment's trials change.

Learning curves need each drawn trial's observation rows; a trial that has ended never
reports again, so its rows are kept (``CurveRows``) and only running trials are read again.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from typing import Any, Callable, Mapping, Sequence

from katib.api.model import TrialCondition
from katib.ui.cache import Entry

__all__ = ["KINDS", "Charts", "figure_json"]

log = logging.getLogger(__name__)

KINDS = ("history", "parallel", "slice", "contour", "importance", "intermediate", "edf")


def _names(text: str | None) -> list[str] | None:
    if not text:
        return None
    return [n.strip() for n in text.split(",") if n.strip()] or None


def figure_json(figure: Mapping[str, Any]) -> str:
    # allow_nan=False: the figures promise None for missing values; a NaN would break JSON.parse.
    return json.dumps(figure, allow_nan=False, separators=(",", ":"))


class CurveRows:
    """Observation rows of ended trials by (namespace, trial), bounded."""

    def __init__(self, size: int = 5000) -> None:
        self.size = size
        self._rows: OrderedDict[tuple[str, str], list[Any]] = OrderedDict()
        self._lock = threading.Lock()

    def rows(self, namespace: str, names: Sequence[str], states: Mapping[str, str],
             read: Callable[[str], list[Any]]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        for name in names:
            key = (namespace, name)
            with self._lock:
                kept = self._rows.get(key)
            if kept is not None:
                out[name] = kept
                continue
            rows = read(name)
            out[name] = rows
            if states.get(name) in TrialCondition.COMPLETED:
                with self._lock:
                    self._rows[key] = rows
                    while len(self._rows) > self.size:
                        self._rows.popitem(last=False)
        return out


class Charts:
    """Figure JSON by (experiment, generation of its data, kind, options)."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._figures: OrderedDict[tuple[Any, ...], str] = OrderedDict()
        self._lock = threading.Lock()
        self.curves = CurveRows()

    def get(self, entry: Entry, kind: str, options: Mapping[str, str], read_rows: Callable[[str], list[Any]]) -> str:
        if kind not in KINDS:
            raise ValueError(f"chart: unknown kind {kind!r}; one of {', '.join(KINDS)}")
        data = entry.data
        opts = tuple(sorted((k, v) for k, v in options.items() if k in ("params", "x", "y", "metric")))
        key = (data.namespace, data.name, entry.generation, kind, opts)
        with self._lock:
            found = self._figures.get(key)
        if found is not None:
            return found
        text = figure_json(self._build(entry, kind, dict(opts), read_rows))
        with self._lock:
            self._figures[key] = text
            while len(self._figures) > self.size:
                self._figures.popitem(last=False)
        return text

    def _build(self, entry: Entry, kind: str, options: dict[str, str], read_rows: Callable[[str], list[Any]]) -> Any:
        from katib.visualization import figures
        from katib.visualization.data import curve_trials, curves_from_logs

        data = entry.data
        params = _names(options.get("params"))
        if kind == "history":
            return figures.history(data)
        if kind == "parallel":
            return figures.parallel_coordinates(data, params)
        if kind == "slice":
            return figures.slice_plot(data, params)
        if kind == "contour":
            names = [p.name for p in data.parameters]
            x = options.get("x") or (names[0] if names else "")
            y = options.get("y") or (names[1] if len(names) > 1 else x)
            return figures.contour(data, x, y)
        if kind == "importance":
            return figures.importance(data)
        if kind == "edf":
            return figures.edf(data)
        metric = options.get("metric") or data.objective_metric
        if metric not in data.metric_names:
            raise ValueError(f"metric: {metric!r} is not a metric of experiment {data.name}; one of "
                             f"{', '.join(data.metric_names)}")
        names = curve_trials(data)
        states = {t.name: t.state for t in data.trials}
        rows = self.curves.rows(data.namespace, names, states, read_rows)
        return figures.intermediate(data, curves_from_logs(rows, metric), metric=metric)
