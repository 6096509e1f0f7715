"""The figures carry the right numbers: for a real tune() run (steps reported, early stopping,
crashing trials) and for experiments written through the real Store."""

from __future__ import annotations

import json
import math
from typing import Any, Callable, Iterator

import pytest

import katib
from katib import search
from katib.api.model import TrialCondition
from katib.store import Store
from katib.visualization import figures
from katib.visualization.data import ExperimentData, load_curves, load_experiment
from tests.visualization import objectives, stored

P = {"lr": 0.01, "layers": 3, "optimizer": "adam"}
ALL: list[tuple[str, Callable[[ExperimentData], dict[str, Any]]]] = [
    ("history", figures.history), ("parallel", figures.parallel_coordinates), ("slice", figures.slice_plot),
    ("contour", lambda d: figures.contour(d, d.parameters[0].name, d.parameters[1].name)),
    ("importance", figures.importance), ("edf", figures.edf), ("intermediate", lambda d: figures.intermediate(d, {})),
]


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[katib.TuneResult]:
    """24 trials by grid: 'bad' ones are stopped early, 'crash' ones fail after one report."""
    home = tmp_path_factory.mktemp("viz-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("KATIB_HOME", str(home))
    mp.setenv("KATIB_DB_URL", f"sqlite:///{home}/katib.db")
    result = katib.tune(
        objectives.curve, {"opt": search.categorical(["good", "fine", "bad", "crash"]),
                           "lr": search.discrete([0.001, 0.01, 0.1]), "layers": search.int(1, 2)},
        name="viz", algorithm_name="grid", objective_metric_name="loss", objective_type="minimize",
        max_trial_count=24, parallel_trial_count=2, progress=False,
        early_stopping={"algorithm_name": "medianstop",
                        "algorithm_settings": {"min_trials_required": 2, "start_step": 2}})
    yield result
    mp.undo()


def _json(fig: dict[str, Any]) -> dict[str, Any]:
    """The figure as the dashboard sends it: strict JSON, no NaN."""
    return json.loads(json.dumps(fig, allow_nan=False))  # type: ignore[no-any-return]


def _trace(fig: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in fig["data"] if t.get("name") == name)


def _big(n: int = 400, seed: int = 0, direction: str = "minimize") -> ExperimentData:
    exp = stored.experiment("big", direction)
    return ExperimentData.from_experiment(exp, stored.random_trials(exp, n, seed, failed_every=10))


# -- a real tune() run -------------------------------------------------------------------------
def test_history_of_a_tune_run(tuned: katib.TuneResult) -> None:
    data = ExperimentData.from_result(tuned)
    fig = _json(figures.history(data))
    states = {t.name: t.state for t in tuned.trials}
    assert sorted(states.values()).count("Failed") == 6
    plotted = _trace(fig, "Trials")["x"] + _trace(fig, "EarlyStopped")["x"]
    expected = [i for i, t in enumerate(tuned.trials) if t.state in ("Succeeded", "EarlyStopped")]
    assert sorted(plotted) == expected  # failed trials reported a loss but are not drawn
    by_number = {i: t.metrics["loss"] for i, t in enumerate(tuned.trials)}
    for name in ("Trials", "EarlyStopped"):
        trace = _trace(fig, name)
        assert trace["y"] == [by_number[x] for x in trace["x"]]
        assert all(text.startswith("<b>viz-") and "lr=" in text and "opt=" in text for text in trace["text"])
    # The best-so-far step line: at every trial number, the running minimum of the values so far.
    best = _trace(fig, "Best value")
    assert best["y"] == sorted(best["y"], reverse=True)
    running = math.inf
    for number in expected:
        running = min(running, by_number[number])
        at = max(i for i, x in enumerate(best["x"]) if x <= number)
        assert best["y"][at] == running
    assert best["x"][-1] == expected[-1] and best["y"][-1] == min(by_number[n] for n in expected)
    assert tuned.best_value == best["y"][-1]
    title = fig["layout"]["title"]["text"]
    assert "loss (minimize)" in title and f"{len(expected)} of 24 trials with a value; 6 failed" in title


def test_result_and_name_give_the_same_data(tuned: katib.TuneResult) -> None:
    by_result = ExperimentData.from_result(tuned)
    by_name = load_experiment("viz", db_url=tuned.db_url)
    assert [(t.name, t.state, t.value, t.params) for t in by_result.trials] == \
           [(t.name, t.state, t.value, t.params) for t in by_name.trials]
    assert by_name.parameter("lr").type == "discrete" and by_name.parameter("opt").choices[-1] == "crash"
    assert by_name.best_trial().name == tuned.best_trial_name  # type: ignore[union-attr]


def test_intermediate_values_mark_early_stopped_trials(tuned: katib.TuneResult) -> None:
    data = ExperimentData.from_result(tuned)
    curves = load_curves(data, db_url=tuned.db_url)
    fig = _json(figures.intermediate(data, curves))
    stopped = [t for t in data.trials if t.state == "EarlyStopped"]
    assert stopped
    lines = [t for t in fig["data"] if t["mode"] == "lines"]
    dashed = {t["hovertemplate"].split("</b>")[0][3:] for t in lines if t["line"]["dash"] == "dash"}
    assert dashed == {t.name for t in stopped}  # the best trial's line too, if it was stopped
    ends = _trace(fig, "EarlyStopped (last report)")
    assert ends["marker"]["symbol"] == "x"
    assert ends["text"] == [t.name for t in stopped]
    for name, x, y in zip(ends["text"], ends["x"], ends["y"]):
        assert (x, y) == curves[name][-1]
    bad = [t.name for t in stopped if t.params["opt"] == "bad"]
    assert bad and all(2 <= curves[name][-1][0] < 10 for name in bad)  # cut short of the 10 reports
    for t in lines:
        assert ("EarlyStopped)" in t["hovertemplate"]) == (t["line"]["dash"] == "dash")
    succeeded = next(t for t in data.trials if t.state == "Succeeded")
    assert [s for s, _ in curves[succeeded.name]] == [float(s) for s in range(1, 11)]
    assert any(t["legendgroup"] == "EarlyStopped" and t["showlegend"] for t in lines if "legendgroup" in t)


def test_every_figure_of_a_tune_run_is_strict_json(tuned: katib.TuneResult) -> None:
    data = ExperimentData.from_result(tuned)
    curves = load_curves(data, db_url=tuned.db_url)
    for name, build in [*ALL[:-1], ("intermediate", lambda d: figures.intermediate(d, curves))]:
        fig = _json(build(data))
        assert fig["data"], name


# -- experiments written through the Store -----------------------------------------------------
def test_parallel_coordinates_dimensions_ticks_and_colors() -> None:
    data = _big(200)
    fig = _json(figures.parallel_coordinates(data))
    (trace,) = fig["data"]
    dims = trace["dimensions"]
    assert [d["label"] for d in dims] == ["loss", "lr (log)", "layers", "optimizer"]
    # Worst first, best last: the best lines are drawn on top.
    finished = sorted(data.finished(), key=lambda t: -(t.value or 0.0))
    assert all(len(d["values"]) == len(finished) for d in dims)
    assert dims[0]["values"] == pytest.approx([t.value for t in finished], rel=1e-5)
    assert dims[0]["values"][-1] == pytest.approx(data.best_trial().value, rel=1e-5)  # type: ignore[union-attr]
    lr = dims[1]
    assert lr["values"] == pytest.approx([math.log10(t.params["lr"]) for t in finished], rel=1e-5)
    assert lr["range"][0] == pytest.approx(-4) and lr["range"][1] == pytest.approx(-1)
    assert lr["ticktext"] == ["0.0001", "0.001", "0.01", "0.1"] and lr["tickvals"] == [-4, -3, -2, -1]
    opt = dims[3]
    assert opt["ticktext"] == ["sgd", "adam", "rmsprop"] and opt["tickvals"] == [0, 1, 2]
    assert opt["values"] == [["sgd", "adam", "rmsprop"].index(t.params["optimizer"]) for t in finished]
    assert trace["line"]["color"] == dims[0]["values"] and trace["line"]["reversescale"] is True
    assert [d["label"] for d in _json(figures.parallel_coordinates(data, ["optimizer"]))["data"][0]["dimensions"]] \
        == ["loss", "optimizer"]
    with pytest.raises(ValueError, match="parallel_coordinates: unknown parameter 'nope'; parameters: lr, layers"):
        figures.parallel_coordinates(data, ["nope"])


def test_slice_plot_one_subplot_per_parameter() -> None:
    data = _big(100)
    fig = _json(figures.slice_plot(data))
    assert [t["name"] for t in fig["data"]] == ["lr", "layers", "optimizer"]
    layout = fig["layout"]
    assert layout["xaxis"]["type"] == "log" and layout["xaxis"]["title"]["text"] == "lr"
    assert layout["xaxis3"]["type"] == "category" and layout["xaxis3"]["categoryarray"] == ["sgd", "adam", "rmsprop"]
    assert "type" not in layout["xaxis2"]
    finished = data.finished()
    lr, layers, opt = fig["data"]
    assert lr["x"] == pytest.approx([t.params["lr"] for t in finished], rel=1e-5)
    assert opt["x"] == [t.params["optimizer"] for t in finished] and opt["xaxis"] == "x3"
    assert layers["marker"]["color"] == [t.number for t in finished]  # colored by trial number
    assert lr["y"] == pytest.approx([t.value for t in finished], rel=1e-5)


def test_contour_grid_hull_and_axes() -> None:
    data = _big(400)
    fig = _json(figures.contour(data, "lr", "layers"))
    surface, points = fig["data"]
    assert surface["type"] == "contour" and len(surface["z"]) == 100 and {len(r) for r in surface["z"]} == {100}
    assert len(surface["x"]) == 100 and surface["x"][0] == pytest.approx(1e-4) and surface["x"][-1] == pytest.approx(0.1)
    assert fig["layout"]["xaxis"]["type"] == "log"
    # Inside the trials' hull the surface is defined and follows the objective; outside, blank.
    z = surface["z"]
    inside = [v for row in z[5:95] for v in row[10:90]]
    assert all(v is not None and math.isfinite(v) for v in inside)
    column = min(range(100), key=lambda i: abs(math.log10(surface["x"][i]) + 2.5))
    row = min(range(100), key=lambda i: abs(surface["y"][i] - 3))
    assert z[row][column] == pytest.approx(0.0, abs=0.1)  # the objective's minimum is at lr=10^-2.5, layers=3
    far = min(range(100), key=lambda i: abs(math.log10(surface["x"][i]) + 3.5))
    assert z[row][far] == pytest.approx(1.0, abs=0.15)  # (log10(lr) + 2.5)^2 at lr=10^-3.5
    assert z[0][0] is None or z[-1][-1] is None or z[0][-1] is None  # corners no trial reached
    assert len(points["x"]) == len(data.finished())
    with pytest.raises(ValueError, match=r"^contour: unknown parameter 'foo'; parameters: lr, layers, optimizer$"):
        figures.contour(data, "foo", "lr")


def test_contour_of_a_categorical_parameter_has_its_labels() -> None:
    fig = _json(figures.contour(_big(300), "optimizer", "lr"))
    xaxis = fig["layout"]["xaxis"]
    assert xaxis["tickvals"] == [0, 1, 2] and xaxis["ticktext"] == ["sgd", "adam", "rmsprop"]
    assert fig["layout"]["yaxis"]["type"] == "log"
    assert any(v is not None for row in fig["data"][0]["z"] for v in row)


def test_importance_ranks_the_dominant_parameter_first() -> None:
    data = _big(300)
    fig = _json(figures.importance(data))
    (bars,) = fig["data"]
    assert bars["y"][-1] == "lr"  # drawn bottom-up: the top bar is the last
    assert sum(bars["x"]) == pytest.approx(1.0)
    assert bars["x"] == sorted(bars["x"]) and bars["x"][-1] > 0.9
    assert "fANOVA" in fig["layout"]["title"]["text"]
    # Repeatable: the same numbers every time.
    assert _json(figures.importance(data))["data"][0]["x"] == bars["x"]


def test_importance_with_a_layers_dominated_objective() -> None:
    exp = stored.experiment("layers")
    trials = stored.random_trials(exp, 200, objective=lambda p: 5.0 * p["layers"] + 0.01 * p["lr"])
    from katib.visualization.importance import param_importances

    shares = param_importances(ExperimentData.from_experiment(exp, trials))
    assert list(shares)[0] == "layers" and shares["layers"] > 0.9


def test_edf_for_both_directions() -> None:
    data = _big(200)
    trace = _json(figures.edf(data))["data"][0]
    values = sorted(t.value or 0.0 for t in data.finished())
    assert trace["x"] == sorted(set(values)) and trace["y"][-1] == 1.0
    assert trace["y"] == sorted(trace["y"]) and trace["y"][0] == pytest.approx(1 / len(values))
    high = _big(200, direction="maximize")
    up = _json(figures.edf(high))
    assert up["data"][0]["y"][0] == 1.0 and up["data"][0]["y"] == sorted(up["data"][0]["y"], reverse=True)
    assert "accuracy (maximize)" in up["layout"]["title"]["text"]


def test_intermediate_caps_the_number_of_lines() -> None:
    data = _big(400)
    curves = {t.name: [(1.0, 5.0), (2.0, t.value or 5.0)] for t in data.trials}
    fig = _json(figures.intermediate(data, curves))
    lines = [t for t in fig["data"] if t["mode"] == "lines"]
    assert 200 <= len(lines) <= 250
    assert f"showing {len(lines)} of 400 trials" in fig["layout"]["title"]["text"]
    best = data.best_trial()
    assert _trace(fig, f"Best trial ({best.name})")["line"]["color"] == "#d62728"  # type: ignore[union-attr]


def test_figures_without_a_finished_trial_say_so() -> None:
    exp = stored.experiment("fresh")
    trials = [stored.trial(exp, 0, P, "Running"), stored.trial(exp, 1, P, TrialCondition.FAILED)]
    with Store() as store:
        stored.store_experiment(store, exp, trials)
    data = load_experiment("fresh")
    for name, build in ALL:
        fig = _json(build(data))
        assert fig["data"] == [], name
        assert fig["layout"]["annotations"][0]["text"] == "No trial has reported loss yet", name


def test_importance_needs_two_finished_trials() -> None:
    exp = stored.experiment("one")
    data = ExperimentData.from_experiment(exp, [stored.trial(exp, 0, P, metrics={"loss": 1.0})])
    assert _json(figures.importance(data))["layout"]["annotations"][0]["text"] == "No trial has reported loss yet"
    assert _json(figures.history(data))["data"]  # one point is a history already


def test_non_finite_parameter_values_stay_out_of_the_json() -> None:
    exp = stored.experiment("odd")
    trials = stored.random_trials(exp, 30)
    trials[3].spec.parameter_assignments[0].value = "nan"
    trials[4].spec.parameter_assignments[0].value = "inf"
    data = ExperimentData.from_experiment(exp, trials)
    for name, build in ALL:
        _json(build(data))


def test_twenty_thousand_trials_every_figure() -> None:
    import time

    exp = stored.experiment("huge")
    trials = stored.random_trials(exp, 20000, failed_every=10)
    began = time.perf_counter()
    data = ExperimentData.from_experiment(exp, trials)
    took = {"convert": time.perf_counter() - began}
    curves = {t.name: [(float(s), (t.value or 1.0) + 1.0 / s) for s in range(1, 21)] for t in data.trials}
    for name, build in [*ALL[:-1], ("intermediate", lambda d: figures.intermediate(d, curves))]:
        began = time.perf_counter()
        fig = build(data)
        took[name] = time.perf_counter() - began
        assert _json(fig)["data"], name
    history = figures.history(data)
    assert history["data"][0]["type"] == "scattergl"
    print("20,000 trials:", ", ".join(f"{k} {v:.2f} s" for k, v in took.items()))


def test_importance_of_an_objective_that_never_changes_says_so() -> None:
    exp = stored.experiment("flat")
    data = ExperimentData.from_experiment(exp, stored.random_trials(exp, 50, objective=lambda p: 1.0))
    fig = _json(figures.importance(data))
    assert fig["data"] == []  # not equal shares, which would read as "all matter alike"
    assert fig["layout"]["annotations"][0]["text"] == "The finished trials' loss does not vary with their parameters"


def test_history_when_maximizing_keeps_the_running_maximum() -> None:
    data = _big(150, seed=3, direction="maximize")
    fig = _json(figures.history(data))
    best = _trace(fig, "Best value")
    assert best["y"] == sorted(best["y"])  # never goes down
    finished = data.finished()
    assert best["y"][-1] == max(t.value for t in finished)  # type: ignore[type-var]
    running = -math.inf
    for t in finished:
        running = max(running, t.value or -math.inf)
        at = max(i for i, x in enumerate(best["x"]) if x <= t.number)
        assert best["y"][at] == running
    assert "accuracy (maximize)" in fig["layout"]["title"]["text"]
    assert "15 failed" in fig["layout"]["title"]["text"]


def test_an_experiment_without_parameters_says_so() -> None:
    exp = stored.experiment("nas")
    exp.spec.parameters = []
    data = ExperimentData.from_experiment(exp, [stored.trial(exp, 0, {"architecture": "[[1]]"}, metrics={"loss": 1.0})])
    assert data.trials[0].params == {"architecture": "[[1]]"}
    fig = _json(figures.slice_plot(data))
    assert fig["layout"]["annotations"][0]["text"] == "This experiment has no parameters to plot against"
    assert [d["label"] for d in _json(figures.parallel_coordinates(data))["data"][0]["dimensions"]] == ["loss"]


def test_parallel_coordinates_of_many_trials_draws_the_best_and_a_sample_on_full_axes() -> None:
    from katib.visualization._space import MAX_BEST_LINES, MAX_LINES

    data = _big(n=5000, seed=3)
    finished = data.finished()
    fig = _json(figures.parallel_coordinates(data))
    dims = fig["data"][0]["dimensions"]
    objective = dims[0]
    assert len(objective["values"]) == MAX_LINES < len(finished)
    values = sorted(t.value for t in finished)
    # Minimize: every one of the best trials is drawn, last (on top), and the axes span every trial.
    # (values are sent with 6 significant digits)
    assert sorted(objective["values"])[:MAX_BEST_LINES] == pytest.approx(values[:MAX_BEST_LINES], rel=1e-5)
    assert objective["values"][-1] == pytest.approx(values[0], rel=1e-5)
    assert objective["range"] == pytest.approx([values[0], values[-1]], rel=1e-5)
    drawn_worst = max(objective["values"])
    assert drawn_worst >= values[int(len(values) * 0.99)]  # the sample reaches into the worst trials
    assert f"{len(finished)} of 5000 trials with a value" in fig["layout"]["title"]["text"]
    assert f"{MAX_LINES} lines drawn" in fig["layout"]["title"]["text"]
