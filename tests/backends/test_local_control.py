"""Acting on a running `katib run` from outside, as the dashboard does: a real `katib run`
process, KatibClient(backend="local") on the same store, real trial processes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from katib.api.model import Experiment
from katib.backends.local.control import STOP_REQUESTED
from katib.errors import NotFoundError, ValidationError
from katib.sdk.client import KatibClient
from katib.store import Store
from tests.backends.localexp import experiment, slow_experiment, stop_runners_left, wait_until, write



def doc(name: str, max_trials: int = 2, parallel: int = 1, steps: int = 4) -> dict[str, Any]:
    return slow_experiment(name, max_trials, parallel, steps)


def start(path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "katib.cli", "run", str(path), "-q"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def katib(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "katib.cli", *args], capture_output=True, text=True, timeout=120)


wait_for = wait_until


def states(name: str) -> list[str]:
    return [t.status.state for t in Store().list_trials(name)]


def trial_pids(name: str) -> list[int]:
    base = Path(os.environ["KATIB_HOME"]) / "runs/default" / name
    return [int((base / t.name / "pid").read_text().split()[0]) for t in Store().list_trials(name)
            if (base / t.name / "pid").exists()]


def gone(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


def true_conditions(exp: Experiment) -> list[tuple[str, str | None]]:
    return [(c.type, c.reason) for c in exp.status.conditions if c.status == "True"] if exp.status else []


@pytest.fixture(autouse=True)
def _no_runner_left() -> Iterator[None]:
    yield
    stop_runners_left(Path(os.environ["KATIB_HOME"]))


@pytest.fixture
def client() -> Any:
    c = KatibClient(backend="local")
    yield c
    c.close()


def test_a_running_katib_run_takes_a_raised_budget(tmp_path: Path, client: KatibClient) -> None:
    path = write(tmp_path, doc("raise", max_trials=2))
    proc = start(path)
    try:
        wait_for(lambda: client.is_running_locally("raise") and states("raise") == ["Running"])
        edited = client.edit_experiment_budget("raise", max_trial_count=4, parallel_trial_count=2)
        assert (edited.spec.max_trial_count, edited.spec.parallel_trial_count) == (4, 2)
        # two at a time now: the new parallelTrialCount reached the runner too
        wait_for(lambda: states("raise").count("Running") == 2, timeout=30)
        out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert states("raise") == ["Succeeded"] * 4
    exp = client.get_experiment("raise")
    assert true_conditions(exp)[-1] == ("Succeeded", "ExperimentMaxTrialsReached")
    assert not client.is_running_locally("raise")

    # `katib run FILE` again: the file still says 2, as when it was last run, so the store's 4 stays
    again = katib("run", str(path), "-q")
    assert again.returncode == 0, again.stdout + again.stderr
    assert client.get_experiment("raise").spec.max_trial_count == 4 and len(states("raise")) == 4
    # a budget the file itself changes wins
    d = doc("raise", max_trials=5)
    write(tmp_path, d)
    again = katib("run", str(path), "-q")
    assert again.returncode == 0, again.stdout + again.stderr
    assert client.get_experiment("raise").spec.max_trial_count == 5 and states("raise") == ["Succeeded"] * 5


def test_a_budget_edit_is_checked_with_the_update_rules(tmp_path: Path, client: KatibClient) -> None:
    path = write(tmp_path, doc("rules", max_trials=2, parallel=2))
    assert katib("run", str(path), "-q").returncode == 0
    with pytest.raises(ValidationError, match=r"spec.maxTrialCount: must be greater than status.trials count \(2\)"):
        client.edit_experiment_budget("rules", max_trial_count=1)
    with pytest.raises(ValidationError, match=r"spec.parallelTrialCount"):
        client.edit_experiment_budget("rules", parallel_trial_count=0)
    with pytest.raises(NotFoundError, match="rules-x"):
        client.edit_experiment_budget("rules-x", max_trial_count=3)
    assert client.get_experiment("rules").spec.max_trial_count == 2


def test_stop_ends_the_run_interrupted_and_a_new_run_resumes(tmp_path: Path, client: KatibClient) -> None:
    path = write(tmp_path, doc("halt", max_trials=3, parallel=2, steps=25))
    proc = start(path)
    try:
        wait_for(lambda: states("halt") == ["Running", "Running"])
        pids = trial_pids("halt")
        stopped = client.stop_experiment("halt", wait=True, timeout=60)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, out
    assert "Stopped by a request" in out and "katib run" in out
    assert not client.is_running_locally("halt")
    assert len(pids) == 2 and all(gone(pid) for pid in pids)  # no trial process left behind
    assert states("halt") == ["Killed", "Killed"]
    exp = client.get_experiment("halt")
    assert stopped.status is not None and exp.status is not None
    running = exp.status.condition("Running")
    assert running is not None and running.status == "False" and running.reason == "ExperimentInterrupted"
    assert "stopped by a request" in (running.message or "")
    assert not any(t in ("Succeeded", "Failed") for t, _ in true_conditions(exp))
    assert STOP_REQUESTED not in exp.metadata.annotations  # the runner consumed it

    again = katib("run", str(path), "-q")
    assert again.returncode == 0, again.stdout + again.stderr
    assert states("halt") == ["Succeeded"] * 3


def test_a_stop_request_no_runner_saw_does_not_stop_the_next_run(tmp_path: Path, client: KatibClient) -> None:
    path = write(tmp_path, doc("stale", max_trials=2, parallel=2, steps=25))
    proc = start(path)
    wait_for(lambda: states("stale") == ["Running", "Running"])
    proc.kill()  # a runner gone without a trace, before it could see the request below
    proc.wait(timeout=10)

    def ask(e: Experiment) -> None:
        e.metadata.annotations[STOP_REQUESTED] = "2024-01-01T00:00:00Z"
    Store().edit_experiment("stale", "default", ask)
    r = katib("run", str(path), "-q")
    assert r.returncode == 0, r.stdout + r.stderr
    assert states("stale") == ["Succeeded", "Succeeded"]
    assert STOP_REQUESTED not in client.get_experiment("stale").metadata.annotations
    # stopping what is not running is not an error, and leaves nothing behind
    assert client.stop_experiment("stale").name == "stale"
    assert STOP_REQUESTED not in client.get_experiment("stale").metadata.annotations


def test_katib_stop_command(tmp_path: Path) -> None:
    path = write(tmp_path, doc("cli", max_trials=1, steps=25))
    proc = start(path)
    try:
        wait_for(lambda: states("cli") == ["Running"])
        r = katib("stop", "experiment", "cli")
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"experiment 'cli' stopped (runner pid {proc.pid})" in r.stdout
        proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130
    r = katib("stop", "experiment", "cli")
    assert r.returncode == 0 and "experiment 'cli' is not running" in r.stdout
    r = katib("stop", "experiment", "nope")
    assert r.returncode == 2 and "experiment default/nope not found" in r.stderr and "Traceback" not in r.stderr
    r = katib("resume", "cli", "-q")  # from the store alone, no file
    assert r.returncode == 0, r.stdout + r.stderr
    assert states("cli") == ["Succeeded"]


def test_delete_of_a_running_experiment_stops_it_first(tmp_path: Path, client: KatibClient) -> None:
    path = write(tmp_path, doc("doomed", max_trials=4, parallel=2, steps=25))
    proc = start(path)
    try:
        wait_for(lambda: states("doomed") == ["Running", "Running"])
        names = [t.name for t in Store().list_trials("doomed")]
        pids = trial_pids("doomed")
        client.delete_experiment("doomed")
        proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert all(gone(pid) for pid in pids)
    with pytest.raises(NotFoundError):
        client.get_experiment("doomed")
    time.sleep(1.0)  # nothing writes into it afterwards: no trial row, no metric row comes back
    store = Store()
    assert store.list_experiments() == []
    assert all(store.get_observations(n) == [] for n in names)


def test_a_runner_whose_experiment_is_deleted_under_it_stops_its_trials(tmp_path: Path) -> None:
    path = write(tmp_path, doc("pulled", max_trials=4, parallel=2, steps=25))
    proc = start(path)
    try:
        wait_for(lambda: states("pulled") == ["Running", "Running"])
        pids = trial_pids("pulled")
        Store().delete_experiment("pulled")  # straight in the store, not through the client
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 1, out
    assert "was deleted while it ran" in out and "Traceback" not in out
    assert all(gone(pid) for pid in pids)


def test_a_budget_raised_while_the_runner_ends_is_not_lost(tmp_path: Path, client: KatibClient) -> None:
    """The handoff: the runner has written its experiment's end and still holds the lock when
    the budget is raised; the client waits for it to let go and starts a new runner."""
    from katib.backends.local import exclusive

    path = write(tmp_path, doc("handoff", max_trials=1))
    assert katib("run", str(path), "-q").returncode == 0
    exp = client.get_experiment("handoff")
    released = threading.Event()
    held = threading.Event()

    def ending_runner() -> None:
        with exclusive(exp):
            held.set()
            time.sleep(1.0)
        released.set()

    t = threading.Thread(target=ending_runner)
    t.start()
    held.wait(5)
    edited = client.edit_experiment_budget("handoff", max_trial_count=2)
    t.join()
    assert released.is_set()
    assert edited.spec.max_trial_count == 2
    client.wait_for_experiment_condition("handoff", timeout=60, polling_interval=0.1)
    wait_for(lambda: states("handoff") == ["Succeeded", "Succeeded"] and not client.is_running_locally("handoff"))


def test_the_runner_looks_once_more_after_it_wrote_the_end(tmp_path: Path) -> None:
    """A budget raised between the runner's last regular look and the end it writes: its last
    look after that write sees it, and the experiment goes on instead of ending."""
    from katib.backends import local
    from suggestion.inprocess import InProcessSuggester

    store = Store()
    exp = local.prepare(Experiment.from_dict(doc("lastlook", max_trials=1)))
    exp, _ = local.open_experiment(store, exp)

    class RaisesAtTheEnd:
        """The store, except that the first read after the end was written raises the budget
        first, as a client would at that moment."""

        def __init__(self) -> None:
            self.raised = False

        def __getattr__(self, name: str) -> Any:
            return getattr(store, name)

        def get_experiment(self, name: str, namespace: str = "default") -> Experiment:
            stored = store.get_experiment(name, namespace)
            if not self.raised and stored.status is not None and stored.status.is_true("Succeeded"):
                self.raised = True

                def more(e: Experiment) -> None:
                    e.spec.max_trial_count = 2
                store.edit_experiment(name, namespace, more)
            return store.get_experiment(name, namespace)

    wrapped = RaisesAtTheEnd()
    final = local.run(wrapped, exp, InProcessSuggester(), workdir=str(tmp_path), poll_interval=0.05)
    assert wrapped.raised
    assert states("lastlook") == ["Succeeded", "Succeeded"]
    assert true_conditions(final)[-1] == ("Succeeded", "ExperimentMaxTrialsReached")
