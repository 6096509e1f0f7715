"""Folding rows into an Observation, metric strategies and best-trial selection."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from katib.api.model import (
    Metric,
    MetricStrategy,
    Observation,
    ObjectiveSpec,
    Trial,
    TrialStatus,
)
from katib.api.observation import UNAVAILABLE, MetricLog
from katib.metrics.strategies import best_trial, fold, goal_reached, metric_value, objective_value

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def row(name: str, value: str, seconds: float = 0) -> MetricLog:
    return MetricLog(name, value, T0 + timedelta(seconds=seconds))


def test_fold_min_max_latest() -> None:
    obs = fold([row("loss", "0.5", 1), row("loss", "0.2", 3), row("loss", "0.9", 2),
                row("acc", "0.7", 1)], ["loss", "acc", "f1"])
    assert obs.metrics == [
        Metric("loss", min="0.2", max="0.9", latest="0.2"),
        Metric("acc", min="0.7", max="0.7", latest="0.7"),
        Metric("f1", min=UNAVAILABLE, max=UNAVAILABLE, latest=UNAVAILABLE),
    ]


def test_fold_latest_tie_goes_to_the_later_row() -> None:
    obs = fold([row("loss", "1"), row("loss", "2"), row("loss", "0", -1)], ["loss"])
    assert obs.metrics[0].latest == "2"


def test_fold_string_values_only_count_for_latest() -> None:
    obs = fold([row("g", "Genotype(a)", 1), row("g", "Genotype(b)", 2)], ["g"])
    assert obs.metrics[0] == Metric("g", min=UNAVAILABLE, max=UNAVAILABLE, latest="Genotype(b)")


def test_fold_without_names_keeps_every_metric_in_first_seen_order() -> None:
    obs = fold([row("b", "1"), row("a", "2"), row("b", "3")])
    assert [m.name for m in obs.metrics] == ["b", "a"]


def test_fold_ignores_nan_for_min_max() -> None:
    obs = fold([row("loss", "nan", 0), row("loss", "2", 1), row("loss", "1", 2)], ["loss"])
    assert (obs.metrics[0].min, obs.metrics[0].max) == ("1", "2")


def objective(type_: str = "minimize", strategy: str | None = None, goal: float | None = None
              ) -> ObjectiveSpec:
    strategies = [MetricStrategy("loss", strategy)] if strategy else []
    return ObjectiveSpec(type=type_, goal=goal, objective_metric_name="loss",
                         metric_strategies=strategies)


OBS = Observation([Metric("loss", min="0.1", max="0.9", latest="0.5")])


@pytest.mark.parametrize("strategy, expected", [("min", 0.1), ("max", 0.9), ("latest", 0.5)])
def test_objective_value_by_strategy(strategy: str, expected: float) -> None:
    assert objective_value(OBS, objective(strategy=strategy)) == expected


def test_objective_value_default_strategy_follows_the_objective_type() -> None:
    assert objective_value(OBS, objective("minimize")) == 0.1
    assert objective_value(OBS, objective("maximize")) == 0.9


def test_min_max_fall_back_to_latest_when_unavailable() -> None:
    obs = Observation([Metric("loss", min=UNAVAILABLE, max=UNAVAILABLE, latest="0.4")])
    assert objective_value(obs, objective(strategy="min")) == 0.4
    assert objective_value(obs, objective(strategy="max")) == 0.4


def test_unavailable_and_missing_are_none() -> None:
    obs = Observation([Metric("loss", min=UNAVAILABLE, max=UNAVAILABLE, latest=UNAVAILABLE)])
    assert objective_value(obs, objective()) is None
    assert objective_value(Observation([]), objective()) is None
    assert objective_value(None, objective()) is None


def test_metric_value_rejects_unknown_strategy() -> None:
    with pytest.raises(ValueError, match="metricStrategies"):
        metric_value(OBS, "loss", "median")


def trial(name: str, latest: str | None) -> Trial:
    t = Trial()
    t.metadata.name = name
    if latest is not None:
        t.status = TrialStatus(observation=Observation([Metric("loss", latest, latest, latest)]))
    return t


def test_best_trial_minimize_strict_first_seeds() -> None:
    trials = [trial("a", None), trial("b", "0.5"), trial("c", "0.3"), trial("d", "0.3"),
              trial("e", UNAVAILABLE)]
    best = best_trial(trials, objective("minimize"))
    assert best is not None and (best.trial.name, best.number, best.index) == ("c", 0.3, 2)


def test_best_trial_maximize() -> None:
    best = best_trial([trial("a", "1"), trial("b", "3"), trial("c", "2")], objective("maximize"))
    assert best is not None and best.trial.name == "b"


def test_best_trial_string_metric_latest_wins() -> None:
    trials = [trial("a", "Genotype(x)"), trial("b", "Genotype(y)"), trial("c", None)]
    best = best_trial(trials, objective("maximize", strategy="latest"))
    assert best is not None and (best.trial.name, best.value, best.number) == (
        "b", "Genotype(y)", None)


def test_best_trial_none_without_values() -> None:
    assert best_trial([trial("a", None), trial("b", UNAVAILABLE)], objective()) is None


def test_goal() -> None:
    best = best_trial([trial("a", "0.5"), trial("b", "0.05")], objective(goal=0.1))
    assert best is not None and best.goal_reached
    best = best_trial([trial("a", "0.5")], objective(goal=0.1))
    assert best is not None and not best.goal_reached
    assert goal_reached(0.95, objective("maximize", goal=0.9))
    assert not goal_reached(0.95, objective("maximize"))
