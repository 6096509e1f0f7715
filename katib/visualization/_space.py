"""Figures over the search space: parallel coordinates, slices, contour of two parameters.

Log-scaled parameters are drawn on log axes, categorical ones by their listed values; the
objective's colors run light to dark toward better values whichever the direction.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Sequence

from katib.visualization._common import (COLORSCALE, Axis, Figure, axis, base_layout, clean, counts_note, empty,
                                         num, scatter_type, select_params, short)
from katib.visualization.data import ExperimentData

__all__ = ["parallel_coordinates", "slice_plot", "contour", "GRID"]

log = logging.getLogger(__name__)

GRID = 100  # contour(): the interpolation grid is GRID x GRID
_COLUMNS = 3  # slice_plot(): subplots per row


def _reverse(data: ExperimentData) -> bool:
    # COLORSCALE runs light to dark with the value: reversed when smaller is better.
    return data.minimize


# Browsers draw parallel coordinates with WebGL; without a GPU (software rendering) 20,000
# lines take 10-30 s, 2,000 well under one, and more lines than pixels show nothing more.
MAX_LINES = 2000
MAX_BEST_LINES = 500


def _lines_to_draw(order: list[int]) -> list[int]:
    """``order`` (worst first) cut to MAX_LINES: every one of the best MAX_BEST_LINES, and an
    evenly spaced sample of the rest, which keeps their spread; order kept."""
    if len(order) <= MAX_LINES:
        return order
    rest, best = order[:-MAX_BEST_LINES], order[-MAX_BEST_LINES:]
    room = MAX_LINES - MAX_BEST_LINES
    sample = [rest[(k * len(rest)) // room] for k in range(room)]
    return sample + best


def parallel_coordinates(data: ExperimentData, params: Sequence[str] | None = None) -> Figure:
    """One vertical axis for the objective and one per parameter; a line per finished trial,
    colored by its objective value."""
    kind = "Parallel coordinates"
    chosen = select_params(data, params, "parallel_coordinates")
    finished = data.finished()
    if not finished:
        return empty(kind, data)
    axes = [axis(p, finished) for p in chosen]
    # A line needs a point on every axis: a trial without a usable value of a parameter is left out.
    keep = [i for i in range(len(finished)) if all(a.coords[i] is not None for a in axes)]
    # Lines are drawn in order: the best last, on top, where thousands of others cannot hide them.
    sign = -1.0 if data.minimize else 1.0
    keep.sort(key=lambda i: sign * (finished[i].value or 0.0))
    complete = len(keep)
    every = keep
    keep = _lines_to_draw(keep)
    values = [finished[i].value for i in keep]
    metric = data.objective_metric
    dims: list[dict[str, Any]] = [{"label": metric, "values": [short(v) for v in values]}]
    if values:
        # Ranges over every trial, drawn or not: a sample must not narrow the axes.
        all_values = [v for v in (finished[i].value for i in every) if v is not None]
        dims[0]["range"] = [min(all_values), max(all_values)]
    for a in axes:
        coords = [a.coords[i] for i in keep]
        low, high = a.span([a.coords[i] for i in every])
        dim: dict[str, Any] = {"label": a.param.name + (" (log)" if a.log else ""),
                               "values": [short(c) for c in coords], "range": [low, high]}
        dim.update(a.ticks())
        dims.append(dim)
    trace = {"type": "parcoords", "dimensions": dims,
             "line": {"color": [short(v) for v in values], "colorscale": COLORSCALE,
                      "reversescale": _reverse(data), "showscale": True,
                      "colorbar": {"title": {"text": metric}}},
             "labelangle": -20 if len(dims) > 6 else 0}
    note = counts_note(data, complete)
    if len(keep) < complete:
        note += f"; {len(keep)} lines drawn: the best {MAX_BEST_LINES} and an even sample of the rest"
    layout = base_layout(kind, data, note)
    layout["margin"] = {"l": 70, "r": 70, "t": 110, "b": 40}
    return clean({"data": [trace], "layout": layout})  # type: ignore[no-any-return]


def _axis_layout(a: Axis, title: str) -> dict[str, Any]:
    out: dict[str, Any] = {"title": {"text": title}, "gridcolor": "white", "zeroline": False}
    if a.categorical:
        out.update(type="category", categoryorder="array", categoryarray=a.labels)
    elif a.log:
        out["type"] = "log"
    return out


def _x_values(a: Axis, trials_idx: Sequence[int]) -> list[Any]:
    """What an x axis of this parameter plots: the listed text for categorical values, the
    values themselves otherwise (a log axis takes values, not their logarithms)."""
    out: list[Any] = []
    for i in trials_idx:
        c = a.coords[i]
        if c is None:
            out.append(None)
        elif a.categorical:
            out.append(a.labels[int(c)])
        else:
            out.append(short(10 ** c if a.log else c))
    return out


def slice_plot(data: ExperimentData, params: Sequence[str] | None = None) -> Figure:
    """The objective against each parameter, one subplot per parameter (three to a row),
    points colored by trial number."""
    kind = "Slice plot"
    chosen = select_params(data, params, "slice_plot")
    finished = data.finished()
    if not chosen:
        return empty(kind, data, "This experiment has no parameters to plot against")
    if not finished:
        return empty(kind, data)
    metric = data.objective_metric
    n = len(chosen)
    cols = min(n, _COLUMNS)
    rows = math.ceil(n / cols)
    gap_x, gap_y = 0.06, 0.12 if rows > 1 else 0.0
    width = (1 - gap_x * (cols - 1)) / cols
    height = (1 - gap_y * (rows - 1)) / rows
    layout = base_layout(kind, data, counts_note(data, len(finished)))
    layout.update(showlegend=False, height=max(420, 330 * rows))
    traces = []
    for k, p in enumerate(chosen):
        a = axis(p, finished)
        idx = [i for i, c in enumerate(a.coords) if c is not None]
        row, col = divmod(k, cols)
        suffix = "" if k == 0 else str(k + 1)
        x0 = col * (width + gap_x)
        y1 = 1 - row * (height + gap_y)
        xa = _axis_layout(a, p.name)
        xa.update(domain=[x0, x0 + width], anchor=f"y{suffix}")
        ya: dict[str, Any] = {"domain": [y1 - height, y1], "anchor": f"x{suffix}", "gridcolor": "white",
                              "zeroline": False}
        if col == 0:
            ya["title"] = {"text": metric}
        if k > 0:
            ya["matches"] = "y"  # one objective scale across the subplots
        layout[f"xaxis{suffix}"] = xa
        layout[f"yaxis{suffix}"] = ya
        traces.append({
            "type": scatter_type(len(idx)), "mode": "markers", "name": p.name, "xaxis": f"x{suffix}",
            "yaxis": f"y{suffix}", "x": _x_values(a, idx), "y": [short(finished[i].value) for i in idx],
            "text": [finished[i].name for i in idx],
            "marker": {"color": [finished[i].number for i in idx], "colorscale": COLORSCALE, "size": 6,
                       "opacity": 0.8, "line": {"width": 0.5, "color": "#555"},
                       "cmin": 0, "cmax": max(len(data.trials) - 1, 1), "showscale": k == 0,
                       "colorbar": {"title": {"text": "Trial"}, "x": 1.02}},
            "hovertemplate": f"<b>%{{text}}</b><br>{p.name}=%{{x}}<br>{metric}=%{{y}}<extra></extra>"})
    return clean({"data": traces, "layout": layout})  # type: ignore[no-any-return]


def contour(data: ExperimentData, x: str, y: str) -> Figure:
    """The objective over two parameters, interpolated linearly between the finished trials
    (blank outside the region they span), with the trials on top."""
    kind = "Contour"
    names = [p.name for p in data.parameters]
    for name in (x, y):
        if name not in names:
            raise ValueError(f"contour: unknown parameter {name!r}; parameters: {', '.join(names) or 'none'}")
    if x == y:
        raise ValueError(f"contour: x and y are both {x!r}; choose two different parameters")
    finished = data.finished()
    if not finished:
        return empty(kind, data)
    ax, ay = axis(data.parameter(x), finished), axis(data.parameter(y), finished)
    idx = [i for i in range(len(finished)) if ax.coords[i] is not None and ay.coords[i] is not None]
    metric = data.objective_metric
    layout = base_layout(kind, data, counts_note(data, len(idx)))
    layout.update(xaxis=_contour_axis(ax, x), yaxis=_contour_axis(ay, y), showlegend=False)
    traces: list[dict[str, Any]] = []
    grid = _interpolate([ax.coords[i] for i in idx], [ay.coords[i] for i in idx],  # type: ignore[misc]
                        [finished[i].value for i in idx], ax, ay)  # type: ignore[misc]
    if grid is not None:
        gx, gy, z = grid
        traces.append({"type": "contour", "x": [_plot_coord(ax, c) for c in gx],
                       "y": [_plot_coord(ay, c) for c in gy], "z": z, "colorscale": COLORSCALE,
                       "reversescale": _reverse(data), "connectgaps": False, "ncontours": 20,
                       "contours": {"coloring": "heatmap"}, "line": {"width": 0.5},
                       "colorbar": {"title": {"text": metric}},
                       "hovertemplate": f"{x}=%{{x}}<br>{y}=%{{y}}<br>{metric}≈%{{z}}<extra>interpolated</extra>"})
    else:
        layout["annotations"] = [{"text": "Too few distinct points to interpolate between", "xref": "paper",
                                  "yref": "paper", "x": 0.5, "y": 1.0, "yanchor": "bottom", "showarrow": False}]
    traces.append({"type": scatter_type(len(idx)), "mode": "markers", "name": "Trials",
                   "x": [_plot_coord(ax, ax.coords[i]) for i in idx], "y": [_plot_coord(ay, ay.coords[i]) for i in idx],
                   "text": [finished[i].name for i in idx], "customdata": [short(finished[i].value) for i in idx],
                   "marker": {"color": "#222", "size": 5, "opacity": 0.7, "line": {"width": 0.5, "color": "white"}},
                   "hovertemplate": f"<b>%{{text}}</b><br>{x}=%{{x}}<br>{y}=%{{y}}<br>{metric}=%{{customdata}}"
                                    "<extra></extra>"})
    return clean({"data": traces, "layout": layout})  # type: ignore[no-any-return]


def _contour_axis(a: Axis, title: str) -> dict[str, Any]:
    out: dict[str, Any] = {"title": {"text": title}, "zeroline": False, "showgrid": False}
    low, high = a.span()
    pad = 0.05 * (high - low) if high > low else 0.5
    if a.categorical:
        out.update(tickmode="array", tickvals=list(range(len(a.labels))), ticktext=list(a.labels),
                   range=[low - pad, high + pad])
    elif a.log:
        out.update(type="log", range=[low - pad, high + pad])  # a log axis' range is in log10 units
    else:
        out["range"] = [low - pad, high + pad]
    return out


def _plot_coord(a: Axis, c: float | None) -> float | None:
    if c is None:
        return None
    return short(10 ** c) if a.log else short(c)


def _interpolate(xs: list[float], ys: list[float], values: list[float], ax: Axis,
                 ay: Axis) -> tuple[list[float], list[float], list[list[float | None]]] | None:
    """A GRID x GRID linear interpolation over the trials' coordinates (log10 for log
    parameters, indices for categorical ones); None when the points span no area."""
    import numpy as np
    from scipy.interpolate import griddata
    from scipy.spatial import QhullError

    x_low, x_high = ax.span()
    y_low, y_high = ay.span()
    if x_high <= x_low or y_high <= y_low:
        return None
    # Coordinates scaled to [0, 1] (bounds of 1e-4 next to 1..1000 would make the triangulation
    # follow the wider axis only), then averaged per grid cell: the grid resolves no more, and
    # triangulating 20,000 points, many on a few lines (an int, a category), takes seconds.
    u = (np.asarray(xs, dtype=float) - x_low) / (x_high - x_low)
    v = (np.asarray(ys, dtype=float) - y_low) / (y_high - y_low)
    z = np.asarray(values, dtype=float)
    cell = np.rint(u * (GRID - 1)).astype(np.int64) * GRID + np.rint(v * (GRID - 1)).astype(np.int64)
    keys, inverse, counts = np.unique(cell, return_inverse=True, return_counts=True)
    if len(keys) < 3:
        return None
    points = np.column_stack([np.bincount(inverse, u) / counts, np.bincount(inverse, v) / counts])
    means = np.bincount(inverse, z) / counts
    g = np.linspace(0.0, 1.0, GRID)
    mesh_u, mesh_v = np.meshgrid(g, g)
    try:
        grid = griddata(points, means, (mesh_u, mesh_v), method="linear")
    except (QhullError, ValueError) as exc:  # all points on one line: no triangle to interpolate in
        log.debug("contour: no interpolation: %s", exc)
        return None
    rows = [[num(c) for c in row] for row in grid.tolist()]
    return (x_low + g * (x_high - x_low)).tolist(), (y_low + g * (y_high - y_low)).tolist(), rows

