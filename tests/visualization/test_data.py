"""ExperimentData: an experiment's trials as the plots read them, from the real Store,
from Trial objects and from a TuneResult; learning curves from observation rows."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from katib.api.model import TrialCondition
from katib.api.observation import MetricLog
from katib.errors import NotFoundError
from katib.sdk.result import TrialRecord, TuneResult
from katib.store import Store
from katib.visualization.data import (ExperimentData, curve_trials, curves_from_logs, load_curves,
                                      load_experiment)
from tests.visualization import stored

P = {"lr": 0.01, "layers": 3, "optimizer": "adam"}


def _rows(metric: str, values: list[str], steps: list[int | None] | None = None) -> list[MetricLog]:
    steps = steps or [None] * len(values)
    return [MetricLog(metric, v, stored.T0 + timedelta(seconds=i), s) for i, (v, s) in enumerate(zip(values, steps))]


def test_from_the_store_types_values_states_and_times(tmp_path: object) -> None:
    exp = stored.experiment("typed")
    trials = [
        stored.trial(exp, 0, P, metrics={"loss": 0.5, "accuracy": 0.7}, duration=12),
        stored.trial(exp, 1, {**P, "lr": 0.001, "layers": 5, "optimizer": "sgd"}, TrialCondition.FAILED,
                     message="exit status 3: ValueError: bad"),
        stored.trial(exp, 2, P, "Running"),
        stored.trial(exp, 3, P, "Pending"),
        stored.trial(exp, 4, {**P, "lr": 0.05}, TrialCondition.EARLY_STOPPED, metrics={"loss": 0.25}),
    ]
    with Store() as store:
        stored.store_experiment(store, exp, trials)
    data = load_experiment("typed")
    assert (data.name, data.namespace, data.objective_metric, data.direction) == ("typed", "default", "loss", "minimize")
    assert data.algorithm == "random" and data.metric_names == ["loss", "accuracy"]
    lr, layers, opt = data.parameters
    assert (lr.type, lr.low, lr.high, lr.log) == ("double", 0.0001, 0.1, True)
    assert (layers.type, layers.low, layers.high, layers.log) == ("int", 1.0, 5.0, False)
    assert (opt.type, opt.choices) == ("categorical", ("sgd", "adam", "rmsprop"))
    assert [t.number for t in data.trials] == [0, 1, 2, 3, 4]
    assert [t.state for t in data.trials] == ["Succeeded", "Failed", "Running", "Pending", "EarlyStopped"]
    first = data.trials[0]
    assert first.params == {"lr": 0.01, "layers": 3, "optimizer": "adam"}
    assert type(first.params["layers"]) is int and type(first.params["lr"]) is float
    assert first.value == 0.5 and first.metrics == {"loss": 0.5, "accuracy": 0.7}
    assert first.created == stored.T0 and first.duration == 12.0
    failed = data.trials[1]
    assert failed.value is None and failed.reason == "TrialFailed" and "ValueError: bad" in failed.message
    assert data.trials[2].completed is None and data.trials[2].duration is not None  # running: up to now
    assert data.trials[3].duration is None and data.trials[3].reason == "TrialCreated"
    assert data.trials[4].value == 0.25 and data.trials[4].reason == "TrialEarlyStopped"
    best = data.best_trial()
    assert best is not None and best.name == "typed-00004"


def test_maximize_picks_the_largest_and_strategy_decides_the_value() -> None:
    exp = stored.experiment("max", "maximize")
    t = stored.trial(exp, 0, P, metrics={"accuracy": 0.5})
    t.status.observation.metrics[0].max = "0.9"  # type: ignore[union-attr]  # folded max of several reports
    t2 = stored.trial(exp, 1, P, metrics={"accuracy": 0.8})
    data = ExperimentData.from_experiment(exp, [t, t2])
    assert data.direction == "maximize"
    assert data.trials[0].value == 0.9  # objective strategy "max" under maximize
    assert data.best_trial().name == t.name  # type: ignore[union-attr]


def test_non_finite_and_unparseable_values_are_no_values() -> None:
    exp = stored.experiment("nan")
    t = stored.trial(exp, 0, P, metrics={"loss": 1.0})
    t.status.observation.metrics[0].min = t.status.observation.metrics[0].latest = "nan"  # type: ignore[union-attr]
    t.status.observation.metrics[0].max = "nan"  # type: ignore[union-attr]
    bad = stored.trial(exp, 1, {**P, "layers": "three"}, metrics={"loss": 2.0})
    data = ExperimentData.from_experiment(exp, [t, bad])
    assert data.trials[0].value is None and data.trials[0].metrics == {}
    assert data.trials[1].params["layers"] == "three"  # kept as text; numeric plots skip it
    assert data.best_trial().name == bad.name  # type: ignore[union-attr]


def test_discrete_bounds_and_choices() -> None:
    exp = stored.experiment("disc", extra_params=[
        {"name": "batch", "parameterType": "discrete", "feasibleSpace": {"list": ["64", "16", "32"]}}])
    data = ExperimentData.from_experiment(exp, [stored.trial(exp, 0, {**P, "batch": 32}, metrics={"loss": 1.0})])
    batch = data.parameter("batch")
    assert (batch.low, batch.high, batch.choices) == (16.0, 64.0, ("64", "16", "32"))
    assert data.trials[0].params["batch"] == 32.0


def test_load_experiment_names_a_missing_experiment() -> None:
    with pytest.raises(NotFoundError, match="nothere"):
        load_experiment("nothere")


def test_from_result_without_the_experiment_infers_types() -> None:
    result = TuneResult("r", "default", "Succeeded", "done", "score", "maximize", "r-2", trials=[
        TrialRecord("r-1", "Succeeded", {"x": 0.5, "n": 2, "flag": True}, {"score": 1.0}),
        TrialRecord("r-2", "Succeeded", {"x": 0.25, "n": 4, "flag": False}, {"score": 3.0, "genotype": "Genotype("}),
        TrialRecord("r-3", "Failed", {"x": 0.75, "n": 1, "flag": True}, {}, error="Traceback: boom"),
    ])
    data = ExperimentData.from_result(result)
    kinds = {p.name: (p.type, p.low, p.high, p.choices) for p in data.parameters}
    assert kinds == {"x": ("double", 0.25, 0.75, ()), "n": ("int", 1.0, 4.0, ()),
                     "flag": ("categorical", None, None, ("true", "false"))}
    assert [t.value for t in data.trials] == [1.0, 3.0, None]
    assert data.trials[0].params["flag"] == "true" and data.trials[2].message == "Traceback: boom"
    assert data.best_trial().name == "r-2" and data.direction == "maximize"  # type: ignore[union-attr]


def test_curves_use_steps_or_report_order_and_skip_non_values() -> None:
    logs = {
        "a": _rows("loss", ["3", "2", "nan", "1"], [10, 20, 30, 40]) + _rows("acc", ["0.5"]),
        "b": _rows("loss", ["5", "text", "4"]),
        "c": _rows("acc", ["0.1"]),
    }
    curves = curves_from_logs(logs, "loss")
    assert curves == {"a": [(10.0, 3.0), (20.0, 2.0), (40.0, 1.0)], "b": [(1.0, 5.0), (3.0, 4.0)]}


def test_curves_are_thinned_keeping_first_and_last() -> None:
    logs = {"a": _rows("loss", [str(i) for i in range(1000)])}
    curve = curves_from_logs(logs, "loss", max_points=50)["a"]
    assert len(curve) == 50 and curve[0] == (1.0, 0.0) and curve[-1] == (1000.0, 999.0)
    assert [s for s, _ in curve] == sorted(s for s, _ in curve)


def test_curve_trials_are_the_recent_and_the_best() -> None:
    exp = stored.experiment("many")
    trials = [stored.trial(exp, i, P, metrics={"loss": float(i)}) for i in range(100)]
    data = ExperimentData.from_experiment(exp, trials)
    chosen = curve_trials(data, recent=10, best=5)
    assert chosen == [f"many-{i:05d}" for i in [*range(5), *range(90, 100)]]


def test_load_curves_reads_the_store() -> None:
    exp = stored.experiment("curves")
    trials = [stored.trial(exp, i, P, metrics={"loss": 1.0 / (i + 1)}) for i in range(3)]
    with Store() as store:
        stored.store_experiment(store, exp, trials, {
            t.name: _rows("loss", [str(3.0 - s) for s in range(3)], [1, 2, 3]) for t in trials})
    data = load_experiment("curves")
    curves = load_curves(data)
    assert set(curves) == {t.name for t in trials}
    assert curves[trials[0].name] == [(1.0, 3.0), (2.0, 2.0), (3.0, 1.0)]


def test_twenty_thousand_trials_convert_quickly() -> None:
    exp = stored.experiment("big")
    trials = stored.random_trials(exp, 20000, failed_every=10)
    began = time.perf_counter()
    data = ExperimentData.from_experiment(exp, trials)
    took = time.perf_counter() - began
    assert len(data.trials) == 20000 and len(data.finished()) == 18000
    print(f"20,000 trials converted in {took:.3f} s")


def test_stored_documents_give_the_same_data_as_decoded_trials() -> None:
    exp = stored.experiment("docs")
    trials = stored.random_trials(exp, 40, failed_every=4)
    trials.append(stored.trial(exp, 40, P, "Running"))
    trials.append(stored.trial(exp, 41, P, TrialCondition.EARLY_STOPPED, metrics={"loss": 0.3}, message="median"))
    with Store() as store:
        stored.store_experiment(store, exp, trials)
        docs = store.list_trial_documents("docs")
        decoded = store.list_trials("docs")
        assert [d["metadata"]["name"] for d in docs] == [t.name for t in decoded]
        assert store.list_trial_documents("docs", states=["Running"])[0]["metadata"]["name"] == "docs-00040"
    fast = ExperimentData.from_trial_documents(exp, docs)
    full = ExperimentData.from_experiment(exp, decoded)
    assert fast == full
    assert fast.trials[-1].reason == "TrialEarlyStopped" and fast.trials[-1].message == "median"


def test_documents_in_an_unusual_shape() -> None:
    exp = stored.experiment("shapes")
    doc = stored.trial(exp, 0, P, metrics={"loss": 1.5}).to_dict()
    doc["spec"]["parameterAssignments"][1]["value"] = 3  # a number where the wire has text
    data = ExperimentData.from_trial_documents(exp, [doc])
    assert data.trials[0].params["layers"] == 3 and data.trials[0].value == 1.5
    bad = stored.trial(exp, 1, P).to_dict()
    bad["status"]["conditions"] = "oops"  # what the full decoder has to say about it
    from katib.errors import ValidationError

    with pytest.raises(ValidationError, match="status.conditions: must be a list"):
        ExperimentData.from_trial_documents(exp, [bad])
