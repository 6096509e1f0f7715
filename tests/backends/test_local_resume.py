"""Ctrl-C, resume and kill -9 of `katib run`, as a user does them: a real `katib run`
process, real signals, the real store afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from katib.store import Store
from tests.backends.localexp import experiment, write

# 8 steps, 0.15 s apart: long enough to interrupt, short enough for a test.
SLOW_TRIAL = """
import sys, time
x = float(sys.argv[1])
for step in range(1, 9):
    print(f"accuracy={1 - (x - 0.3) ** 2 - 0.1 / step:.6f}", flush=True)
    time.sleep(0.15)
"""


def start(path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "katib.cli", "run", str(path), "-q"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=dict(os.environ))


def wait_for(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def running(name: str) -> int:
    try:
        return sum(1 for t in Store().list_trials(name) if t.status.state == "Running")
    except Exception:
        return 0


def states(name: str) -> dict[str, str]:
    return {t.name: t.status.state for t in Store().list_trials(name)}


def doc(name: str, max_trials: int = 4) -> dict[str, Any]:
    return experiment(name, max_trials=max_trials, parallel=2, objective={"type": "maximize", "objectiveMetricName": "accuracy"},
                      command=["python3", "-c", SLOW_TRIAL, "${trialParameters.x}"])


def test_ctrl_c_kills_running_trials_and_resume_completes_without_duplicates(tmp_path: Path) -> None:
    path = write(tmp_path, doc("interrupt"))
    proc = start(path)
    wait_for(lambda: running("interrupt") == 2)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130, out
    assert "katib run" in out and "resume" in out
    first = states("interrupt")
    assert sorted(first.values()) == ["Killed", "Killed"]
    pids = [int((Path(os.environ["KATIB_HOME"]) / "runs/default/interrupt" / t / "pid").read_text().split()[0])
            for t in first]
    for pid in pids:  # the trial process groups are gone, not orphaned
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)
    exp = Store().get_experiment("interrupt")
    assert not any(c.type in ("Succeeded", "Failed") and c.status == "True" for c in exp.status.conditions)

    second = subprocess.run([sys.executable, "-m", "katib.cli", "run", str(path), "-q"], capture_output=True, text=True,
                            timeout=120)
    assert second.returncode == 0, second.stdout + second.stderr
    final = states("interrupt")
    assert len(final) == 4  # the budget: interrupted trials ran again under their own names
    assert set(first) <= set(final)
    assert sorted(final.values()) == ["Succeeded"] * 4
    store = Store()
    for name in final:  # each trial's curve is one complete run, not two runs glued together
        assert [r.step for r in store.get_observations(name, "accuracy")] == list(range(1, 9))


def test_kill_9_of_the_runner_loses_no_trial_or_metric(tmp_path: Path) -> None:
    path = write(tmp_path, doc("crash", max_trials=4))
    proc = start(path)
    store = Store()

    def some_metrics() -> bool:
        trials = [t for t in store.list_trials("crash") if t.status.state == "Running"]
        return len(trials) == 2 and all(len(store.get_observations(t.name)) >= 2 for t in trials)

    wait_for(some_metrics)
    # A second runner of the same experiment would run trials beside the first one's.
    rival = subprocess.run([sys.executable, "-m", "katib.cli", "run", str(path), "-q"], capture_output=True,
                           text=True, timeout=120)
    assert rival.returncode == 1, rival.stdout + rival.stderr
    assert "already being run" in rival.stderr and f"pid {proc.pid}" in rival.stderr, rival.stderr
    assert len(states("crash")) == 2 and proc.poll() is None
    recorded = {t.name: len(store.get_observations(t.name)) for t in store.list_trials("crash")}
    proc.kill()  # SIGKILL: no handler runs; its lock goes with it (the trials it leaves hold none)
    proc.wait(timeout=10)
    after = {t.name: len(store.get_observations(t.name)) for t in store.list_trials("crash")}
    assert all(after[n] >= recorded[n] for n in recorded)  # nothing recorded was lost

    again = subprocess.run([sys.executable, "-m", "katib.cli", "run", str(path), "-q"], capture_output=True, text=True,
                           timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    final = states("crash")
    assert len(final) == 4 and set(recorded) <= set(final)
    assert sorted(final.values()) == ["Succeeded"] * 4
    for name in final:  # adopted trials: every step exactly once
        assert [r.step for r in store.get_observations(name, "accuracy")] == list(range(1, 9))


def test_resume_accepts_a_raised_budget_and_refuses_other_changes(tmp_path: Path) -> None:
    d = experiment("budget", max_trials=2, parallel=2, extra_spec={"resumePolicy": "LongRunning"})
    path = write(tmp_path, d)
    assert subprocess.run([sys.executable, "-m", "katib.cli", "run", str(path), "-q"], timeout=120).returncode == 0
    assert len(states("budget")) == 2
    d["spec"]["maxTrialCount"] = 3
    write(tmp_path, d)
    r = subprocess.run([sys.executable, "-m", "katib.cli", "run", str(path), "-q"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(states("budget")) == 3
    d["spec"]["parameters"][0]["feasibleSpace"]["max"] = "2"
    write(tmp_path, d)
    r = subprocess.run([sys.executable, "-m", "katib.cli", "run", str(path), "-q"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "already exists" in r.stderr and "katib delete experiment budget" in r.stderr


def katib_run(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "katib.cli", "run", str(path), "-q", *extra], capture_output=True,
                          text=True, timeout=120)


def test_a_finished_experiment_is_given_more_trials_by_default(tmp_path: Path) -> None:
    d = experiment("more", max_trials=2, parallel=2)  # no resumePolicy: LongRunning locally
    path = write(tmp_path, d)
    assert katib_run(path).returncode == 0
    first = states("more")
    assert len(first) == 2
    d["spec"]["maxTrialCount"] = 3
    write(tmp_path, d)
    r = katib_run(path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(states("more")) == 3 and set(first) < set(states("more"))
    r = katib_run(path, "--max-trial-count", "5")  # the same from the command line
    assert r.returncode == 0, r.stdout + r.stderr
    final = Store().list_trials("more")
    assert len(final) == 5 and all(t.status.state == "Succeeded" for t in final)
    assert len({t.spec.assignments["x"] for t in final}) == 5  # the search went on, not over again
    exp = Store().get_experiment("more")
    assert exp.spec.max_trial_count == 5
    assert [(c.type, c.reason) for c in exp.status.conditions if c.status == "True"][-1] == (
        "Succeeded", "ExperimentMaxTrialsReached")


def test_more_trials_are_refused_with_resume_policy_never_or_after_the_goal(tmp_path: Path) -> None:
    d = experiment("never", max_trials=1, parallel=1, extra_spec={"resumePolicy": "Never"})
    path = write(tmp_path, d)
    assert katib_run(path).returncode == 0
    r = katib_run(path, "--max-trial-count", "2")
    assert r.returncode == 2
    assert "spec.resumePolicy" in r.stderr and "resumePolicy is Never" in r.stderr, r.stderr
    assert "set resumePolicy: LongRunning in the file" in r.stderr
    assert len(states("never")) == 1
    # The fix the message names works: the file's resumePolicy may change on resume.
    d["spec"]["resumePolicy"] = "LongRunning"
    write(tmp_path, d)
    r = katib_run(path, "--max-trial-count", "2")
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(states("never")) == 2

    goal = experiment("goal", max_trials=3, parallel=1,
                      objective={"type": "maximize", "goal": -100, "objectiveMetricName": "accuracy"})
    path = write(tmp_path, goal, "goal.yaml")
    assert katib_run(path).returncode == 0
    r = katib_run(path, "--max-trial-count", "5")
    assert r.returncode == 2
    assert "ExperimentGoalReached" in r.stderr and "katib delete experiment goal" in r.stderr, r.stderr
    assert len(states("goal")) == 1


def test_after_ctrl_c_the_experiment_shows_interrupted_not_running(tmp_path: Path) -> None:
    path = write(tmp_path, doc("shown", max_trials=2))
    proc = start(path)
    wait_for(lambda: running("shown") == 2)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 130
    exp = Store().get_experiment("shown")
    running_cond = exp.status.condition("Running")
    assert running_cond is not None and running_cond.status == "False"
    assert running_cond.reason == "ExperimentInterrupted"
    # Both trials were interrupted at the budget of 2: that does not complete the experiment.
    assert not any(c.type in ("Succeeded", "Failed") and c.status == "True" for c in exp.status.conditions)
    listed = subprocess.run([sys.executable, "-m", "katib.cli", "get", "experiments"], capture_output=True, text=True)
    assert [line.split()[2] for line in listed.stdout.splitlines() if line.startswith("shown ")] == ["Interrupted"]
    again = katib_run(path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert sorted(states("shown").values()) == ["Succeeded", "Succeeded"]
    exp = Store().get_experiment("shown")
    assert exp.status.condition("Running").status == "False"  # type: ignore[union-attr]
    assert exp.status.condition("Running").reason == "ExperimentRunning"  # type: ignore[union-attr]
