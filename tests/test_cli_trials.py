"""The `katib` command on trials: why they failed, their logs, one trial at a time, and the
output formats and help of every subcommand."""

from __future__ import annotations

import io
import json
import os
import sys
import threading
from pathlib import Path
import pytest

from katib.api.model import (
    Condition,
    Experiment,
    Metric,
    Observation,
    ObjectiveSpec,
    ParameterAssignment,
    ParameterSpec,
    Trial,
    TrialStatus,
)
from katib.cli import build_parser, main
from katib.store import EXPERIMENT_LABEL, Store
from tests.backends.localexp import experiment, write

FAILING = ("import sys; x = float(sys.argv[1])\n"
           "print('loading data', flush=True)\n"
           "if x < 0.5:\n"
           "    print('epoch 1: loss=nan'); print('giving up', flush=True); sys.exit(3)\n"
           "print(f'accuracy={x:.4f}')")


def _run_failing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[str, list[Trial]]:
    doc = experiment("why", max_trials=2, parallel=2, algorithm="grid",
                     parameters=[{"name": "x", "parameterType": "double",
                                  "feasibleSpace": {"min": "0.1", "max": "0.9", "step": "0.8"}}],
                     command=["python3", "-c", FAILING, "${trialParameters.x}"],
                     objective={"type": "maximize", "objectiveMetricName": "accuracy"})
    assert main(["run", str(write(tmp_path, doc)), "-q"]) == 0
    out = capsys.readouterr().out
    return out, Store().list_trials("why")


def test_katib_run_describe_and_logs_say_why_a_trial_failed(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    out, trials = _run_failing(tmp_path, capsys)
    failed = next(t for t in trials if t.status.state == "Failed")
    # The final table of `katib run`: the reason, not only the state.
    row = next(line for line in out.splitlines() if line.startswith(failed.name))
    assert row.split()[1:] == ["Failed", "0.1", "exit", "status", "3"]
    assert out.splitlines()[0].split()[-1] == "REASON"

    assert main(["describe", "experiment", "why"]) == 0
    text = capsys.readouterr().out
    section = text[text.index("Failed trials (1):"):]
    assert f"  {failed.name}: exit status 3\n" in section
    assert section.rstrip().endswith("loading data\n      epoch 1: loss=nan\n      giving up")

    assert main(["describe", "trial", failed.name]) == 0
    text = capsys.readouterr().out
    assert "Status:       Failed\nReason:       TrialFailed\n" in text
    assert "Message:      Trial has failed. Job message: command exited with status 3\n" in text
    directory = Path(os.environ["KATIB_HOME"]) / "runs" / "default" / "why" / failed.name
    assert f"Directory:    {directory}\n" in text
    assert text.endswith(f"Last output ({directory / 'stdout.log'}):\n  loading data\n  epoch 1: loss=nan\n"
                         "  giving up\n")

    assert main(["logs", failed.name]) == 0
    assert capsys.readouterr().out == "loading data\nepoch 1: loss=nan\ngiving up\n"
    assert main(["logs", failed.name, "--tail", "2"]) == 0
    assert capsys.readouterr().out == "epoch 1: loss=nan\ngiving up\n"


# -- stored trials in every state --------------------------------------------------------------
def _store_experiment(name: str = "sweep") -> Store:
    store = Store()
    exp = Experiment()
    exp.metadata.name = name
    exp.spec.objective = ObjectiveSpec(type="maximize", objective_metric_name="accuracy")
    exp.spec.parameters = [ParameterSpec(name="lr", parameter_type="double"),
                           ParameterSpec(name="layers", parameter_type="int")]
    exp.spec.max_trial_count = 10
    store.create_experiment(exp)
    return store


def _store_trial(store: Store, name: str, state: str | None, reason: str = "", message: str = "",
                 lr: str = "0.1", layers: str = "3", accuracy: str | None = None,
                 experiment: str = "sweep") -> Trial:
    t = Trial()
    t.metadata.name = name
    t.metadata.labels = {EXPERIMENT_LABEL: experiment}
    t.spec.objective = ObjectiveSpec(type="maximize", objective_metric_name="accuracy")
    t.spec.parameter_assignments = [ParameterAssignment("lr", lr), ParameterAssignment("layers", layers)]
    t.status = TrialStatus(start_time="2024-03-04T05:06:07Z",
                           completion_time="2024-03-04T05:10:12Z" if state not in (None, "Running") else None)
    if state is not None:
        t.status.conditions = [Condition(type=state, reason=reason, message=message)]
    if accuracy is not None:
        t.status.observation = Observation([Metric("accuracy", accuracy, accuracy, accuracy)])
    store.create_trial(t)
    return t


def _trial_log(trial: str, text: str, experiment: str = "sweep") -> Path:
    path = Path(os.environ["KATIB_HOME"]) / "runs" / "default" / experiment / trial / "stdout.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


TRACEBACK = ('Traceback (most recent call last):\n  File "train.py", line 3, in <module>\n'
             "    raise ValueError('bad learning rate')\nValueError: bad learning rate\n")


@pytest.fixture
def sweep() -> Store:
    store = _store_experiment()
    _store_trial(store, "sweep-ok", "Succeeded", "TrialSucceeded", "Trial has succeeded", accuracy="0.9123456789")
    _store_trial(store, "sweep-deadline", "Failed", "DeadlineExceeded", "Trial exceeded its active deadline of 5 s")
    _store_trial(store, "sweep-raised", "Failed", "TrialFailed",
                 "Trial has failed. Job message: command exited with status 1; last output:\n" + TRACEBACK)
    _store_trial(store, "sweep-stopped", "EarlyStopped", "TrialEarlyStopped",
                 "trial sweep-stopped: best accuracy 0.2 up to step 3 is below 0.5, the medianstop threshold of "
                 "4 completed trials at that step", accuracy="0.2")
    _store_trial(store, "sweep-nometric", "MetricsUnavailable", "MetricsUnavailable",
                 "Metrics are not available: the trial printed no value for 'accuracy'")
    _store_trial(store, "sweep-killed", "Failed", "TrialFailed",
                 "Trial has failed. Job message: command exited with status -9")
    _store_trial(store, "sweep-running", "Running", "TrialRunning", "Trial is running")
    _trial_log("sweep-raised", "step 1\n" + TRACEBACK)
    return store


def _rows(out: str) -> dict[str, str]:
    return {line.split()[0]: line for line in out.splitlines()[1:]}


def test_the_reason_column_names_every_way_a_trial_ends(sweep: Store, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["get", "trials", "sweep"]) == 0
    out = capsys.readouterr().out
    rows = _rows(out)
    assert out.splitlines()[0].split() == ["TRIAL", "STATUS", "lr", "layers", "accuracy", "REASON"]
    assert rows["sweep-ok"].split() == ["sweep-ok", "Succeeded", "0.1", "3", "0.912346"]
    # A reason the runner records for deadlines (or any new one) shows as recorded.
    assert rows["sweep-deadline"].endswith("  DeadlineExceeded: Trial exceeded its active deadline of 5 s")
    # The exit status and the exception that caused it.
    assert rows["sweep-raised"].endswith("  exit status 1: ValueError: bad learning rate")
    assert rows["sweep-stopped"].endswith("  best accuracy 0.2 up to step 3 is below 0.5, the medianst...")
    assert rows["sweep-nometric"].endswith("  Metrics are not available: the trial printed no value for...")
    assert rows["sweep-killed"].endswith("  killed by SIGKILL")
    assert rows["sweep-running"].split() == ["sweep-running", "Running", "0.1", "3"]


def test_describe_experiment_shows_failed_trials_output(sweep: Store, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["describe", "experiment", "sweep"]) == 0
    text = capsys.readouterr().out
    section = text[text.index("Failed trials (4):"):]
    assert "  sweep-deadline: DeadlineExceeded: Trial exceeded its active deadline of 5 s\n" in section
    # the whole traceback, from the trial's log
    assert "  sweep-raised: exit status 1: ValueError: bad learning rate\n    Last output (" in section
    assert "      Traceback (most recent call last):\n" in section and "      ValueError: bad learning rate\n" in section
    assert "  sweep-nometric: Metrics are not available" in section


def test_describe_trial(sweep: Store, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["describe", "trial", "sweep-stopped"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("Name:         sweep-stopped\nNamespace:    default\nExperiment:   sweep\n"
                           "Status:       EarlyStopped\nReason:       TrialEarlyStopped\n"
                           "Message:      trial sweep-stopped: best accuracy 0.2 up to step 3")
    assert "Parameters:\n  NAME    VALUE\n  lr      0.1\n  layers  3\n" in text
    assert "Metrics:\n  NAME      MIN  MAX  LATEST  STRATEGY\n  accuracy  0.2  0.2  0.2     max\n" in text
    assert "Started:      2024-03-04T05:06:07Z\nCompleted:    2024-03-04T05:10:12Z\nDuration:     4m05s\n" in text
    assert "Last output" not in text  # stopped on purpose: its output says nothing new

    # A failed trial whose log is gone: the output the runner quoted in its message.
    assert main(["describe", "trial", "sweep-killed"]) == 0
    text = capsys.readouterr().out
    assert "Reason:       TrialFailed\nMessage:      Trial has failed. Job message: command exited with status -9\n" in text
    assert main(["describe", "trial", "sweep-deadline", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"]["conditions"][0]["reason"] == "DeadlineExceeded"


def test_get_one_trial_wide_and_name_output(sweep: Store, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["get", "trial", "sweep-ok"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split() for line in lines] == [["TRIAL", "STATUS", "lr", "layers", "accuracy"],
                                                ["sweep-ok", "Succeeded", "0.1", "3", "0.912346"]]
    assert main(["get", "trial", "sweep-ok", "-o", "name"]) == 0
    assert capsys.readouterr().out == "trial.kubeflow.org/sweep-ok\n"
    assert main(["get", "trial", "sweep-ok", "-o", "yaml"]) == 0
    assert "kind: Trial\n" in capsys.readouterr().out

    assert main(["get", "trials", "sweep", "-o", "name"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"trial.kubeflow.org/sweep-{n}" for n in (
        "ok", "deadline", "raised", "stopped", "nometric", "killed", "running")]
    assert main(["get", "trials", "sweep", "-o", "wide"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["TRIAL", "STATUS", "lr", "layers", "accuracy", "STARTED", "DURATION",
                                           "REASON"]
    assert _rows(out)["sweep-ok"].split() == ["sweep-ok", "Succeeded", "0.1", "3", "0.912346",
                                              "2024-03-04T05:06:07Z", "4m05s"]
    # wide: the reason uncut
    assert _rows(out)["sweep-nometric"].endswith("the trial printed no value for 'accuracy'")

    assert main(["get", "experiments", "-o", "name"]) == 0
    assert capsys.readouterr().out == "experiment.kubeflow.org/sweep\n"
    assert main(["get", "experiments", "-o", "wide"]) == 0
    header = capsys.readouterr().out.splitlines()[0].split("  ")
    assert [h.strip() for h in header if h.strip()] == ["NAME", "NAMESPACE", "STATUS", "ALGORITHM", "SUCCEEDED/TRIALS",
                                                        "BEST", "CREATED", "RUNNING", "FAILED", "BEST TRIAL",
                                                        "DURATION", "REASON"]


def test_unknown_trial_names_the_way_to_list_trials(sweep: Store, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["logs", "nope"], ["get", "trial", "nope"], ["describe", "trial", "nope"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "trial default/nope not found" in err and "katib get trials EXPERIMENT" in err
    assert main(["get", "trials"]) == 2
    assert capsys.readouterr().err == ("katib: katib get trials: name the experiment (katib get trials EXPERIMENT), "
                                       "or a trial (katib get trial NAME)\n")
    assert main(["logs", "sweep-ok", "--tail", "-1"]) == 2
    assert "--tail: expected a line count of 0 or more, got -1" in capsys.readouterr().err
    # An experiment's name where a trial's is expected: say so.
    assert main(["get", "trial", "sweep"]) == 2
    assert "'sweep' is an experiment: `katib get trials sweep` lists its trials" in capsys.readouterr().err


def test_numbers_are_readable_and_json_keeps_every_digit(capsys: pytest.CaptureFixture[str]) -> None:
    store = _store_experiment()
    _store_trial(store, "sweep-a", "Succeeded", lr="0.000123456789012", layers="1234567", accuracy="0.99999999")
    assert main(["get", "trials", "sweep"]) == 0
    assert _rows(capsys.readouterr().out)["sweep-a"].split() == ["sweep-a", "Succeeded", "0.000123457", "1234567",
                                                                 "1.00000"]
    assert main(["get", "trials", "sweep", "-o", "json"]) == 0
    item = json.loads(capsys.readouterr().out)["items"][0]
    assert item["spec"]["parameterAssignments"][0]["value"] == "0.000123456789012"
    assert item["status"]["observation"]["metrics"][0]["latest"] == "0.99999999"


class _Screen(io.StringIO):
    """stdout that says when something was first printed."""

    def __init__(self) -> None:
        super().__init__()
        self.printed = threading.Event()

    def write(self, text: str) -> int:
        if text:
            self.printed.set()
        return super().write(text)


def test_logs_follow_until_the_trial_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store_experiment()
    trial = _store_trial(store, "sweep-live", "Running")
    log = _trial_log("sweep-live", "epoch 1\n")
    out = _Screen()
    monkeypatch.setattr(sys, "stdout", out)

    def train() -> None:
        # Once `katib logs -f` has printed what there is, the trial prints more and ends.
        out.printed.wait(60)
        with open(log, "a") as f:
            f.write("epoch 2\nepoch 3\n")
        trial.status.conditions = [Condition(type="Succeeded", reason="TrialSucceeded")]
        Store().update_trial(trial)

    writer = threading.Thread(target=train)
    writer.start()
    try:
        assert main(["logs", "sweep-live", "-f"]) == 0
    finally:
        out.printed.set()  # never leave the writer waiting
        writer.join()
    assert out.getvalue() == "epoch 1\nepoch 2\nepoch 3\n"


def test_logs_follow_interrupted_exits_130_quietly(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    store = _store_experiment()
    _store_trial(store, "sweep-live", "Running")
    _trial_log("sweep-live", "epoch 1\n")

    def ctrl_c(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("katib.logs.time.sleep", ctrl_c)
    assert main(["logs", "sweep-live", "-f"]) == 130
    captured = capsys.readouterr()
    assert captured.out == "epoch 1\n" and captured.err == ""


# -- version and help ---------------------------------------------------------------------------
def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    import platform

    import katib

    assert main(["version"]) == 0
    text = capsys.readouterr().out
    assert text == (f"katib-lite {katib.__version__}\nAPI: kubeflow.org/v1beta1 (gRPC api.v1.beta1)\n"
                    f"Python: {platform.python_version()} ({platform.python_implementation()})\n")
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out == text


def _subcommands() -> list[str]:
    import argparse

    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(action.choices)


def test_help_lists_every_subcommand() -> None:
    assert {"validate", "run", "get", "describe", "logs", "version", "delete", "suggestion", "earlystop",
            "db-manager", "controller"} <= set(_subcommands())


@pytest.mark.parametrize("argv", [[c, "--help"] for c in _subcommands()]
                         + [["suggestion", "serve", "--help"], ["earlystop", "serve", "--help"], ["--help"]],
                         ids=" ".join)
def test_every_subcommand_has_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: katib {' '.join(argv[:-1])}".rstrip()), out


@pytest.mark.parametrize("argv", [[], ["suggestion"], ["earlystop"]], ids=lambda a: " ".join(a) or "none")
def test_a_command_without_its_subcommand_prints_usage(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code  # type: ignore[assignment]
    assert code == 2
    assert capsys.readouterr().err.startswith(f"usage: katib {' '.join(argv)}".rstrip())


def test_logs_follow_ends_when_the_process_ended_while_no_runner_watched(monkeypatch: pytest.MonkeyPatch) -> None:
    # `katib run` was killed: the store still says Running, but the trial's wrapper recorded
    # its exit status on disk. Following its log must end, not wait for a runner forever.
    store = _store_experiment()
    _store_trial(store, "sweep-orphan", "Running")
    log = _trial_log("sweep-orphan", "epoch 1\nepoch 2\n")
    (log.parent / "pid").write_text("999999999 0\n")
    (log.parent / "exitcode").write_text("0")
    out = _Screen()
    monkeypatch.setattr(sys, "stdout", out)
    sleeps = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) > 100:
            raise AssertionError("katib logs -f kept following a trial whose process had ended")

    monkeypatch.setattr("katib.logs.time.sleep", sleep)
    assert main(["logs", "sweep-orphan", "-f"]) == 0
    assert out.getvalue() == "epoch 1\nepoch 2\n"
