"""Every search algorithm against the contract of suggestion.base: settings validation,
every type and distribution, distinct batches, restart, direction, reproducibility."""

from __future__ import annotations

import math
import statistics
from typing import Mapping

import pytest

from katib.api.space import Value
from katib.errors import SearchSpaceExhausted, SettingsError
from suggestion import registry
from suggestion.base import TrialState
from tests.suggestion.algo_helpers import (ALL, MAXIMIZE, MINIMIZE, MODEL_BASED, Loop, key, make, mixed_space, param,
                                           result, settings_for, space_of)

DISTRIBUTIONS = ["uniform", "logUniform", "normal", "logNormal"]


def score(values: Mapping[str, Value]) -> float:
    """A smooth objective over the mixed space (minimum near m=0.5, units=64, opt=adam)."""
    m = float(values["m"])  # type: ignore[arg-type]
    units = float(values["units"])  # type: ignore[arg-type]
    return (m - 0.5) ** 2 + (math.log(units) - math.log(64)) ** 2 / 10 + (0.0 if values["opt"] == "adam" else 0.3)


def _space_for(name: str, distribution: str = "uniform"):  # type: ignore[no-untyped-def]
    # grid enumerates, so it gets the space without step-less doubles
    return mixed_space(distribution, continuous=name != "grid")


# --- settings validation (§7) -----------------------------------------------------------

GOOD = {
    "random": [{}, {"random_state": "7"}],
    "grid": [{}, {"random_state": "0"}],
    "sobol": [{}, {"random_state": "3"}],
    "tpe": [{"n_startup_trials": "0", "n_ei_candidates": "5", "random_state": "1"},
            {"gamma": "0.25", "prior_weight": "2", "n_EI_candidates": "12"},
            {"n_ei_candidates": "8", "n_EI_candidates": "8"}],
    "multivariate-tpe": [{"n_startup_trials": "3"}, {"gamma": "0.5", "n_EI_candidates": "30"}],
    "cmaes": [{"restart_strategy": r} for r in ("none", "None", "ipop", "bipop")] + [{"sigma": "0.3", "random_state": "2"}],
    "bayesianoptimization": [{"base_estimator": e} for e in ("GP", "RF", "ET", "GBRT")]
    + [{"acq_func": f} for f in ("gp_hedge", "LCB", "EI", "PI", "EIps", "PIps")]
    + [{"acq_optimizer": o} for o in ("auto", "sampling", "lbfgs")] + [{"n_initial_points": "0", "random_state": "10"}],
    "hyperband": [{"eta": "2"}, {"eta": "3", "random_state": "4"},
                  {"s_max": "2", "current_s": "1", "current_i": "0", "evaluating_trials": "3", "n": "5", "r": "3", "b_l": "27"}],
}

BAD = {  # settings -> the setting the error must name
    "random": [({"random_state": "-1"}, "random_state"), ({"random_state": "x"}, "random_state"), ({"seed": "1"}, "seed")],
    "grid": [({"random_state": "1.5"}, "random_state"), ({"n_startup_trials": "1"}, "n_startup_trials")],
    "sobol": [({"random_state": "-3"}, "random_state"), ({"scramble": "true"}, "scramble")],
    "tpe": [({"n_startup_trials": "-1"}, "n_startup_trials"), ({"n_ei_candidates": "0"}, "n_ei_candidates"),
            ({"n_EI_candidates": "-2"}, "n_EI_candidates"), ({"gamma": "1"}, "gamma"), ({"gamma": "0"}, "gamma"),
            ({"prior_weight": "0"}, "prior_weight"), ({"random_state": "-1"}, "random_state"),
            ({"n_ei_candidates": "8", "n_EI_candidates": "9"}, "n_EI_candidates"), ({"sigma": "1"}, "sigma")],
    "multivariate-tpe": [({"n_startup_trials": "a"}, "n_startup_trials"), ({"multivariate": "true"}, "multivariate")],
    "cmaes": [({"restart_strategy": "foo"}, "restart_strategy"), ({"sigma": "0"}, "sigma"), ({"sigma": "-1"}, "sigma"),
              ({"random_state": "-1"}, "random_state"), ({"popsize": "5"}, "popsize")],
    "bayesianoptimization": [({"base_estimator": "XX"}, "base_estimator"), ({"n_initial_points": "-1"}, "n_initial_points"),
                             ({"acq_func": "UCB"}, "acq_func"), ({"acq_optimizer": "adam"}, "acq_optimizer"),
                             ({"base_estimator": "RF", "acq_optimizer": "lbfgs"}, "acq_optimizer"),
                             ({"random_state": "-4"}, "random_state"), ({"kappa": "1"}, "kappa")],
    "hyperband": [({"eta": "1"}, "eta"), ({"eta": "0"}, "eta"), ({"r_l": "0"}, "r_l"), ({"r_l": "abc"}, "r_l"),
                  ({"resource_name": "nope"}, "resource_name"), ({"resource_name": "opt"}, "resource_name"),
                  ({"random_state": "-1"}, "random_state"), ({"bracket": "1"}, "bracket")],
}


@pytest.mark.parametrize("name,settings", [(n, s) for n, cases in GOOD.items() for s in cases])
def test_good_settings_validate_and_run(name: str, settings: dict[str, str]) -> None:
    space = _space_for(name)
    algo = make(name, space, **settings)
    batch = algo.ask(3)
    assert batch and all(space.contains(dict(a.values)) for a in batch)


@pytest.mark.parametrize("name,settings,setting", [(n, s, k) for n, cases in BAD.items() for s, k in cases])
def test_bad_settings_name_the_setting(name: str, settings: dict[str, str], setting: str) -> None:
    cls = registry.get(name)
    with pytest.raises(SettingsError) as info:
        cls.validate_settings(settings_for(name, **settings), _space_for(name), MINIMIZE, parallel_trial_count=9)
    assert info.value.setting == setting
    assert setting in str(info.value)


def test_hyperband_required_settings_and_parallelism() -> None:
    cls = registry.get("hyperband")
    space = mixed_space()
    for settings, setting in [({"resource_name": "epochs"}, "r_l"), ({"r_l": "9"}, "resource_name")]:
        with pytest.raises(SettingsError) as info:
            cls.validate_settings(settings, space, MINIMIZE)
        assert info.value.setting == setting and "required" in str(info.value)
    with pytest.raises(SettingsError) as info:  # ceil(3^2) = 9 trials must run at once
        cls.validate_settings({"r_l": "9", "resource_name": "epochs"}, space, MINIMIZE, parallel_trial_count=8)
    assert info.value.setting == "spec.parallelTrialCount" and ">= 9" in str(info.value)


def test_grid_needs_steps_and_enough_combinations() -> None:
    cls = registry.get("grid")
    with pytest.raises(SettingsError) as info:
        cls.validate_settings({}, mixed_space(), MINIMIZE)
    assert info.value.setting == "spec.parameters[0].feasibleSpace.step" and "'x'" in str(info.value)
    small = space_of(param("a", "int", "1", "3"), param("b", "double", "0", "1", step="0.5"))
    cls.validate_settings({}, small, MINIMIZE, max_trial_count=9)
    with pytest.raises(SettingsError) as info:
        cls.validate_settings({}, small, MINIMIZE, max_trial_count=10)
    assert info.value.setting == "spec.maxTrialCount" and "9 combinations" in str(info.value)


def test_cmaes_needs_two_numeric_parameters() -> None:
    cls = registry.get("cmaes")
    space = space_of(param("x", "double", "0", "1"), param("c", "categorical", values=["a", "b"]))
    with pytest.raises(SettingsError) as info:
        cls.validate_settings({}, space, MINIMIZE)
    assert info.value.setting == "spec.parameters" and "at least 2" in str(info.value)


@pytest.mark.parametrize("name", ALL)
def test_unsupported_distribution_and_log_range_rejected_naming_the_parameter(name: str) -> None:
    cls = registry.get(name)
    odd = space_of(param("a", "int", "1", "9"), param("b", "double", "1", "2", step="0.5", distribution="gamma"),
                   param("epochs", "int", "1", "9"))
    with pytest.raises(SettingsError) as info:
        cls.validate_settings(settings_for(name), odd, MINIMIZE, parallel_trial_count=9)
    assert "spec.parameters[1]" in str(info.value) and "'b'" in str(info.value)
    negative = space_of(param("a", "int", "1", "9"), param("b", "double", "-2", "-1", step="0.5", distribution="logUniform"),
                        param("epochs", "int", "1", "9"))
    with pytest.raises(SettingsError) as info:
        cls.validate_settings(settings_for(name), negative, MINIMIZE, parallel_trial_count=9)
    assert "spec.parameters[1].feasibleSpace.max" in str(info.value)


# --- every type and distribution; distinct batches; two rounds ----------------------------

@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
@pytest.mark.parametrize("name", ALL)
def test_two_rounds_respect_types_bounds_steps_and_are_distinct(name: str, distribution: str) -> None:
    space = _space_for(name, distribution)
    loop = Loop(make(name, space, random_state="5"), score)
    seen = set()
    for _ in range(2):
        batch = loop.round(4)
        assert len(batch) == 4 or (name == "hyperband" and batch)
        for a in batch:
            assert space.contains(dict(a.values)), a.values
            for p in space:  # ints stay ints, doubles floats
                v = a.values[p.name]
                assert isinstance(v, int) if p.type == "int" else not isinstance(v, bool)
            k = key(space, a.values)
            assert k not in seen, f"{name} repeated {a.values}"
            seen.add(k)


@pytest.mark.parametrize("name", ALL)
def test_ranges_touching_zero_and_negative_work(name: str) -> None:
    step = "0.25" if name == "grid" else None  # grid enumerates: every double needs a step
    space = space_of(param("a", "double", "-1", "0", step=step), param("b", "double", "0", "2", step=step, distribution="normal"),
                     param("c", "int", "-5", "5", step="2"), param("d", "double", "0", "1", step=step, distribution="logUniform"),
                     param("epochs", "int", "1", "9"))
    extra = {"n_startup_trials": "2"} if "tpe" in name else {"n_initial_points": "2"} if name == "bayesianoptimization" else {}
    loop = Loop(make(name, space, random_state="1", **extra), lambda v: float(v["a"]))
    for _ in range(5):
        for a in loop.round(3):
            assert space.contains(dict(a.values)), a.values


def test_random_honours_distributions_statistically() -> None:
    space = space_of(param("u", "double", "0", "10"), param("lu", "double", "0.001", "1000", distribution="logUniform"),
                     param("n", "double", "0", "6", distribution="normal"),
                     param("ln", "double", "1", "10000", distribution="logNormal"),
                     param("q", "double", "0", "1", step="0.25", distribution="normal"),
                     param("i", "int", "0", "4"))
    batch = make("random", space, random_state="0").ask(3000)
    col = {name: [a.values[name] for a in batch] for name in space.names}
    assert 4 < statistics.median(col["u"]) < 6
    assert 0.3 < statistics.median(col["lu"]) < 3  # geometric middle of 1e-3 .. 1e3
    inner = sum(2 <= v <= 4 for v in col["n"]) / len(batch)  # +-1 sigma of the truncated normal
    assert 0.6 < inner < 0.76
    assert 30 < statistics.median(col["ln"]) < 300  # geometric middle of 1 .. 1e4
    assert set(col["q"]) <= {0.0, 0.25, 0.5, 0.75, 1.0} and col["q"].count(0.5) > col["q"].count(0.0)
    counts = [col["i"].count(k) for k in range(5)]
    assert min(counts) > 450  # each int equally likely, the end points included


@pytest.mark.parametrize("name", ["random", "sobol", "tpe", "multivariate-tpe", "cmaes", "bayesianoptimization"])
def test_finite_space_returns_fewer_then_ends(name: str) -> None:
    space = space_of(param("a", "int", "1", "2"), param("b", "double", "0", "1", step="1"), param("epochs", "int", "1", "9"))
    loop = Loop(make(name, space, random_state="3"), lambda v: float(v["a"]))
    got = [key(space, a.values) for a in loop.round(3)]
    got += [key(space, a.values) for a in loop.round(3)]
    assert len(got) == len(set(got))
    total = 2 * 2 * 9
    while True:
        try:
            batch = loop.round(5)
        except SearchSpaceExhausted:
            break
        got += [key(space, a.values) for a in batch]
        assert len(got) == len(set(got)) <= total
    assert len(got) == total


def test_grid_enumerates_in_order_and_ends() -> None:
    space = space_of(param("a", "int", "1", "3"), param("b", "double", "0.1", "0.35", step="0.1"),
                     param("c", "categorical", values=["x", "y"]))
    algo = make("grid", space)
    points = [a.values for _ in range(4) for a in algo.ask(5)]
    assert len(points) == 3 * 3 * 2
    assert points[0] == {"a": 1, "b": 0.1, "c": "x"} and points[1] == {"a": 1, "b": 0.1, "c": "y"}
    assert points[-1] == {"a": 3, "b": 0.3, "c": "y"}  # 0.4 would exceed max
    with pytest.raises(SearchSpaceExhausted):
        algo.ask(1)


def test_grid_skips_told_points_after_restart_and_covers_the_grid_once() -> None:
    space = space_of(param("a", "int", "1", "4"), param("b", "discrete", values=["1", "2.5", "4"]))
    first = Loop(make("grid", space, random_state="9"), lambda v: 0.0)
    first.round(5)
    first.round(2, finish=False)
    foreign = result("by-hand", {"a": 4, "b": 4}, 1.0)
    second = make("grid", space, random_state="9")
    second.tell(first.trials + [foreign])
    rest = []
    with pytest.raises(SearchSpaceExhausted):
        while True:
            rest += [key(space, a.values) for a in second.ask(2)]
    told = {key(space, t.assignments) for t in first.trials} | {key(space, foreign.assignments)}
    assert len(rest) == len(set(rest)) and not told & set(rest) and len(told | set(rest)) == 12


# --- restart, direction, reproducibility --------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_fresh_instance_told_everything_continues(name: str) -> None:
    space = _space_for(name)
    loop = Loop(make(name, space, random_state="11", n_startup_trials="4")
                if name in ("tpe", "multivariate-tpe") else make(name, space, random_state="11"), score)
    for _ in range(4):
        loop.round(3)
    loop.round(3, finish=False)  # running trials at the time of the restart
    failed = result("failed-one", loop.trials[0].assignments | {"m": 0.2}, None, TrialState.FAILED, order=99)
    foreign = result("added-by-hand", loop.trials[1].assignments | {"m": 0.1}, 0.01, order=100)
    trials = loop.trials + [failed, foreign]
    fresh = make(name, space, random_state="11")
    fresh.tell(trials)
    batch = fresh.ask(3)
    assert batch and (len(batch) == 3 or name == "hyperband")
    seen = {key(space, t.assignments) for t in trials}
    for a in batch:
        assert space.contains(dict(a.values)) and key(space, a.values) not in seen
    # and it learns from what finishes afterwards
    loop.algo = fresh
    loop.finish_running()
    assert fresh.ask(2) or name == "hyperband"


@pytest.mark.parametrize("name", MODEL_BASED)
@pytest.mark.parametrize("objective", [MINIMIZE, MAXIMIZE], ids=["minimize", "maximize"])
def test_model_based_algorithms_follow_the_direction(name: str, objective) -> None:  # type: ignore[no-untyped-def]
    space = space_of(param("x", "double", "0", "1"), param("y", "double", "0", "1"))
    extra = {"n_startup_trials": "6"} if "tpe" in name else {"n_initial_points": "6"} if name == "bayesianoptimization" else {}
    loop = Loop(make(name, space, objective, random_state="0", **extra), lambda v: float(v["x"]))
    for _ in range(12):
        batch = loop.round(3)
    late = statistics.mean(float(a.values["x"]) for a in batch)
    if objective is MINIMIZE:
        assert late < 0.3
    else:
        assert late > 0.7


@pytest.mark.parametrize("name", ALL)
def test_same_random_state_same_suggestions(name: str) -> None:
    space = _space_for(name)
    runs = []
    for _ in range(2):
        loop = Loop(make(name, space, random_state="21"), score)
        runs.append([key(space, a.values) for _ in range(5) for a in loop.round(3)])
    assert runs[0] == runs[1]


def test_cmaes_restart_strategies_restart_on_a_flat_objective() -> None:
    space = space_of(param("x", "double", "0", "1"), param("y", "double", "0", "1"))
    for strategy in ("ipop", "bipop"):
        algo = make("cmaes", space, restart_strategy=strategy, random_state="0")
        loop = Loop(algo, lambda v: 1.0)
        for _ in range(60):
            loop.round(6)
        assert algo._n_restarts >= 1  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["random", "sobol"])
def test_seeded_instance_rebuilt_after_many_trials_replays_past_them(name: str) -> None:
    """A restarted seeded random/sobol draws its old points again; they are skipped, and
    the batch is still full."""
    space = mixed_space()
    loop = Loop(make(name, space, random_state="0"), score)
    loop.round(1000)
    fresh = make(name, space, random_state="0")
    fresh.tell(loop.trials)
    batch = fresh.ask(3)
    assert len(batch) == 3
    assert not {key(space, a.values) for a in batch} & {key(space, t.assignments) for t in loop.trials}
