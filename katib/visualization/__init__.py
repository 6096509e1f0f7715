"""Plots of an experiment, with Optuna's names, drawn by the same code as the dashboard.

Each ``plot_*`` function takes an experiment name (of the local store: ``namespace=``,
``db_url=``, default ``$KATIB_DB_URL`` or ``~/.katib/katib.db``), a ``TuneResult`` or an
``ExperimentData``, and returns a ``plotly.graph_objects.Figure``::

    result = katib.tune(objective, parameters, name="lr-sweep")
    from katib.visualization import plot_optimization_history, plot_contour
    plot_optimization_history(result).show()
    plot_contour("lr-sweep", x="lr", y="layers").write_html("contour.html")

The figures need plotly (``pip install 'katib-lite[ui]'``); ``import katib.visualization``
does not. ``katib.visualization.figures`` builds the same figures as plain dicts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from katib.visualization.data import Curves, ExperimentData, Parameter, TrialPoint, load_curves, load_experiment

if TYPE_CHECKING:
    from katib.sdk.result import TuneResult

__all__ = ["plot_optimization_history", "plot_parallel_coordinate", "plot_slice", "plot_contour",
           "plot_param_importances", "plot_intermediate_values", "plot_edf",
           "ExperimentData", "TrialPoint", "Parameter", "load_experiment"]

_EXTRA = "pip install 'katib-lite[ui]'"


def _go() -> Any:
    """plotly.graph_objects, or an ImportError naming the extra that brings it."""
    try:
        import plotly.graph_objects as go
    except ImportError as exc:
        raise ImportError(f"katib.visualization draws with plotly, which is not installed: {_EXTRA}") from exc
    return go


def _data(source: Any, namespace: str, db_url: str | None) -> ExperimentData:
    if isinstance(source, ExperimentData):
        return source
    if isinstance(source, str):
        return load_experiment(source, namespace, db_url=db_url)
    from katib.sdk.result import TuneResult

    if isinstance(source, TuneResult):
        return ExperimentData.from_result(source)
    raise TypeError("expected an experiment name, a TuneResult or an ExperimentData, got "
                    f"{type(source).__name__}")


def plot_optimization_history(source: "str | TuneResult | ExperimentData", *, namespace: str = "default",
                              db_url: str | None = None) -> Any:
    """Each finished trial's objective value by trial number, and the best value so far."""
    from katib.visualization import figures

    go = _go()  # before reading anything: a missing plotly is said first
    return go.Figure(figures.history(_data(source, namespace, db_url)))


def plot_parallel_coordinate(source: "str | TuneResult | ExperimentData", params: Sequence[str] | None = None, *,
                             namespace: str = "default", db_url: str | None = None) -> Any:
    """The objective and the parameters (all, or ``params``) as parallel axes, a line per trial."""
    from katib.visualization import figures

    go = _go()  # before reading anything: a missing plotly is said first
    return go.Figure(figures.parallel_coordinates(_data(source, namespace, db_url), params))


def plot_slice(source: "str | TuneResult | ExperimentData", params: Sequence[str] | None = None, *,
               namespace: str = "default", db_url: str | None = None) -> Any:
    """The objective against each parameter (all, or ``params``), one subplot each."""
    from katib.visualization import figures

    go = _go()  # before reading anything: a missing plotly is said first
    return go.Figure(figures.slice_plot(_data(source, namespace, db_url), params))


def plot_contour(source: "str | TuneResult | ExperimentData", params: Sequence[str] | None = None, *,
                 x: str | None = None, y: str | None = None, namespace: str = "default",
                 db_url: str | None = None) -> Any:
    """The objective over two parameters: ``x`` and ``y``, or the two of ``params`` (Optuna's
    spelling), default the first two parameters. Raises ValueError naming an unknown one."""
    from katib.visualization import figures

    go = _go()  # before reading anything: a missing plotly is said first
    data = _data(source, namespace, db_url)
    names = list(params) if params is not None else []
    if params is not None and len(names) != 2:
        raise ValueError(f"plot_contour: params must name two parameters, got {len(names)}: {names}")
    px = x or (names[0] if names else None)
    py = y or (names[1] if names else None)
    free = [p.name for p in data.parameters if p.name not in (px, py)]
    px = px or (free.pop(0) if free else None)
    py = py or (free.pop(0) if free else None)
    if px is None or py is None:
        raise ValueError(f"plot_contour: experiment {data.name!r} has fewer than two parameters "
                         f"({', '.join(p.name for p in data.parameters) or 'none'})")
    return go.Figure(figures.contour(data, px, py))


def plot_param_importances(source: "str | TuneResult | ExperimentData", params: Sequence[str] | None = None, *,
                           namespace: str = "default", db_url: str | None = None) -> Any:
    """Each parameter's share of the objective's variance (fANOVA), largest first."""
    from katib.visualization import figures

    go = _go()  # before reading anything: a missing plotly is said first
    return go.Figure(figures.importance(_data(source, namespace, db_url), params))


def plot_intermediate_values(source: "str | TuneResult | ExperimentData", metric: str | None = None, *,
                             curves: Curves | None = None, namespace: str = "default",
                             db_url: str | None = None, client: Any = None) -> Any:
    """Learning curves of ``metric`` (default the objective) from the trials' reports, with
    early-stopped trials marked. Reports are read from the local store (``db_url``; for a
    ``TuneResult``, the store it ran in), through ``client`` (a ``KatibClient``), or given as
    ``curves``."""
    from katib.visualization import figures

    go = _go()  # before reading anything: a missing plotly is said first
    data = _data(source, namespace, db_url)
    if curves is None:
        if db_url is None and not isinstance(source, (str, ExperimentData)):
            db_url = getattr(source, "db_url", None)
        curves = load_curves(data, metric, db_url=db_url, client=client)
    return go.Figure(figures.intermediate(data, curves, metric))


def plot_edf(source: "str | TuneResult | ExperimentData", *, namespace: str = "default",
             db_url: str | None = None) -> Any:
    """The fraction of finished trials at least as good as each objective value."""
    from katib.visualization import figures

    go = _go()  # before reading anything: a missing plotly is said first
    return go.Figure(figures.edf(_data(source, namespace, db_url)))
