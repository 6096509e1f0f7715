"""The metric-value rule (katib.metrics.values) in every collector, the fold and best trial,
and user filters on RE2."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from katib.api.metricsformat import ENGINE
from katib.api.model import Metric, Observation, ObjectiveSpec, Trial, TrialStatus
from katib.api.observation import UNAVAILABLE, MetricLog
from katib.metrics.collector import LineCollector
from katib.metrics.parsers import LineParser, compile_filters
from katib.metrics.strategies import best_trial, fold, objective_value
from katib.metrics.values import unavailable_message

T0 = datetime(2024, 5, 6, tzinfo=timezone.utc)


def collect(text: str, names: list[str] | None = None, fmt: str = "TEXT",
            filters: list[str] | None = None) -> tuple[list[tuple[str, str]], dict[str, list[str]]]:
    c = LineCollector(names or ["loss"], fmt, filters)
    rows = c.feed(text) + c.close()
    return [(r.metric_name, r.value) for r in rows], c.refused


@pytest.mark.parametrize("line, said", [
    ("loss=-1e400", "-1e400"),  # overflows to -inf: was the best of every minimization
    ("loss=1e400", "1e400"),
    ("loss=-inf", "-inf"),  # was stored as the string "-"
    ("loss=inf", "inf"),  # was dropped without a word
    ("loss=nan", "nan"),
    ("loss=NaN", "NaN"),
    ("loss = -Infinity", "-Infinity"),
])
def test_non_finite_values_are_refused_and_said_not_recorded(line: str, said: str) -> None:
    rows, refused = collect(f"epoch 1 {line}\nepoch 2 loss=0.5\n")
    assert rows == [("loss", "0.5")]
    assert refused == {"loss": [said]}


def test_a_sign_without_digits_is_never_a_value() -> None:
    rows, refused = collect("loss=-abc\n")
    assert rows == [] and refused == {"loss": ["-abc"]}


def test_words_that_are_no_numbers_stay_ignored_by_the_default_filter() -> None:
    rows, refused = collect("loss=information loss=0.25\nname=value\n")
    assert rows == [("loss", "0.25")] and refused == {}


def test_custom_filters_refuse_non_finite_values_but_keep_string_metrics() -> None:
    rows, refused = collect("Genotype=nan\nGenotype=Genotype(normal=[1])\n", ["Genotype"],
                            filters=[r"(Genotype)=(.*)"])
    assert rows == [("Genotype", "Genotype(normal=[1])")] and refused == {"Genotype": ["nan"]}


def test_json_refuses_nan_infinity_and_overflow() -> None:
    rows, refused = collect('{"loss": NaN}\n{"loss": -Infinity}\n{"loss": 1e400}\n{"loss": "inf"}\n'
                            '{"loss": 0.5}\n', fmt="JSON")
    assert rows == [("loss", "0.5")] and refused == {"loss": ["nan", "-inf", "inf"]}


def test_a_refusal_is_logged_once_per_metric_with_its_line(caplog: pytest.LogCaptureFixture) -> None:
    collect("step=1 loss=nan\nstep=2 loss=nan\n")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "'nan' is not a finite number" in warnings[0] and "step=1 loss=nan" in warnings[0]


def test_only_non_finite_values_give_a_message_that_names_them() -> None:
    _, refused = collect("loss=nan\nloss=inf\n")
    assert unavailable_message("loss", refused) == (
        "Metrics are not available: objective 'loss' reported only values that are not finite numbers: "
        "nan, inf; a metric value must be a finite number")
    assert unavailable_message("loss", {}) == "Metrics are not available: the trial reported no value for 'loss'"


def row(value: str, seconds: int) -> MetricLog:
    return MetricLog("loss", value, T0 + timedelta(seconds=seconds))


def test_fold_skips_non_finite_rows_an_older_store_holds() -> None:
    obs = fold([row("0.5", 0), row("-inf", 1), row("inf", 2), row("nan", 3)], ["loss"])
    m = obs.metrics[0]
    assert (m.min, m.max, m.latest) == ("0.5", "0.5", "0.5")
    only_bad = fold([row("nan", 0), row("-1e400", 1)], ["loss"]).metrics[0]
    assert (only_bad.min, only_bad.max, only_bad.latest) == (UNAVAILABLE, UNAVAILABLE, UNAVAILABLE)


def trial(name: str, value: str) -> Trial:
    t = Trial()
    t.metadata.name = name
    t.status = TrialStatus(observation=Observation([Metric("loss", value, value, value)]))
    return t


@pytest.mark.parametrize("bad", ["-inf", "-1e400", "nan", "inf"])
def test_a_non_finite_observation_is_never_the_best(bad: str) -> None:
    objective = ObjectiveSpec(type="minimize", objective_metric_name="loss")
    best = best_trial([trial("a", "0.5"), trial("b", bad), trial("c", "0.7")], objective)
    assert best is not None and best.trial.name == "a"
    assert best_trial([trial("b", bad)], objective) is None
    assert objective_value(trial("b", bad).status.observation, objective) is None


# -- user filters on RE2 ------------------------------------------------------------------------
def test_user_filters_run_on_re2() -> None:
    (compiled,) = compile_filters([r"([\w-]+)=([0-9.]+)"])
    assert type(compiled).__module__.split(".")[0] == ENGINE == "re2"
    assert not isinstance(compiled, re.Pattern)


@pytest.mark.parametrize("pattern", [r"([[:alpha:]]+)=([0-9.]+)", r"(\pL+)=([0-9.]+)"])
def test_posix_and_unicode_classes_work_as_in_go(pattern: str) -> None:
    # Python's re collects nothing with [[:alpha:]] and refuses \pL; Go's RE2 accepts both.
    parser = LineParser(["loss", "acc"], filters=[pattern])
    parsed = parser.parse("loss=0.25 acc=0.5", T0)
    assert parsed is not None and parsed.values == [("loss", "0.25"), ("acc", "0.5")]


@pytest.mark.timeout(60)
def test_a_backtracking_filter_on_a_long_line_finishes() -> None:
    # Under Python's re this takes 5.6 s at 25 characters, about 4x more per 2 characters:
    # a 10,000-character line would never finish. RE2 is linear.
    parser = LineParser(["loss"], filters=[r"((?:\w+)+)=([0-9.]+)"])
    assert parser.parse("loss" + "a" * 10_000 + "!", T0) is None
    parsed = parser.parse("a" * 10_000 + " loss=0.5", T0)
    assert parsed is not None and parsed.values == [("loss", "0.5")]


def test_syntax_re2_lacks_is_refused_naming_the_filter() -> None:
    with pytest.raises(ValueError, match=r"metricsFormat\[0\]: invalid filter .*RE2"):
        compile_filters([r"(\w+)=(\d+)(?=\s)"])  # a lookahead: Python has it, RE2 and Go do not


def test_nan_and_inf_scalars_in_event_files_are_refused(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tests.metrics.test_tfevent import event, scalar, write

    from katib.metrics.tfevent import EventDirectoryReader

    write(tmp_path, event(1, scalar("loss", float("nan"))), event(2, scalar("loss", float("-inf"))),
          event(3, scalar("loss", 0.5)))
    reader = EventDirectoryReader(tmp_path, ["loss"])
    assert [(r.metric_name, r.value, r.step) for r in reader.poll()] == [("loss", "0.5", 3)]
    assert reader.refused == {"loss": ["nan", "-inf"]}
