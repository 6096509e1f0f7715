"""`katib run` with values that are not finite numbers: refused, said, never the best."""

from __future__ import annotations

from pathlib import Path

import pytest

from katib.cli import main
from katib.store import Store
from tests.backends.localexp import experiment, write

PRINT = "import sys; print('epoch 1 loss=' + sys.argv[1])"


def values_experiment(name: str, values: list[str]) -> dict[str, object]:
    return experiment(
        name, algorithm="grid", max_trials=len(values), parallel=1,
        parameters=[{"name": "v", "parameterType": "categorical", "feasibleSpace": {"list": values}}],
        trial_parameters=[{"name": "v", "reference": "v"}],
        command=["python3", "-c", PRINT, "${trialParameters.v}"],
        objective={"type": "minimize", "objectiveMetricName": "loss"})


def test_non_finite_values_never_win_and_say_why(tmp_path: Path) -> None:
    values = ["-1e400", "0.5", "-inf", "nan", "inf"]
    assert main(["run", str(write(tmp_path, values_experiment("nonfinite", values))), "-q"]) == 0
    store = Store()
    by_value = {t.spec.assignments["v"]: t for t in store.list_trials("nonfinite")}
    assert by_value["0.5"].status.state == "Succeeded"
    for bad in ("-1e400", "-inf", "nan", "inf"):
        t = by_value[bad]
        assert t.status.state == "MetricsUnavailable"
        message = t.status.conditions[-1].message or ""
        assert f"objective 'loss' reported only values that are not finite numbers: {bad};" in message
        # Nothing recorded: not "-" for -inf (as upstream's filter captures), not inf or nan.
        assert [r.value for r in store.get_observations(t.name, "loss") if r.value != "unavailable"] == []
    exp = store.get_experiment("nonfinite")
    assert exp.status is not None and exp.status.current_optimal_trial is not None
    assert exp.status.current_optimal_trial.best_trial_name == by_value["0.5"].name


def test_an_experiment_without_any_value_says_so_at_the_end(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(write(tmp_path, values_experiment("all-nan", ["nan", "-inf"]))), "-q"]) == 0
    out = capsys.readouterr().out
    assert "No trial reported a finite value of 'loss': there is no best trial." in out
    exp = Store().get_experiment("all-nan")
    # As upstream: the budget is used up (Succeeded), and there is no optimal trial.
    assert exp.status is not None and [c.type for c in exp.status.conditions if c.status == "True"][-1] == "Succeeded"
    opt = exp.status.current_optimal_trial
    assert opt is None or not opt.best_trial_name
    # describe says there will be none, not that one has not come "yet".
    assert main(["describe", "experiment", "all-nan"]) == 0
    described = capsys.readouterr().out
    assert "none: no trial reported a finite value of 'loss'" in described
    assert "yet" not in described
