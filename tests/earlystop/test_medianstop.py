from __future__ import annotations

import random
import statistics
from typing import Sequence

import pytest

from earlystop import registry
from earlystop.base import Decision, EarlyStoppingAlgorithm
from earlystop.inprocess import EarlyStoppingSession, algorithm_class
from earlystop.medianstop import MedianStop, _Curve
from katib.api.model import AlgorithmSetting, EarlyStoppingSpec, ExperimentSpec
from katib.errors import NotFoundError, SettingsError, ValidationError
from tests.earlystop.curves import logs, naive_stop_step, objective, saturating, upstream_threshold

ACC = "accuracy"


def rule(kind: str = "maximize", **settings: object) -> MedianStop:
    return MedianStop(objective(kind, ACC), {k: str(v) for k, v in settings.items()})


def complete(r: MedianStop, name: str, values: Sequence[float | str], steps: list[int] | None = None,
             state: str = "Succeeded") -> None:
    r.observe(name, logs(ACC, values, steps))
    r.trial_finished(name, state)


def run_one_by_one(r: MedianStop, name: str, values: Sequence[float | str],
                   steps: list[int] | None = None) -> Decision | None:
    """Report like a live trial: one log at a time, asking after each; stop at a decision."""
    entries = logs(ACC, values, steps)
    for entry in entries:
        r.observe(name, [entry])
        decision = r.should_stop(name)
        if decision is not None:
            return decision
    return None


# -- settings ------------------------------------------------------------------------------


def test_defaults_are_upstreams() -> None:
    r = rule()
    assert (r.min_trials_required, r.start_step) == (3, 4)


@pytest.mark.parametrize("settings, bad", [
    ({"min_trials_required": "0"}, "min_trials_required"),
    ({"min_trials_required": "-2"}, "min_trials_required"),
    ({"min_trials_required": "three"}, "min_trials_required"),
    ({"min_trials_required": "2.5"}, "min_trials_required"),
    ({"start_step": "0"}, "start_step"),
    ({"start_step": "x"}, "start_step"),
    ({"start_step": "4", "median_of": "5"}, "median_of"),
])
def test_bad_settings_name_the_setting(settings: dict[str, str], bad: str) -> None:
    with pytest.raises(SettingsError) as err:
        MedianStop.validate_settings(settings)
    assert err.value.setting == bad
    assert bad in str(err.value)
    with pytest.raises(SettingsError):
        MedianStop(objective(), settings)


def test_good_settings() -> None:
    MedianStop.validate_settings({"min_trials_required": "1", "start_step": "1"})
    r = MedianStop(objective(), {"min_trials_required": "5", "start_step": "10"})
    assert (r.min_trials_required, r.start_step) == (5, 10)


def test_registry_and_session_validation() -> None:
    assert registry.get("medianstop") is MedianStop
    assert "medianstop" in registry.names()
    with pytest.raises(NotFoundError, match="medianstop"):
        registry.get("meanstop")
    with pytest.raises(ValidationError) as err:
        algorithm_class(EarlyStoppingSpec(algorithm_name="meanstop"))
    assert err.value.errors[0].path == "spec.earlyStopping.algorithmName"
    with pytest.raises(ValidationError):
        algorithm_class(EarlyStoppingSpec(algorithm_name=""))
    with pytest.raises(SettingsError, match="start_step"):
        algorithm_class(EarlyStoppingSpec(algorithm_name="medianstop",
                                          algorithm_settings=[AlgorithmSetting("start_step", "-1")]))
    assert issubclass(algorithm_class(EarlyStoppingSpec(algorithm_name="medianstop")), EarlyStoppingAlgorithm)
    assert EarlyStoppingSession.for_experiment(ExperimentSpec(objective=objective())) is None


def test_objective_metric_is_required() -> None:
    with pytest.raises(ValueError, match="objectiveMetricName"):
        MedianStop(objective(metric=""), {})


# -- the rule on seeded learning curves -----------------------------------------------------


def test_seeded_curves_maximize_exact_stops_and_late_hopeless_trial() -> None:
    rng = random.Random(20240101)
    r = rule("maximize", min_trials_required=3, start_step=4)
    completed = {f"done-{lvl}": saturating(lvl, 12, rng) for lvl in (0.9, 0.85, 0.8, 0.75, 0.7)}
    for name, curve in completed.items():
        complete(r, name, curve)

    strong = saturating(0.95, 12, rng)
    weak = saturating(0.6, 12, rng)
    # Tracks the best completed trial until step 4, then stalls: fine at the first check,
    # hopeless a little later.
    late = saturating(0.9, 4, rng, noise=0.0)
    late += [late[-1] - 0.01 * i for i in range(1, 9)]

    assert run_one_by_one(r, "strong", strong) is None
    d_weak = run_one_by_one(r, "weak", weak)
    d_late = run_one_by_one(r, "late", late)
    assert d_weak is not None and d_weak.step == 4  # the very first check
    assert d_late is not None and d_late.step == 6   # after start_step: still caught
    assert d_late.threshold == pytest.approx(statistics.median(max(c[:6]) for c in completed.values()))
    assert d_late.value == pytest.approx(max(late[:6]))
    assert d_late.completed_trials == 5 and d_late.maximize and "below" in d_late.message

    # The slow obvious oracle agrees step for step.
    refs = [list(enumerate(c, 1)) for c in completed.values()]
    for curve, d in ((strong, None), (weak, d_weak), (late, d_late)):
        expected = naive_stop_step(list(enumerate(curve, 1)), refs, maximize=True, start_step=4, min_trials=3)
        assert expected == (d.step if d else None)

    # Upstream checks only at the start_step-th report, so it never stops "late".
    up = upstream_threshold(list(completed.values()), 4)
    assert not max(late[:4]) < up


def test_seeded_curves_minimize() -> None:
    rng = random.Random(7)
    r = rule("minimize", min_trials_required=3, start_step=3)
    # Losses falling towards a floor; lower is better.
    completed = {f"done-{f}": [f + 2.0 / t + rng.gauss(0, 0.003) for t in range(1, 11)]
                 for f in (0.2, 0.3, 0.4, 0.5)}
    for name, curve in completed.items():
        complete(r, name, curve)
    good = [0.1 + 2.0 / t for t in range(1, 11)]
    bad = [0.8 + 2.0 / t for t in range(1, 11)]
    late = [0.2 + 2.0 / t for t in range(1, 5)] + [0.2 + 2.0 / 4] * 6  # stalls after step 4
    assert run_one_by_one(r, "good", good) is None
    d_bad, d_late = run_one_by_one(r, "bad", bad), run_one_by_one(r, "late", late)
    assert d_bad is not None and d_bad.step == 3
    assert d_late is not None and d_late.step == 6
    assert not d_late.maximize and "above" in d_late.message
    assert d_late.threshold == pytest.approx(statistics.median(min(c[:6]) for c in completed.values()))
    refs = [list(enumerate(c, 1)) for c in completed.values()]
    assert naive_stop_step(list(enumerate(late, 1)), refs, maximize=False, start_step=3, min_trials=3) == 6


def test_median_not_mean_one_outlier() -> None:
    """One diverged completed trial drags upstream's mean far away; the median ignores it."""
    r = rule("minimize", min_trials_required=3, start_step=2)
    completed = [[1.0, 0.35, 0.3], [1.0, 0.37, 0.32], [1.1, 0.39, 0.34], [50.0, 40.0, 30.0]]
    for i, c in enumerate(completed):
        complete(r, f"c{i}", c)
    running = [0.9, 0.6, 0.55]
    d = run_one_by_one(r, "r", running)
    assert d is not None and d.step == 2
    assert d.threshold == pytest.approx(statistics.median([0.35, 0.37, 0.39, 40.0]))  # 0.38
    # Upstream: GREATER than the mean of first-2 averages (~11.0) -> never stopped.
    assert not min(running[:2]) > upstream_threshold(completed, 2)


def test_median_not_mean_maximize_outlier_spares_a_good_trial() -> None:
    """The other direction: a single excellent outlier makes upstream's mean stop a trial
    that is better than most completed ones."""
    r = rule("maximize", min_trials_required=3, start_step=1)
    completed = [[0.50], [0.52], [0.54], [0.99]]
    for i, c in enumerate(completed):
        complete(r, f"c{i}", c)
    assert run_one_by_one(r, "r", [0.535]) is None  # median 0.53
    assert 0.535 < upstream_threshold(completed, 1)  # upstream (LESS than ~0.64) stops it


def test_ties_do_not_stop() -> None:
    r = rule("maximize", min_trials_required=3, start_step=1)
    for i in range(3):
        complete(r, f"c{i}", [0.5])
    assert run_one_by_one(r, "r", [0.5, 0.5]) is None


def test_completed_trials_shorter_than_the_step_use_their_overall_best() -> None:
    r = rule("maximize", min_trials_required=3, start_step=2)
    complete(r, "short-1", [0.2, 0.6])          # stopped after 2 reports: best 0.6
    complete(r, "short-2", [0.3, 0.5], state="EarlyStopped")  # early stopped counts
    complete(r, "long", [0.1, 0.2, 0.3, 0.4, 0.9, 0.95])
    assert r.median_at(2) == pytest.approx(0.5)
    assert r.median_at(6) == pytest.approx(0.6)   # median(0.6, 0.5, 0.95)
    assert r.median_at(100) == pytest.approx(0.6)
    # Medians at steps 2..6: 0.5, 0.5, 0.5, 0.6 (long passes 0.6 at step 5), 0.6.
    d = run_one_by_one(r, "r", [0.1, 0.55, 0.56, 0.57, 0.58, 0.59, 0.7])
    assert d is not None and (d.step, d.value, d.threshold) == (5, 0.58, 0.6)


def test_failed_killed_and_unavailable_trials_do_not_count() -> None:
    r = rule("maximize", min_trials_required=3, start_step=1)
    complete(r, "ok-1", [0.8])
    complete(r, "ok-2", [0.9])
    for i, state in enumerate(("Failed", "Killed", "MetricsUnavailable")):
        complete(r, f"bad-{i}", [0.0], state=state)
    assert r.completed_trials == ["ok-1", "ok-2"]
    assert run_one_by_one(r, "r1", [0.1]) is None  # only 2 references: no decision
    r.trial_finished("r1", "Failed")
    complete(r, "ok-3", [0.7])
    assert r.median_at(1) == pytest.approx(0.8)
    d = run_one_by_one(r, "r2", [0.75])
    assert d is not None and d.completed_trials == 3
    # A completed trial without a numeric objective is not a reference either.
    complete(r, "no-metric", ["unavailable"])
    assert "no-metric" not in r.completed_trials


def test_checks_start_only_when_enough_trials_completed_and_are_not_retroactive() -> None:
    r = rule("maximize", min_trials_required=3, start_step=1)
    complete(r, "c1", [0.9, 0.9, 0.9, 0.9])
    complete(r, "c2", [0.9, 0.9, 0.9, 0.9])
    r.observe("r", logs(ACC, [0.1, 0.1]))
    assert r.should_stop("r") is None          # two references only
    complete(r, "c3", [0.9, 0.9, 0.9, 0.9])
    assert r.should_stop("r") is None          # reports 1-2 are not re-checked
    r.observe("r", logs(ACC, [0.1], steps=[3]))
    d = r.should_stop("r")
    assert d is not None and d.step == 3
    assert r.should_stop("r") == d             # idempotent once fired


def test_batched_reports_check_every_report_in_step_order() -> None:
    """A collector that hands over 5 reports at once gets the same decision as one that
    reports them one by one: the first failing report, not the last one."""
    def build() -> MedianStop:
        r = rule("maximize", min_trials_required=3, start_step=2)
        for i in range(3):
            complete(r, f"c{i}", [0.1, 0.2, 0.3, 0.4, 0.5])
        return r

    values = [0.15, 0.19, 0.9, 0.9, 0.9]  # below the median only at step 2
    one = run_one_by_one(build(), "r", values)
    r = build()
    r.observe("r", logs(ACC, values))
    batch = r.should_stop("r")
    assert one is not None and batch == one and batch.step == 2


def test_explicit_steps_versus_report_order() -> None:
    def build() -> MedianStop:
        r = rule("maximize", min_trials_required=3, start_step=4)
        for i, lvl in enumerate((0.9, 1.0, 1.1)):
            complete(r, f"c{i}", [lvl * t / 10 for t in range(1, 11)], steps=list(range(1, 11)))
        return r

    values = [0.95 * t / 10 for t in (2, 4, 6, 8)]  # reported every other step
    d = run_one_by_one(build(), "explicit", values, steps=[2, 4, 6, 8])
    assert d is not None and d.step == 4 and d.threshold == pytest.approx(0.4)
    # The same values without steps are reports 1..4: compared with earlier, lower medians.
    assert run_one_by_one(build(), "implicit", values) is None


def test_explicit_steps_start_step_in_trial_units_and_mixing() -> None:
    r = rule("minimize", min_trials_required=1, start_step=150)
    complete(r, "c", [1.0, 0.5, 0.25], steps=[100, 200, 300])
    r.observe("r", logs(ACC, [0.9], steps=[100]))
    assert r.should_stop("r") is None  # step 100 < start_step
    r.observe("r", logs(ACC, [0.6]))   # no step after explicit ones: step 101
    assert r.should_stop("r") is None
    r.observe("r", logs(ACC, [0.7], steps=[200]))
    d = r.should_stop("r")
    assert d is not None and d.step == 200 and d.threshold == 0.5 and d.value == 0.6


def test_completed_trial_without_value_at_step_sits_it_out() -> None:
    r = rule("maximize", min_trials_required=2, start_step=1)
    complete(r, "early-1", [0.5], steps=[1])
    complete(r, "early-2", [0.6], steps=[1])
    complete(r, "late-start", [0.9], steps=[10])
    assert r.median_at(1) == pytest.approx(0.55)   # late-start has nothing at step 1
    assert r.median_at(10) == pytest.approx(0.6)


def test_unparsable_and_nan_values_advance_the_step_but_never_win() -> None:
    r = rule("maximize", min_trials_required=1, start_step=3)
    complete(r, "c", [0.1, 0.2, 0.3])
    r.observe("r", logs(ACC, ["unavailable", "nan", "inf"]))
    assert r.should_stop("r") is None            # no numeric value yet
    r.observe("r", logs(ACC, [0.25]))           # step 4: median 0.3 (overall best of c)
    d = r.should_stop("r")
    assert d is not None and d.step == 4 and d.value == 0.25


def test_late_logs_of_a_completed_trial_update_the_reference() -> None:
    r = rule("maximize", min_trials_required=1, start_step=1)
    r.trial_finished("c", "Succeeded")
    assert r.median_at(1) is None
    r.observe("c", logs(ACC, [0.5]))
    assert r.median_at(1) == 0.5
    r.observe("c", logs(ACC, [0.7], steps=[1]))
    assert r.median_at(1) == 0.7


def test_trial_finished_rejects_non_final_states() -> None:
    with pytest.raises(ValueError, match="Running"):
        rule().trial_finished("t", "Running")


def test_rules_for_upstreams_sidecar() -> None:
    for kind, comparison, values in (("maximize", "less", (0.3, 0.5, 0.9)),
                                     ("minimize", "greater", (0.9, 0.5, 0.3))):
        r = rule(kind, min_trials_required=3, start_step=2)
        assert r.rules() == []
        for i, v in enumerate(values):
            complete(r, f"c{i}", [v, v])
        (out,) = r.rules()
        assert (out.name, out.comparison, out.start_step) == (ACC, comparison, 2)
        assert float(out.value) == 0.5


def test_curve_out_of_order_steps_keep_prefix_bests() -> None:
    c = _Curve()
    for step, score in ((1, 0.1), (3, 0.3), (5, 0.2)):
        c.add(step, score)
    c.add(2, 0.4)   # a resumed run re-reporting an earlier step
    assert c.steps == [1, 2, 3, 5] and c.best == [0.1, 0.4, 0.4, 0.4]
    c.add(1, 0.5)
    assert c.best == [0.5, 0.5, 0.5, 0.5]
    assert c.best_at(0) is None and c.best_at(4) == 0.5 and c.best_at(99) == 0.5


# -- agreement with the naive oracle and cost -----------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_random_curves_agree_with_naive_oracle(seed: int) -> None:
    rng = random.Random(seed)
    maximize = seed % 2 == 0
    explicit = seed % 3 == 0
    start_step, min_trials = rng.randint(1, 5), rng.randint(1, 4)
    r = rule("maximize" if maximize else "minimize", min_trials_required=min_trials, start_step=start_step)
    completed: list[list[tuple[int, float]]] = []
    for i in range(rng.randint(0, 8)):
        n = rng.randint(1, 12)
        steps = sorted(rng.sample(range(1, 30), n)) if explicit else list(range(1, n + 1))
        values = [rng.uniform(0, 1) for _ in steps]
        complete(r, f"c{i}", values, steps if explicit else None,
                 state=rng.choice(["Succeeded", "EarlyStopped"]))
        completed.append(list(zip(steps, values)))
    for j in range(10):
        n = rng.randint(1, 15)
        steps = sorted(rng.sample(range(1, 30), n)) if explicit else list(range(1, n + 1))
        values = [rng.uniform(0, 1) for _ in steps]
        expected = naive_stop_step(list(zip(steps, values)), completed, maximize=maximize,
                                   start_step=start_step, min_trials=min_trials)
        # Random batching: the decision must not depend on how reports were grouped.
        entries = logs(ACC, values, steps if explicit else None, other=None)
        decision, k = None, 0
        while k < len(entries) and decision is None:
            size = rng.randint(1, 4)
            r.observe(f"r{j}", entries[k:k + size])
            k += size
            decision = r.should_stop(f"r{j}")
        assert (decision.step if decision else None) == expected, (seed, j)


def test_checks_do_not_rescan_observations(monkeypatch: pytest.MonkeyPatch) -> None:
    """300 completed trials x 100 steps, 100 running trials x 100 reports: each median is
    computed once per step, so completed curves are read steps x completed times, not
    checks x completed."""
    calls = 0
    original = _Curve.best_at

    def counting(self: _Curve, step: int) -> float | None:
        nonlocal calls
        calls += 1
        return original(self, step)

    rng = random.Random(3)
    r = rule("maximize", min_trials_required=3, start_step=1)
    for i in range(300):
        complete(r, f"c{i}", [0.5 * rng.random() for _ in range(100)])
    monkeypatch.setattr(_Curve, "best_at", counting)
    checks = 0
    for j in range(100):
        for entry in logs(ACC, [0.99] * 100, other=None):  # never stopped: every report checked
            r.observe(f"r{j}", [entry])
            assert r.should_stop(f"r{j}") is None
            checks += 1
    assert checks == 10_000
    assert calls == 100 * 300
