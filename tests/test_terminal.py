"""Progress lines on a real-sized terminal, and numbers people can read.

The redraws are played on pyte's terminal emulator: what a user sees is the screen, so a
line that wraps (and leaves a stale row behind on every redraw) shows up there.
"""

from __future__ import annotations

import io
import re
from typing import Any

import pyte
import pytest

from katib.api.model import (
    Experiment,
    ExperimentSpec,
    ExperimentStatus,
    Metric,
    Observation,
    ObjectiveSpec,
    OptimalTrial,
    ParameterAssignment,
)
from katib.display import Progress
from katib.sdk.progress import TuneProgress
from katib.terminal import number


class Terminal(io.StringIO):
    """What a process writes to a terminal (isatty), played on an emulated screen."""

    def isatty(self) -> bool:
        return True

    def screen(self, columns: int, rows: int = 60) -> list[str]:
        screen = pyte.Screen(columns, rows)
        # The tty turns "\n" into "\r\n" (ONLCR) on the way to the screen.
        pyte.Stream(screen).feed(self.getvalue().replace("\n", "\r\n"))
        return [row.rstrip() for row in screen.display]


def _written_lines(text: str) -> list[str]:
    """Every line as drawn: split at the redraws and newlines, escape sequences removed."""
    return [line for line in re.split(r"[\r\n]", re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)) if line]


def _experiment(name: str = "resnet50-imagenet-learning-rate-sweep", **counts: Any) -> Experiment:
    exp = Experiment(spec=ExperimentSpec(objective=ObjectiveSpec(
        type="maximize", objective_metric_name="validation_top5_accuracy_after_warmup")))
    exp.metadata.name = name
    exp.status = ExperimentStatus(**counts)
    return exp


def _with_best(exp: Experiment, value: str) -> Experiment:
    assert exp.status is not None
    exp.status.current_optimal_trial = OptimalTrial(
        best_trial_name=f"{exp.name}-x7k2m9pq",
        parameter_assignments=[ParameterAssignment("learning_rate", "0.000123456789012"),
                               ParameterAssignment("optimizer", "adamw-with-decoupled-weight-decay"),
                               ParameterAssignment("batch_size", "256")],
        observation=Observation([Metric("validation_top5_accuracy_after_warmup", value, value, value),
                                 Metric("loss", "0.1234567890123", "0.1234567890123", "0.1234567890123")]))
    return exp


# A run as tune() sees it: counts grow, a long metric name appears, trials fail in between
# (their messages print above the bar), and the line gets shorter again at the end.
STATES: list[dict[str, Any]] = [
    dict(trials_running=8),
    dict(trials_running=8, trials_succeeded=3, trials_failed=1, failed_trial_list=["t-1"]),
    dict(trials_running=8, trials_succeeded=140, trials_failed=12, trials_early_stopped=310,
         trial_metrics_unavailable=7, trials_killed=2, failed_trial_list=["t-1", "t-2"]),
    dict(trials_running=8, trials_succeeded=150, trials_failed=12, trials_early_stopped=320,
         trial_metrics_unavailable=7, trials_killed=2, failed_trial_list=["t-1", "t-2"]),
    dict(trials_running=0, trials_succeeded=151, failed_trial_list=["t-1", "t-2"]),
]


@pytest.mark.parametrize("columns", [80, 40])
def test_tune_progress_redraws_in_place_within_the_terminal_width(columns: int,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))
    out = Terminal()
    bar = TuneProgress(1000, out=out, tty=True, tty_interval=0)
    exp = None
    for i, counts in enumerate(STATES):
        exp = _experiment(**counts)
        if i >= 2:
            _with_best(exp, "0.987654321")
        bar(exp, [])
        assert all(len(line) <= columns for line in _written_lines(out.getvalue()))
        rows = [r for r in out.screen(columns) if r]
        # On screen: each failure (printed once, above the bar) and one bar, nothing stale.
        failures = [r for r in rows if r.startswith("Trial t-") or r == "  no message"]
        assert rows[len(failures):] == [_written_lines(out.getvalue())[-1]], rows
        assert "trials" in rows[-1]
    assert exp is not None
    bar.close(exp)
    rows = [r for r in out.screen(columns) if r]
    assert rows == ["Trial t-1 failed:", "  no message", "Trial t-2 failed:", "  no message",
                    _written_lines(out.getvalue())[-1]]
    # The value shows whole; where the line is narrow, the metric's name is what gets cut.
    assert "151/1000 trials | best " in rows[-1] and rows[-1].endswith("=0.987654")
    if columns == 40:
        assert "best vali...=0.987654" in rows[-1]


def test_tune_progress_keeps_what_matters_when_narrow(monkeypatch: pytest.MonkeyPatch) -> None:
    exp = _with_best(_experiment(**STATES[3]), "0.987654321")
    wide, narrow = Terminal(), Terminal()
    monkeypatch.setenv("COLUMNS", "200")
    TuneProgress(1000, out=wide, tty=True, tty_interval=0)(exp, [])
    monkeypatch.setenv("COLUMNS", "40")
    TuneProgress(1000, out=narrow, tty=True, tty_interval=0)(exp, [])
    (full,) = {line for line in _written_lines(wide.getvalue()) if "trials" in line}
    (short,) = {line for line in _written_lines(narrow.getvalue()) if "trials" in line}
    assert "[" in full and "12 failed" in full and "best validation_top5_accuracy_after_warmup=0.987654" in full
    # 39 columns: the bar, the elapsed time and the counts go first; the trial count stays,
    # and the best value shows whole, with as much of the metric's name as fits.
    assert short == "491/1000 trials | best vali...=0.987654"


def test_katib_run_live_lines_fit_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    for columns in (80, 40):
        monkeypatch.setenv("COLUMNS", str(columns))
        out = Terminal()
        progress = Progress(out=out)
        for i, counts in enumerate(STATES):
            progress(_with_best(_experiment("sweep", **counts), f"0.9{i}"), [])
        lines = out.getvalue().splitlines()
        assert len(lines) == len(STATES)
        assert all(len(line) < columns for line in lines), lines
        # Each line takes one row: none wrapped onto the next.
        assert [r for r in out.screen(columns) if r] == lines
        assert lines[-1][10:].startswith(" sweep: 0 running, 151 suc")
        if columns == 80:  # the best value is kept whole, its metric's name cut; its parameters go
            assert " succeeded, 12 failed" in lines[-2] and lines[-2].endswith("| best: validatio...=0.93")
            assert "learning_rate" not in "".join(lines)


def test_katib_run_lines_to_a_file_are_kept_whole() -> None:
    out = io.StringIO()  # a log file or a pipe: no terminal width to fit
    Progress(out=out)(_with_best(_experiment(**STATES[1]), "0.95"), [])
    line = out.getvalue().rstrip("\n")
    assert line.endswith("| learning_rate=0.000123457, optimizer=adamw-with-decoupled-weight-decay, batch_size=256")


@pytest.mark.parametrize("value, shown", [
    ("0.1234567890123", "0.123457"),
    (0.1234567890123, "0.123457"),
    ("1234567", "1234567"),  # an int stays an int, every digit
    (1234567, "1234567"),
    ("-3", "-3"),
    ("3.0", "3.0"),  # a float does not turn into an int...
    ("0.99999999", "1.00000"),  # ... not even when rounded
    ("100000.0", "100000.0"),
    ("1234567.5", "1.23457e+06"),
    ("1e-07", "1e-07"),
    ("adam", "adam"),  # categorical values and markers as they are
    ("unavailable", "unavailable"),
    ("nan", "nan"),
    (None, ""),
])
def test_numbers_print_with_six_significant_digits(value: object, shown: str) -> None:
    assert number(value) == shown


def test_tune_progress_best_value_is_not_shown_as_an_int() -> None:
    out = Terminal()
    exp = _with_best(_experiment(trials_succeeded=1), "0.99999999")
    exp.spec.objective = ObjectiveSpec(type="maximize", objective_metric_name="acc")
    exp.status.current_optimal_trial.observation.metrics[0].name = "acc"  # type: ignore[union-attr]
    TuneProgress(10, out=out, tty=True, tty_interval=0, width=120)(exp, [])
    assert "best acc=1.00000 " in out.getvalue()



def test_wide_characters_count_as_two_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    out = Terminal()
    exp = _with_best(_experiment("sweep", trials_succeeded=1), "0.9")
    exp.spec.objective = ObjectiveSpec(type="maximize", objective_metric_name="精度の検証データセット")
    exp.status.current_optimal_trial.observation.metrics[0].name = "精度の検証データセット"  # type: ignore[union-attr]
    Progress(out=out)(exp, [])
    (line,) = out.getvalue().splitlines()
    assert line.endswith("| best: 精...=0.9")
    # 59 columns on screen, though fewer characters: one row, nothing wrapped.
    assert len(line) < 59 and [r for r in out.screen(60) if r] == [line]
