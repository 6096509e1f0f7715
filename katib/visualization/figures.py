"""The figures of an experiment, as plain Plotly figure dicts: the ONE module the dashboard
and ``katib.visualization`` both draw with.

Every function takes an ``ExperimentData`` and returns ``{"data": [...], "layout": {...}}``
that ``json.dumps(..., allow_nan=False)`` accepts (numbers are finite floats or None). A
figure of an experiment without a finished trial carries a note ("No trial has reported
loss yet") instead of raising. Finished trials are those that succeeded or were stopped
early with a value of the objective (``ExperimentData.finished``); the titles say how many
others the plot leaves out.
"""

from __future__ import annotations

import bisect
import logging
from typing import Any, Sequence

from katib.visualization._common import (BEST, EARLY, MARKER, Figure, base_layout, clean, counts_note,
                                         empty, hover_text, scatter_type)
from katib.visualization._space import contour, parallel_coordinates, slice_plot
from katib.visualization.data import Curves, ExperimentData, curve_trials
from katib.visualization.importance import EVALUATOR_NAME, MAX_TRIALS, param_importances

__all__ = ["history", "parallel_coordinates", "slice_plot", "contour", "importance", "intermediate", "edf",
           "CURVES_RECENT", "CURVES_BEST"]

log = logging.getLogger(__name__)

# intermediate(): at most this many of the most recent trials' curves plus this many of the best.
CURVES_RECENT = 200
CURVES_BEST = 50


def history(data: ExperimentData) -> Figure:
    """The objective of each finished trial by trial number, and the best value so far."""
    kind = "Optimization history"
    finished = data.finished()
    if not finished:
        return empty(kind, data)
    metric = data.objective_metric
    params = data.parameters
    traces: list[dict[str, Any]] = []
    for label, group, symbol in (("Trials", [t for t in finished if t.state != "EarlyStopped"], "circle"),
                                 ("EarlyStopped", [t for t in finished if t.state == "EarlyStopped"], "x")):
        if not group:
            continue
        traces.append({
            "type": scatter_type(len(finished)), "mode": "markers", "name": label,
            "x": [t.number for t in group], "y": [t.value for t in group],
            "text": [hover_text(t, params) for t in group],
            "hovertemplate": f"%{{text}}<br>{metric}=%{{y}}<extra>#%{{x}}</extra>",
            "marker": {"color": MARKER if symbol == "circle" else EARLY, "symbol": symbol, "size": 6,
                       "opacity": 0.75}})
    # The best value so far as a step line through the trials that improved it (and the last
    # trial, so it runs to the end): 20,000 trials improve it a few dozen times.
    best_x: list[int] = []
    best_y: list[float] = []
    best: float | None = None
    for t in finished:
        assert t.value is not None
        if best is None or (t.value < best if data.minimize else t.value > best):
            best = t.value
            best_x.append(t.number)
            best_y.append(best)
    if best_x[-1] != finished[-1].number and best is not None:
        best_x.append(finished[-1].number)
        best_y.append(best)
    traces.append({"type": "scatter", "mode": "lines+markers", "name": "Best value",
                   "x": best_x, "y": best_y, "line": {"color": BEST, "width": 2, "shape": "hv"},
                   "marker": {"color": BEST, "size": 4},
                   "hovertemplate": f"best {metric} from #%{{x}}: %{{y}}<extra></extra>"})
    layout = base_layout(kind, data, counts_note(data, len(finished)))
    layout.update(xaxis={"title": {"text": "Trial number"}, "gridcolor": "white", "zeroline": False},
                  yaxis={"title": {"text": metric}, "gridcolor": "white", "zeroline": False},
                  legend={"orientation": "h", "y": -0.15})
    if data.goal is not None:
        layout["shapes"] = [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": data.goal, "y1": data.goal,
                             "line": {"color": "#2ca02c", "dash": "dash", "width": 1}}]
        layout["annotations"] = [{"text": f"goal {data.goal:g}", "xref": "paper", "x": 1, "xanchor": "right",
                                  "y": data.goal, "yanchor": "bottom", "showarrow": False,
                                  "font": {"color": "#2ca02c"}}]
    return clean({"data": traces, "layout": layout})  # type: ignore[no-any-return]


def edf(data: ExperimentData) -> Figure:
    """The empirical distribution of the objective: for each value, the fraction of finished
    trials at least as good (``<=`` it when minimizing, ``>=`` when maximizing)."""
    kind = "Empirical distribution"
    values = sorted(t.value for t in data.finished() if t.value is not None)
    if not values:
        return empty(kind, data)
    n = len(values)
    xs = sorted(set(values))
    if data.minimize:
        ys = [bisect.bisect_right(values, x) / n for x in xs]
        shape, word = "hv", "<="
    else:
        ys = [(n - bisect.bisect_left(values, x)) / n for x in xs]
        shape, word = "vh", ">="
    metric = data.objective_metric
    trace = {"type": scatter_type(len(xs)), "mode": "lines", "name": metric, "x": xs, "y": ys,
             "line": {"color": MARKER, "width": 2, "shape": shape},
             "hovertemplate": f"%{{y:.1%}} of trials have {metric} {word} %{{x}}<extra></extra>"}
    layout = base_layout(kind, data, counts_note(data, n))
    layout.update(xaxis={"title": {"text": metric}, "gridcolor": "white"},
                  yaxis={"title": {"text": f"Fraction of trials with {metric} {word} x"}, "range": [0, 1.02],
                         "gridcolor": "white"}, showlegend=False)
    return clean({"data": [trace], "layout": layout})  # type: ignore[no-any-return]


def intermediate(data: ExperimentData, curves: Curves, metric: str | None = None) -> Figure:
    """Learning curves: one line per trial (x: step), early-stopped trials dashed with an x at
    their last report. At most the ``CURVES_RECENT`` most recent and ``CURVES_BEST`` best
    trials are drawn; the title says so when there are more."""
    metric = metric or data.objective_metric
    kind = "Intermediate values"
    by_name = {t.name: t for t in data.trials}
    present = [t for t in data.trials if curves.get(t.name)]
    if not present:
        return empty(kind, data, metric=metric)
    chosen = set(curve_trials(data, CURVES_RECENT, CURVES_BEST))
    drawn = [t for t in present if t.name in chosen]
    note = f"{len(present)} trials reported {metric}"
    if len(drawn) < len(present):
        note = (f"showing {len(drawn)} of {len(present)} trials: the {CURVES_RECENT} most recent and the "
                f"{CURVES_BEST} best")
    points = sum(len(curves[t.name]) for t in drawn)
    kind_of_trace = scatter_type(points)
    traces: list[dict[str, Any]] = []
    seen_group: set[str] = set()
    ends_x, ends_y, ends_text = [], [], []
    best = data.best_trial()
    best_name = best.name if best is not None and best.name in chosen and curves.get(best.name) else None
    for t in drawn:
        curve = curves[t.name]
        stopped = t.state == "EarlyStopped"
        if stopped:
            ends_x.append(curve[-1][0])
            ends_y.append(curve[-1][1])
            ends_text.append(t.name)
        if t.name == best_name:
            continue  # drawn last, on top, in its own color
        group = "EarlyStopped" if stopped else "Trials"
        traces.append({
            "type": kind_of_trace, "mode": "lines", "name": group, "legendgroup": group,
            "showlegend": group not in seen_group,
            "x": [s for s, _ in curve], "y": [v for _, v in curve],
            "line": {"width": 1.5 if stopped else 1, "dash": "dash" if stopped else "solid",
                     "color": EARLY if stopped else MARKER},
            "opacity": 0.9 if stopped else 0.55,
            "hovertemplate": f"<b>{t.name}</b> ({t.state})<br>step=%{{x}}<br>{metric}=%{{y}}<extra></extra>"})
        seen_group.add(group)
    if ends_x:
        traces.append({"type": kind_of_trace, "mode": "markers", "name": "EarlyStopped (last report)",
                       "x": ends_x, "y": ends_y, "text": ends_text,
                       "marker": {"symbol": "x", "size": 9, "color": EARLY},
                       "hovertemplate": "<b>%{text}</b> EarlyStopped at step %{x}<br>" + metric
                       + "=%{y}<extra></extra>"})
    if best_name is not None:
        curve = curves[best_name]
        state = by_name[best_name].state
        traces.append({"type": kind_of_trace, "mode": "lines", "name": f"Best trial ({best_name})",
                       "x": [s for s, _ in curve], "y": [v for _, v in curve],
                       "line": {"color": BEST, "width": 2.5, "dash": "dash" if state == "EarlyStopped" else "solid"},
                       "hovertemplate": f"<b>{best_name}</b> (best, {state})<br>step=%{{x}}<br>{metric}=%{{y}}"
                                        "<extra></extra>"})
    layout = base_layout(kind, data, note, metric)
    layout.update(xaxis={"title": {"text": "Step"}, "gridcolor": "white"},
                  yaxis={"title": {"text": metric}, "gridcolor": "white"}, legend={"orientation": "h", "y": -0.15})
    return clean({"data": traces, "layout": layout})  # type: ignore[no-any-return]


def importance(data: ExperimentData, params: Sequence[str] | None = None) -> Figure:
    """Hyperparameter importance (fANOVA), largest first; the importances sum to 1."""
    kind = "Hyperparameter importance"
    if len(data.finished()) < 2:
        return empty(kind, data)
    values = param_importances(data, params)
    if not values:
        return empty(kind, data, f"The finished trials' {data.objective_metric} does not vary with their parameters")
    names = list(values)[::-1]  # Plotly draws bars bottom-up: the largest goes on top
    shares = [values[n] for n in names]
    trace = {"type": "bar", "orientation": "h", "x": shares, "y": names, "name": "importance",
             "text": [f"{v:.2f}" if v >= 0.01 else "<0.01" for v in shares], "textposition": "outside",
             "marker": {"color": MARKER}, "cliponaxis": False,
             "hovertemplate": "%{y}: %{x:.3f}<extra></extra>"}
    layout = base_layout(kind, data, f"{EVALUATOR_NAME} over {min(len(data.finished()), MAX_TRIALS)} finished trials")
    layout.update(xaxis={"title": {"text": f"Importance for {data.objective_metric}"}, "range": [0, 1.1],
                         "gridcolor": "white"},
                  yaxis={"automargin": True, "type": "category"}, showlegend=False,
                  height=max(300, 80 + 32 * len(names)))
    return clean({"data": [trace], "layout": layout})  # type: ignore[no-any-return]

