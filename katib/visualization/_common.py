"""Pieces every figure shares: JSON-safe numbers, titles, the "nothing yet" figure, how a
parameter's values become coordinates (log scale, categorical indices) and readable ticks.

Figures are plain dicts in Plotly's figure schema, built without importing plotly: the
dashboard sends them as JSON to plotly.js, ``katib.visualization`` wraps them in a
``plotly.graph_objects.Figure``. They set every color and font they rely on, so they draw
the same with or without a Plotly template.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from katib.api.model import ParameterType
from katib.visualization.data import ExperimentData, Parameter, TrialPoint

Figure = dict[str, Any]

# Beyond this many points a trace is drawn with WebGL ("scattergl"): SVG slows down a
# browser noticeably past a few thousand markers.
WEBGL_FROM = 1000
# ColorBrewer's Blues, light to dark, spelled out: plotly.js's own "Blues" runs dark to light,
# plotly.py's light to dark, and the figure must read the same in both.
COLORSCALE = [[i / 8, c] for i, c in enumerate(("#f7fbff", "#deebf7", "#c6dbef", "#9ecae1", "#6baed6", "#4292c6",
                                               "#2171b5", "#08519c", "#08306b"))]
MARKER = "#1f77b4"
BEST = "#d62728"
EARLY = "#ff7f0e"
FONT = {"family": "Arial, sans-serif", "size": 12, "color": "#2a3f5f"}


def scatter_type(points: int) -> str:
    return "scattergl" if points > WEBGL_FROM else "scatter"


def num(value: Any) -> float | None:
    """A finite float, else None (JSON has no NaN or infinity)."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def short(value: Any) -> Any:
    """A number to 6 significant digits (hover texts of 20,000 points stay small)."""
    if isinstance(value, float):
        return float(f"{value:.6g}") if math.isfinite(value) else None
    return value


def clean(value: Any) -> Any:
    """``value`` with numpy numbers and arrays made plain, and NaN and infinities None."""
    kind = type(value)
    if kind is float:
        return value if _isfinite(value) else None
    if kind in _PLAIN:
        return value
    if kind is list or kind is tuple:
        if all(type(v) in _SCALARS for v in value):  # the common case, 20,000 numbers: no calls
            return [v if type(v) is not float or _isfinite(v) else None for v in value]
        return [clean(v) for v in value]
    if kind is dict:
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, (str, int)):  # subclasses (a bool is plain already)
        return value
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars
    if tolist is not None:
        return clean(tolist())
    return str(value)


_isfinite = math.isfinite
_PLAIN = frozenset((str, int, bool, type(None)))
_SCALARS = frozenset((str, int, bool, float, type(None)))


def direction_word(data: ExperimentData) -> str:
    return "minimize" if data.minimize else "maximize"


def title(kind: str, data: ExperimentData, note: str = "", metric: str | None = None) -> dict[str, Any]:
    text = f"{kind}: {metric or data.objective_metric or 'objective'} ({direction_word(data)})"
    if note:
        text += f"<br><sup>{note}</sup>"
    return {"text": text, "x": 0.02, "xanchor": "left"}


def base_layout(kind: str, data: ExperimentData, note: str = "", metric: str | None = None) -> dict[str, Any]:
    return {"title": title(kind, data, note, metric), "font": FONT, "paper_bgcolor": "white", "plot_bgcolor": "#f4f6fa",
            "hovermode": "closest", "margin": {"l": 70, "r": 30, "t": 80, "b": 60}}


def empty(kind: str, data: ExperimentData, text: str | None = None, metric: str | None = None) -> Figure:
    """A figure with no data and a note saying why: not an error, the trials are still coming."""
    layout = base_layout(kind, data, metric=metric)
    layout.update(xaxis={"visible": False}, yaxis={"visible": False}, annotations=[{
        "text": text or f"No trial has reported {metric or data.objective_metric or 'the objective'} yet",
        "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5, "showarrow": False, "font": {"size": 16}}])
    return {"data": [], "layout": layout}


def counts_note(data: ExperimentData, shown: int) -> str:
    """"18000 of 20000 trials with a value; 2000 failed, 5 running": what a plot leaves out."""
    others: dict[str, int] = {}
    plotted = {id(t) for t in data.finished()}
    for t in data.trials:
        if id(t) not in plotted:
            others[t.state] = others.get(t.state, 0) + 1
    rest = ", ".join(f"{n} {s.lower()}" for s, n in sorted(others.items(), key=lambda kv: -kv[1]))
    return f"{shown} of {len(data.trials)} trials with a value" + (f"; {rest}" if rest else "")


def select_params(data: ExperimentData, params: Sequence[str] | None, what: str) -> list[Parameter]:
    if params is None:
        return list(data.parameters)
    known = {p.name: p for p in data.parameters}
    for name in params:
        if name not in known:
            raise ValueError(f"{what}: unknown parameter {name!r}; parameters: {', '.join(known) or 'none'}")
    return [known[n] for n in params]


@dataclass
class Axis:
    """How one parameter's values become plot coordinates: ``coords[i]`` belongs to trial
    ``trials[i]`` (None when that trial has no usable value); ``log``: coordinates are
    log10 of the values; categorical values are indices into ``labels``."""

    param: Parameter
    coords: list[float | None]
    log: bool
    labels: list[str]

    @property
    def categorical(self) -> bool:
        return bool(self.labels)

    def ticks(self) -> dict[str, Any]:
        """tickvals/ticktext in coordinate space (categorical labels, or powers of ten)."""
        if self.categorical:
            return {"tickvals": list(range(len(self.labels))), "ticktext": list(self.labels)}
        if not self.log:
            return {}
        values = [c for c in self.coords if c is not None]
        low, high = self.span(values)
        vals = [float(k) for k in range(math.ceil(low), math.floor(high) + 1)]
        if len(vals) < 2:
            vals = sorted({low, high, *vals})
        return {"tickvals": vals, "ticktext": [f"{10 ** v:.3g}" for v in vals]}

    def span(self, values: Sequence[float | None] | None = None) -> tuple[float, float]:
        """The coordinate range: the parameter's bounds widened to every value seen."""
        seen = [c for c in (values if values is not None else self.coords) if c is not None]
        if self.categorical:
            return 0.0, float(max(len(self.labels) - 1, 0))
        bounds = [b for b in (self.param.low, self.param.high) if b is not None and (not self.log or b > 0)]
        if self.log:
            bounds = [math.log10(b) for b in bounds]
        every = seen + bounds
        return (min(every), max(every)) if every else (0.0, 1.0)


def axis(param: Parameter, trials: Sequence[TrialPoint]) -> Axis:
    values = [t.params.get(param.name) for t in trials]
    if param.type == ParameterType.CATEGORICAL:
        labels = list(param.choices)
        index = {c: i for i, c in enumerate(labels)}
        coords: list[float | None] = []
        for v in values:
            if v is None:
                coords.append(None)
                continue
            text = str(v)
            if text not in index:  # a value outside the listed ones: shown, not dropped
                index[text] = len(labels)
                labels.append(text)
            coords.append(float(index[text]))
        return Axis(param, coords, False, labels)
    numbers = [num(v) if not isinstance(v, (str, bool)) else None for v in values]
    use_log = param.log and all(n is None or n > 0 for n in numbers)
    if use_log:
        numbers = [math.log10(n) if n is not None else None for n in numbers]
    return Axis(param, numbers, use_log, [])


def value_of(t: TrialPoint) -> float:
    return t.value if t.value is not None else math.nan


def hover_text(t: TrialPoint, params: Sequence[Parameter]) -> str:
    """``<b>trial</b><br>lr=0.0123<br>optimizer=adam``: one string per point is the
    smallest way to send 20,000 hover labels."""
    shown = "".join(f"<br>{p.name}={_fmt(t.params.get(p.name))}" for p in params)
    return f"<b>{t.name}</b>{shown}"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)
