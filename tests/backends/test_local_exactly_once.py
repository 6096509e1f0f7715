"""Every report of a trial is stored exactly once, however often `katib run` is killed.

A real `katib run` process is killed with SIGKILL at random moments while its trials run
(between storing metrics and recording how far it read, between starting a trial and
recording its pid, ...) and started again; what the store holds at the end is compared with
what the trials printed."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from katib.backends.local.process import ProcessSpec, TrialProcess
from katib.store import Store
from tests.backends.localexp import experiment, write

# 40 steps about 0.04 s apart, both metrics on every line, no step given: the n-th line is
# step n of both metrics.
PRINTING_TRIAL = """
import sys, time
x = float(sys.argv[1])
for step in range(1, 41):
    print(f"accuracy={x * step / 40:.6f} loss={(1 - x) / step:.6f}", flush=True)
    time.sleep(0.04)
"""
KILLS = 20
# `katib run` on a slow disk: recording how far a log was read takes 30 ms, so that a kill
# lands between storing rows and recording their offset often, not once in hundreds of runs.
SLOW_DISK_RUN = """
import sys, time
from katib.backends.local.collect import TrialCollector
from katib.cli import main
commit = TrialCollector.commit
def slow_commit(self):
    time.sleep(0.03)
    commit(self)
TrialCollector.commit = slow_commit
sys.exit(main(["run", sys.argv[1], "-q"]))
"""


def _runner_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _printed(log: Path) -> dict[str, list[str]]:
    """The values a trial printed, per metric, in order."""
    values: dict[str, list[str]] = {"accuracy": [], "loss": []}
    for line in log.read_text().splitlines():
        for name, value in re.findall(r"(accuracy|loss)=([\d.]+)", line):
            values[name].append(value)
    return values


@pytest.mark.slow
def test_kill_9_loop_stores_every_report_exactly_once(tmp_path: Path) -> None:
    home = Path(os.environ["KATIB_HOME"])
    rng = random.Random(20240611)
    kills = 0
    names: list[str] = []
    while kills < KILLS:  # experiment after experiment, until the runners were killed enough
        name = f"kill9-{len(names)}"
        names.append(name)
        path = write(tmp_path, experiment(name, max_trials=6, parallel=3,
                                          command=["python3", "-c", PRINTING_TRIAL, "${trialParameters.x}"]),
                     f"{name}.yaml")
        lock = home / "runs" / "default" / name / ".runner"
        while kills < KILLS:
            runner = subprocess.Popen([sys.executable, "-c", SLOW_DISK_RUN, str(path)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            deadline = time.monotonic() + 60
            # Kill it only once it holds the experiment: at work, not while importing.
            while _runner_pid(lock) != runner.pid and runner.poll() is None:
                assert time.monotonic() < deadline, "katib run did not take its lock"
                time.sleep(0.01)
            time.sleep(rng.uniform(0.2, 1.2))
            if runner.poll() is not None:  # the experiment completed: the next one
                _, err = runner.communicate()
                assert runner.returncode == 0, err
                break
            runner.send_signal(signal.SIGKILL)
            runner.communicate(timeout=30)
            kills += 1

    store = Store()
    for name in names:
        final = subprocess.run([sys.executable, "-m", "katib.cli", "run", str(tmp_path / f"{name}.yaml"), "-q"],
                               capture_output=True, text=True, timeout=120)
        assert final.returncode == 0, final.stdout + final.stderr
        trials = store.list_trials(name)
        assert len(trials) == 6 and all(t.status.state == "Succeeded" for t in trials), \
            [(t.name, t.status.state) for t in trials]
        for trial in trials:
            log = home / "runs" / "default" / name / trial.name / "stdout.log"
            printed = _printed(log)
            assert len(printed["accuracy"]) == 40, f"{trial.name} ran more than once or was cut short"
            for metric, values in printed.items():
                rows = store.get_observations(trial.name, metric)
                assert [(r.step, r.value) for r in rows] == list(enumerate(values, start=1)), \
                    f"{trial.name} {metric}: stored steps {[r.step for r in rows]}"
    store.close()


def test_a_runner_killed_before_it_records_the_pid_does_not_start_the_trial_again(tmp_path: Path) -> None:
    directory = tmp_path / "trial"
    starts = tmp_path / "starts"
    command = [sys.executable, "-c",
               f"open({str(starts)!r}, 'a').write('started\\n'); import time; time.sleep(1)"]
    # A runner killed right after it started the trial's wrapper, before it wrote the pid.
    crash = f"""
import os, signal
from pathlib import Path
from katib.backends.local import process
process._start_ticks = lambda pid: os.kill(os.getpid(), signal.SIGKILL)
process.TrialProcess(Path({str(directory)!r})).start(process.ProcessSpec({command!r}, dict(os.environ)))
"""
    crashed = subprocess.run([sys.executable, "-c", crash], timeout=60)
    assert crashed.returncode == -signal.SIGKILL

    resumed = TrialProcess(directory)
    resumed.start(ProcessSpec(command, dict(os.environ)))  # what a resuming runner does
    deadline = time.monotonic() + 30
    while resumed.exit_code() is None or resumed.running():
        assert time.monotonic() < deadline, "the trial did not end"
        time.sleep(0.02)
    assert resumed.exit_code() == 0
    assert starts.read_text() == "started\n"


def test_a_trial_that_ended_is_not_adopted_even_if_its_children_live_on(tmp_path: Path) -> None:
    """The command does not inherit the trial's lock: a background process it leaves
    behind does not make the trial look alive."""
    directory = tmp_path / "trial"
    proc = TrialProcess(directory)
    proc.start(ProcessSpec(["sh", "-c", "sleep 5 >/dev/null 2>&1 & echo started"], dict(os.environ)))
    deadline = time.monotonic() + 30
    while proc.exit_code() is None:
        assert time.monotonic() < deadline, "the trial did not end"
        time.sleep(0.02)
    assert proc.exit_code() == 0
    while proc.running():  # the wrapper exits right after it recorded the exit status
        assert time.monotonic() < deadline, "the wrapper did not exit"
        time.sleep(0.02)
    try:
        assert not TrialProcess(directory).adopt()
    finally:
        assert proc.pid is not None
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the sleep left behind
        except ProcessLookupError:
            pass
