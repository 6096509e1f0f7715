"""katib.tune() on the local backend, end to end: worker processes, the real store, the CLI."""

from __future__ import annotations

import re
from typing import Any, Callable

import pytest

import katib
from katib import search
from katib.cli import main as cli
from katib.sdk.client import KatibClient
from tests.sdk import objectives as obj

X = {"x": search.double(0, 1)}


def run(fn: Callable[..., Any], parameters: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    kwargs.setdefault("max_trial_count", 3)
    kwargs.setdefault("parallel_trial_count", 2)
    kwargs.setdefault("progress", False)
    return katib.tune(fn, parameters or X, **kwargs)


def test_every_helper_reaches_the_objective_typed() -> None:
    parameters = {
        "lr": search.double(0.01, 0.1), "log_lr": search.double(1e-4, 1e-1, distribution="logUniform"),
        "normal": search.double(0, 1, distribution="normal"),
        "log_normal": search.double(0.1, 10, distribution="logNormal"),
        "stepped": search.double(0, 1, step=0.25), "layers": search.int(1, 5, step=2),
        "log_units": search.int(1, 1024, distribution="logUniform"), "batch": search.discrete([16, 32, 64]),
        "ratio": search.discrete([0.1, 0.2]), "optimizer": search.categorical(["adam", "sgd"]),
        "flag": search.categorical([True, False]), "mixed": search.categorical([1, "two"]),
        "fixed": {"epochs": 3},  # not a search helper: passed through as given
    }
    result = run(obj.check_types, parameters, max_trial_count=6, objective_metric_name="lr")
    assert [t.state for t in result.trials] == ["Succeeded"] * 6, [t.error for t in result.trials]
    for t in result.trials:  # the result decodes the same way
        assert isinstance(t.params["layers"], int) and isinstance(t.params["flag"], bool)
        assert isinstance(t.params["batch"], int) and isinstance(t.params["ratio"], float)
        assert t.metrics["lr"] == pytest.approx(t.params["lr"])
    assert set(result.best_parameters) == set(parameters) - {"fixed"}


@pytest.mark.parametrize("fn", [obj.returns_float, obj.returns_dict, obj.prints_lines, obj.reports_steps],
                         ids=["return-float", "return-dict", "print", "report_metrics"])
def test_each_way_of_reporting_metrics(fn: Callable[..., Any]) -> None:
    result = run(fn, objective_metric_name="loss", objective_type="minimize")
    assert [t.state for t in result.trials] == ["Succeeded"] * 3
    for t in result.trials:
        assert t.metrics["loss"] == pytest.approx(obj.loss_of(t.params["x"]), abs=1e-6)
    best = min(result.trials, key=lambda t: t.metrics["loss"])
    assert result.best_trial_name == best.name and result.best_parameters == best.params
    if fn is obj.reports_steps:
        rows = KatibClient(backend="local").get_trial_metrics(best.name)
        assert [r.step for r in rows if r.metric_name == "loss"] == [1, 2, 3]


def test_push_collector_writes_reports_and_the_return_value_to_the_store() -> None:
    result = run(obj.reports_steps, objective_metric_name="loss", objective_type="minimize",
                 metrics_collector_config={"kind": "Push"}, max_trial_count=2)
    assert [t.state for t in result.trials] == ["Succeeded"] * 2
    for t in result.trials:
        assert t.metrics["loss"] == pytest.approx(obj.loss_of(t.params["x"]), abs=1e-6)
    result = run(obj.returns_float, objective_metric_name="loss", metrics_collector_config={"kind": "Push"},
                 max_trial_count=1, parallel_trial_count=1)
    assert result.trials[0].metrics["loss"] == pytest.approx(obj.loss_of(result.trials[0].params["x"]))


def test_lambda_and_closure_travel_by_value() -> None:
    offset = 0.25
    result = run(lambda p: p["x"] + offset, max_trial_count=2)
    for t in result.trials:
        assert t.metrics["objective"] == pytest.approx(t.params["x"] + offset)


def test_an_exception_fails_only_its_trial_and_shows_the_traceback(capfd: pytest.CaptureFixture[str]) -> None:
    result = run(obj.fails_on_bad, {"x": search.categorical(["good", "bad", "fine"])}, algorithm_name="grid",
                 max_trial_count=3, progress=True, name="raises")
    assert sorted(t.state for t in result.trials) == ["Failed", "Succeeded", "Succeeded"]
    assert result.state == "Succeeded"
    (failed,) = result.failed_trials
    assert failed.params == {"x": "bad"}
    assert failed.error is not None and failed.error.startswith("Traceback (most recent call last):")
    assert "in fails_on_bad" in failed.error and failed.error.endswith("ValueError: bad value 'bad'")
    assert "katib/sdk" not in failed.error  # the machinery's frames are hidden
    # the trial's condition (katib describe) carries the traceback too, not only its last lines
    trial = KatibClient(backend="local").get_trial(failed.name)
    message = next(c.message for c in trial.status.conditions if c.type == "Failed")
    assert "in fails_on_bad" in message and "ValueError: bad value 'bad'" in message
    err = capfd.readouterr().err
    assert f"Trial {failed.name} failed:" in err and "ValueError: bad value 'bad'" in err


def test_a_worker_that_dies_fails_its_trial_and_the_next_trial_gets_a_fresh_worker() -> None:
    result = run(obj.crashes_on_bad, {"x": search.categorical(["bad", "good", "fine"])}, algorithm_name="grid",
                 max_trial_count=3, parallel_trial_count=1)
    assert [t.state for t in result.trials] == ["Failed", "Succeeded", "Succeeded"]
    assert "without an exit status" in (result.trials[0].error or "")


def test_early_stopping_stops_a_hopeless_trial() -> None:
    result = run(obj.slow_curve, {"x": search.categorical(["good", "fine", "bad"])}, algorithm_name="grid",
                 objective_metric_name="loss", objective_type="minimize", max_trial_count=3,
                 parallel_trial_count=1, name="stops-early",
                 early_stopping={"algorithm_name": "medianstop",
                                 "algorithm_settings": {"min_trials_required": 2, "start_step": 2}})
    states = {t.params["x"]: t.state for t in result.trials}
    assert states == {"good": "Succeeded", "fine": "Succeeded", "bad": "EarlyStopped"}
    bad = next(t for t in result.trials if t.params["x"] == "bad")
    steps = [r.step for r in KatibClient(backend="local").get_trial_metrics(bad.name)]
    assert 2 <= len(steps) < 10  # stopped at the rule's first chance, not after its 10 reports


def test_trials_run_in_parallel_on_reused_workers() -> None:
    result = run(obj.sleeps, max_trial_count=4, parallel_trial_count=2, name="parallel")
    client = KatibClient(backend="local")
    spans = []
    for t in result.trials:
        line = next(line for line in client.get_job_logs("parallel", t.name) if line.startswith("pid"))
        pid, start, end = re.match(r"pid (\d+) from ([\d.]+) to ([\d.]+)", line).groups()  # type: ignore[union-attr]
        spans.append((int(pid), float(start), float(end)))
    overlapping = [(a, b) for a in spans for b in spans if a < b and a[1] < b[2] and b[1] < a[2]]
    assert overlapping, spans  # two at a time
    assert all(sum(1 for s in spans if s[1] <= p[1] < s[2]) <= 2 for p in spans)  # never three
    assert len({s[0] for s in spans}) == 2  # two warm workers ran all four trials


def test_result_object_cli_and_resume(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(obj.returns_dict, objective_metric_name="loss", additional_metric_names=["accuracy"],
                 objective_type="minimize", name="shown", env_per_trial={"CUSTOM": "yes"})
    assert result.experiment_name == "shown" and result.state == "Succeeded"
    assert result.reason == "ExperimentMaxTrialsReached" and len(result.trials) == 3
    assert set(result.best_metrics) == {"loss", "accuracy"} and result.best_value == result.best_metrics["loss"]
    assert "experiment_name='shown'" in repr(result) and "best_parameters={'x': " in repr(result)
    try:
        import pandas  # noqa: F401
    except ImportError:
        assert result.dataframe is None
    else:
        frame = result.to_dataframe()
        assert list(frame.columns) == ["trial", "state", "x", "loss", "accuracy"] and len(frame) == 3
    capsys.readouterr()
    assert cli(["get", "experiments"]) == 0
    assert re.search(r"^shown\s+default\s+Succeeded\s+random\s+3/3\s+loss=", capsys.readouterr().out, re.M)
    assert cli(["describe", "experiment", "shown"]) == 0
    out = capsys.readouterr().out
    assert "Status:       Succeeded" in out and all(t.name in out for t in result.trials)
    # the same call again resumes the stored experiment: it is complete, so nothing runs
    again = run(obj.returns_dict, objective_metric_name="loss", additional_metric_names=["accuracy"],
                objective_type="minimize", name="shown", env_per_trial={"CUSTOM": "yes"})
    assert [t.name for t in again.trials] == [t.name for t in result.trials]


def test_bad_arguments_are_refused_before_anything_runs() -> None:
    with pytest.raises(ValueError, match="parameters: nothing to search"):
        katib.tune(obj.returns_float, {"x": 1})
    with pytest.raises(ValueError, match="backend must be one of"):
        katib.tune(obj.returns_float, X, backend="cloud")
    with pytest.raises(ValueError, match="max_trial_count must be a whole number"):
        katib.tune(obj.returns_float, X, max_trial_count=0)
    with pytest.raises(ValueError, match="spec.algorithm.algorithmName"):
        katib.tune(obj.returns_float, X, algorithm_name="nope", max_trial_count=1)
    with pytest.raises(ValueError, match="objective_type"):
        katib.tune(obj.returns_float, X, objective_type="up", max_trial_count=1)
    for goal in ("high", float("nan"), float("inf"), True, [1]):
        with pytest.raises(ValueError, match=r"objective_goal must be a finite number .*got"):
            katib.tune(obj.returns_float, X, objective_goal=goal, max_trial_count=1)


def test_ctrl_c_stops_the_trials_and_the_same_call_resumes(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    import os
    import signal
    import threading
    import time

    def interrupt_once_running() -> None:
        client = KatibClient(backend="local")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                states = [t.status.state for t in client.list_trials("interrupted")]
            except Exception:  # noqa: BLE001 - the store or experiment may not exist yet
                states = []
            if states.count("Running") == 2:
                break  # tune() installed its handler before it started any trial
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=interrupt_once_running)
    thread.start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run(obj.sleeps_long_unless_released, max_trial_count=2, parallel_trial_count=2, name="interrupted")
    thread.join()
    assert time.monotonic() - started < 30  # the 60 s trials were stopped, not waited for
    client = KatibClient(backend="local")
    stopped = client.list_trials("interrupted")
    assert [t.status.state for t in stopped] == ["Killed", "Killed"]
    # Interrupted, not still shown Running, and not completed either.
    assert not client.is_experiment_running("interrupted")
    assert not client.is_experiment_succeeded("interrupted") and not client.is_experiment_failed("interrupted")
    capsys.readouterr()
    assert cli(["get", "experiments"]) == 0
    assert re.search(r"^interrupted\s+default\s+Interrupted\s", capsys.readouterr().out, re.M)
    # The experiment stays resumable: the same arguments run the interrupted trials again
    # (released, the same function now returns at once).
    monkeypatch.setenv("KATIB_TEST_RELEASED", "1")
    result = run(obj.sleeps_long_unless_released, max_trial_count=2, parallel_trial_count=2, name="interrupted")
    assert [t.name for t in result.trials] == [t.name for t in stopped]
    assert [t.state for t in result.trials] == ["Succeeded", "Succeeded"]


def test_a_trial_past_trial_active_deadline_seconds_is_stopped_and_failed() -> None:
    result = run(obj.sleeps_long, max_trial_count=1, parallel_trial_count=1, name="deadline",
                 trial_active_deadline_seconds=1)
    [trial] = KatibClient(backend="local").list_trials("deadline")
    assert trial.status.state == "Failed"
    failed = next(c for c in trial.status.conditions if c.type == "Failed")
    assert failed.reason == "DeadlineExceeded" and failed.message == "Trial exceeded its active deadline of 1 s"
    assert [t.state for t in result.trials] == ["Failed"]


def test_same_name_with_another_definition_is_refused_naming_what_differs() -> None:
    first = run(obj.returns_float, name="defined", objective_metric_name="loss", objective_type="minimize",
                max_trial_count=2)
    assert len(first.trials) == 2
    with pytest.raises(ValueError, match=r"different objective function .*'returns_float_too'.* name="):
        run(obj.returns_float_too, name="defined", objective_metric_name="loss", objective_type="minimize",
            max_trial_count=2)
    with pytest.raises(ValueError, match=r"spec\.objective\.objectiveMetricName.* differ.*katib delete experiment defined"):
        run(obj.returns_float, name="defined", objective_metric_name="score", objective_type="minimize",
            max_trial_count=2)
    with pytest.raises(ValueError, match=r"spec\.objective\.type.* differ"):
        run(obj.returns_float, name="defined", objective_metric_name="loss", max_trial_count=2)
    with pytest.raises(ValueError, match=r"spec\.parameters\[0\]\.feasibleSpace\.max differ"):
        run(obj.returns_float, {"x": search.double(0, 2)}, name="defined", objective_metric_name="loss",
            objective_type="minimize", max_trial_count=2)
    # The same definition returns the stored result; a larger budget gives it more trials.
    same = run(obj.returns_float, name="defined", objective_metric_name="loss", objective_type="minimize",
               max_trial_count=2)
    assert [t.name for t in same.trials] == [t.name for t in first.trials]
    more = run(obj.returns_float, name="defined", objective_metric_name="loss", objective_type="minimize",
               max_trial_count=4)
    assert len(more.trials) == 4 and more.state == "Succeeded"
    assert {t.name for t in first.trials} < {t.name for t in more.trials}
    assert len({t.params["x"] for t in more.trials}) == 4


def test_progress_bar_on_a_terminal_and_in_a_log() -> None:
    import io

    from katib.api.model import Experiment, ExperimentSpec, ExperimentStatus, ObjectiveSpec
    from katib.sdk.progress import TuneProgress

    exp = Experiment(spec=ExperimentSpec(objective=ObjectiveSpec(type="minimize", objective_metric_name="loss")),
                     status=ExperimentStatus(trials_succeeded=3, trials_failed=1, trials_running=2,
                                             failed_trial_list=["t1"]))
    exp.metadata.name = "bar"
    tty = io.StringIO()
    bar = TuneProgress(10, out=tty, tty=True, tty_interval=0)
    bar(exp, [])
    bar.close(exp)
    text = tty.getvalue()
    assert "Trial t1 failed:\n  no message\n" in text
    assert "\r\x1b[2K[##########..............] 4/10 trials | 2 running | 1 failed" in text and text.endswith("\n")
    log = io.StringIO()
    bar = TuneProgress(None, out=log, tty=False)
    bar(exp, [])
    bar(exp, [])  # nothing changed: no second line
    assert log.getvalue().count("[bar] 4 trials | 2 running | 1 failed") == 1
