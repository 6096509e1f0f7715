"""tune() with objectives that return no finite number: the trial says what it returned,
and a result without any value has no best (it raises, as Optuna's study.best_trial does)."""

from __future__ import annotations

import pytest

import katib
from katib import search
from tests.sdk import objectives as obj


def run(values: list[str]) -> katib.TuneResult:
    return katib.tune(obj.returns_as_named, {"v": search.categorical(values)}, algorithm_name="grid",
                      objective_metric_name="loss", objective_type="minimize",
                      max_trial_count=len(values), parallel_trial_count=2, progress=False)


def test_each_bad_return_value_is_named_in_its_trial() -> None:
    result = run(["nan", "-inf", "half", "str", "none"])
    by_value = {t.params["v"]: t for t in result.trials}
    assert by_value["half"].state == "Succeeded" and result.best_trial.name == by_value["half"].name
    assert result.best_value == 0.5
    for value, said in (("nan", "the objective returned nan;"), ("-inf", "the objective returned -inf;"),
                        ("str", "the objective returned the str '0.3';")):
        trial = by_value[value]
        assert trial.state == "Failed", value
        assert said in (trial.error or "") and "return a finite number" in (trial.error or "")
    none = by_value["none"]
    assert none.state == "MetricsUnavailable"
    assert "no value for 'loss'" in (none.error or "") and "the objective returned None" in (none.error or "")


def test_a_result_without_any_value_has_no_best() -> None:
    result = run(["nan", "none"])
    assert result.best_trial_name is None
    for attribute in ("best_trial", "best_parameters", "best_metrics", "best_value"):
        with pytest.raises(ValueError, match="reported a finite value of 'loss'.*there is no best trial"):
            getattr(result, attribute)
    assert "there is no best trial" in result.summary() and "best_parameters={}" in repr(result)
