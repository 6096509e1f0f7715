"""katib.visualization's plot_* functions: plotly Figures for a name, a TuneResult and an
ExperimentData, built by the dashboard's figure code; a clear error without plotly."""

from __future__ import annotations

import subprocess
import sys
from typing import Any, Iterator

import pytest

import katib
from katib import search
from katib.errors import NotFoundError
from katib.visualization import figures
from katib.visualization.data import ExperimentData, load_experiment
from tests.visualization import objectives

PLOTS = ["plot_optimization_history", "plot_parallel_coordinate", "plot_slice", "plot_contour",
         "plot_param_importances", "plot_intermediate_values", "plot_edf"]


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[katib.TuneResult]:
    home = tmp_path_factory.mktemp("viz-api-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("KATIB_HOME", str(home))
    # Not the default store: the result must remember where it ran.
    result = katib.tune(objectives.curve, {"opt": search.categorical(["good", "fine"]),
                                           "lr": search.double(0.001, 0.1, distribution="logUniform"),
                                           "layers": search.int(1, 3)},
                        name="api", objective_metric_name="loss", objective_type="minimize", max_trial_count=6,
                        parallel_trial_count=2, progress=False, db_url=f"sqlite:///{home}/elsewhere.db")
    yield result
    mp.undo()


def test_every_plot_for_a_result_a_name_and_data(tuned: katib.TuneResult) -> None:
    import plotly.graph_objects as go

    import katib.visualization as viz

    assert tuned.db_url is not None and tuned.db_url.endswith("elsewhere.db")
    data = load_experiment("api", db_url=tuned.db_url)
    for name in PLOTS:
        plot = getattr(viz, name)
        for source, kwargs in ((tuned, {}), ("api", {"db_url": tuned.db_url}), (data, {})):
            fig = plot(source, **kwargs)
            assert isinstance(fig, go.Figure), (name, source)
            assert fig.data, (name, type(source).__name__)  # six finished trials: every plot has something
    # The same figure the dashboard draws.
    assert viz.plot_optimization_history(tuned).to_dict()["data"][0]["y"] == figures.history(data)["data"][0]["y"]
    curves = viz.plot_intermediate_values(tuned)
    assert len([t for t in curves.data if t.mode == "lines"]) == 6
    assert list(curves.data[0].x) == [float(s) for s in range(1, 11)]


def test_contour_picks_its_parameters(tuned: katib.TuneResult) -> None:
    import katib.visualization as viz

    fig = viz.plot_contour(tuned, ["layers", "lr"])
    assert fig.layout.xaxis.title.text == "layers" and fig.layout.yaxis.type == "log"
    fig = viz.plot_contour(tuned, x="lr", y="opt")
    assert list(fig.layout.yaxis.ticktext) == ["good", "fine"]
    assert viz.plot_contour(tuned).layout.xaxis.title.text == "opt"  # the first two, in the spec's order
    with pytest.raises(ValueError, match="contour: unknown parameter 'momentum'; parameters: opt, lr, layers"):
        viz.plot_contour(tuned, ["momentum", "lr"])
    with pytest.raises(ValueError, match="params must name two parameters"):
        viz.plot_contour(tuned, ["lr"])


def test_a_missing_experiment_and_a_wrong_argument() -> None:
    import katib.visualization as viz

    with pytest.raises(NotFoundError, match="ghost"):
        viz.plot_edf("ghost")
    with pytest.raises(TypeError, match="experiment name, a TuneResult or an ExperimentData"):
        viz.plot_edf(42)  # type: ignore[arg-type]


def test_without_plotly_the_error_names_the_extra(tuned: katib.TuneResult, monkeypatch: pytest.MonkeyPatch) -> None:
    import katib.visualization as viz

    for mod in [m for m in sys.modules if m == "plotly" or m.startswith("plotly.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "plotly", None)  # type: ignore[arg-type]
    for name in PLOTS:
        with pytest.raises(ImportError, match=r"pip install 'katib-lite\[ui\]'"):
            getattr(viz, name)(tuned)
    # The figures themselves need no plotly: the dashboard sends them as JSON.
    assert figures.history(ExperimentData.from_result(tuned))["data"]


def test_import_needs_no_plotly() -> None:
    code = ("import sys; sys.modules['plotly'] = None; import katib.visualization, katib.visualization.figures; "
            "assert 'plotly' not in [m.split('.')[0] for m in sys.modules if sys.modules[m] is not None]")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_result_without_its_experiment_still_plots(tuned: katib.TuneResult) -> None:
    import dataclasses

    import katib.visualization as viz

    bare: Any = dataclasses.replace(tuned, experiment=None, trial_objects=[])
    fig = viz.plot_slice(bare)
    assert [t.name for t in fig.data] == ["opt", "lr", "layers"]
    assert viz.plot_intermediate_values(bare).data  # curves still come from the result's store
