"""KatibClient(backend="local") acting on experiments: create (a detached runner runs it),
budget and stop for tune() running in this process, and the errors a dashboard shows."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml

import katib
from katib import search
from katib.backends.local.control import runner_pid
from katib.errors import AlreadyExistsError, NotFoundError, ValidationError
from katib.sdk.client import KatibClient
from tests.backends.localexp import SLOW_TRIAL, experiment, slow_experiment, stop_runners_left, wait_until
from tests.sdk import objectives as obj


def doc(name: str, max_trials: int = 2, parallel: int = 2, steps: int = 3) -> dict[str, Any]:
    return slow_experiment(name, max_trials, parallel, steps)


wait_for = wait_until


@pytest.fixture(autouse=True)
def _no_runner_left() -> Iterator[None]:
    yield
    stop_runners_left(Path(os.environ["KATIB_HOME"]))


@pytest.fixture
def client() -> Iterator[KatibClient]:
    c = KatibClient(backend="local")
    yield c
    c.close()


def states(client: KatibClient, name: str) -> list[str]:
    return [t.status.state for t in client.list_trials(name)]


def test_a_created_experiment_runs_in_a_detached_runner(client: KatibClient) -> None:
    created = client.create_experiment(doc("made"))
    assert created.metadata.uid and created.spec.max_trial_count == 2
    # running once create returns, in a session of its own: it outlives whoever created it
    pid = runner_pid("made", "default")
    assert pid and client.is_running_locally("made")
    assert os.getsid(pid) == pid != os.getsid(0)
    client.wait_for_experiment_condition("made", timeout=60, polling_interval=0.1)
    assert states(client, "made") == ["Succeeded", "Succeeded"]
    wait_for(lambda: not client.is_running_locally("made"))
    run_dir = Path(os.environ["KATIB_HOME"]) / "runs/default/made"
    assert "katib resume made" in (run_dir / "runner.log").read_text()
    written = yaml.safe_load((run_dir / "experiment.yaml").read_text())
    assert written["metadata"]["name"] == "made" and written["spec"]["maxTrialCount"] == 2

    # finished by reaching maxTrialCount: a raised budget starts a runner again
    client.edit_experiment_budget("made", max_trial_count=3)
    wait_for(lambda: states(client, "made") == ["Succeeded"] * 3 and not client.is_running_locally("made"))
    status = client.get_experiment("made").status
    assert status is not None
    assert [(c.type, c.reason) for c in status.conditions if c.status == "True"][-1] == (
        "Succeeded", "ExperimentMaxTrialsReached")


def test_create_refuses_bad_input_naming_the_field(client: KatibClient) -> None:
    broken = doc("broken")
    broken["spec"]["parameters"][0]["feasibleSpace"] = {"min": "5", "max": "1"}
    with pytest.raises(ValidationError, match=r"spec.parameters\[0\].feasibleSpace.min: min \(5\) must be below"):
        client.create_experiment(broken)
    typed = doc("typed")
    typed["spec"]["parallelTrialCount"] = "many"
    with pytest.raises(ValidationError, match="spec.parallelTrialCount"):
        client.create_experiment(typed)
    unknown = doc("unknown")
    unknown["spec"]["algorithm"]["algorithmName"] = "no-such-search"
    with pytest.raises(ValidationError, match="spec.algorithm.algorithmName"):
        client.create_experiment(unknown)
    nameless = doc("x")
    del nameless["metadata"]["name"]
    with pytest.raises(ValidationError, match="metadata.name"):
        client.create_experiment(nameless)
    assert client.list_experiments() == []  # nothing stored, no runner started
    assert not (Path(os.environ["KATIB_HOME"]) / "runs/default/broken/runner.log").exists()

    client.create_experiment(doc("taken", max_trials=1, parallel=1))
    with pytest.raises(AlreadyExistsError, match="default/taken exists already"):
        client.create_experiment(doc("taken", max_trials=1, parallel=1))
    named = doc("x", max_trials=1, parallel=1)
    named["metadata"] = {"generateName": "gen-"}
    made = client.create_experiment(named)
    assert made.name.startswith("gen-") and len(made.name) == 9
    for name in ("taken", made.name):
        client.wait_for_experiment_condition(name, timeout=60, polling_interval=0.1)


def test_stop_and_delete_a_created_experiment(client: KatibClient) -> None:
    client.create_experiment(doc("longer", max_trials=3, parallel=2, steps=50))
    wait_for(lambda: states(client, "longer") == ["Running", "Running"])
    stopped = client.stop_experiment("longer", wait=True, timeout=60)
    assert not client.is_running_locally("longer")
    assert states(client, "longer") == ["Killed", "Killed"]
    running = stopped.status.condition("Running") if stopped.status else None
    assert running is not None and running.status == "False" and running.reason == "ExperimentInterrupted"
    log = (Path(os.environ["KATIB_HOME"]) / "runs/default/longer/runner.log").read_text()
    assert "Stopped by a request. Run `katib resume longer` again" in log

    client.edit_experiment_budget("longer", max_trial_count=4)  # not running and not finished: stored only
    assert not client.is_running_locally("longer") and client.get_experiment("longer").spec.max_trial_count == 4
    client.delete_experiment("longer")
    with pytest.raises(NotFoundError):
        client.get_experiment("longer")
    with pytest.raises(NotFoundError):
        client.stop_experiment("longer")
    with pytest.raises(NotFoundError):
        client.delete_experiment("longer")


def _tune_in_thread(name: str, objective: Any, max_trials: int) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = katib.tune(objective, {"x": search.double(0, 1)}, name=name, max_trial_count=max_trials,
                                       parallel_trial_count=1, objective_metric_name="loss", progress=False)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    return t, out


def test_tune_running_in_a_thread_takes_a_raised_budget_and_a_stop(client: KatibClient) -> None:
    t, out = _tune_in_thread("tuned", obj.sleeps, 2)
    wait_for(lambda: client.is_running_locally("tuned") and len(client.list_trials("tuned")) >= 1)
    client.edit_experiment_budget("tuned", max_trial_count=4)
    t.join(120)
    assert "error" not in out, out
    result = out["result"]
    assert len(result.trials) == 4 and result.state == "Succeeded"

    t, out = _tune_in_thread("tune-stop", obj.sleeps_long, 3)
    wait_for(lambda: states(client, "tune-stop") == ["Running"])
    client.stop_experiment("tune-stop", wait=True, timeout=60)
    t.join(60)
    assert "error" not in out, out
    assert [tr.state for tr in out["result"].trials] == ["Killed"]
    assert not client.is_running_locally("tune-stop")
    # a tune() experiment not running cannot be continued from here, and says how
    with pytest.raises(ValidationError, match=r"call tune\(\.\.\., name='tuned'\) again"):
        client.edit_experiment_budget("tuned", max_trial_count=5)


def test_a_budget_past_what_the_algorithm_allows_is_refused_before_it_is_stored(client: KatibClient) -> None:
    grid = experiment("grid-budget", algorithm="grid", max_trials=2, parallel=1,
                      objective={"type": "maximize", "objectiveMetricName": "accuracy"},
                      parameters=[{"name": "x", "parameterType": "discrete",
                                   "feasibleSpace": {"list": ["0.1", "0.3", "0.5"]}}],
                      command=["python3", "-c", SLOW_TRIAL, "${trialParameters.x}", "1"])
    client.create_experiment(grid)
    wait_for(lambda: client.is_experiment_succeeded("grid-budget"), timeout=120)
    with pytest.raises(ValidationError) as err:
        client.edit_experiment_budget("grid-budget", max_trial_count=4)
    assert "exceeds the 3 combinations of the grid" in str(err.value)
    assert client.get_experiment("grid-budget").spec.max_trial_count == 2  # nothing stored
    # Within the grid, the same edit goes through and the third combination runs.
    client.edit_experiment_budget("grid-budget", max_trial_count=3)
    wait_for(lambda: len(states(client, "grid-budget")) == 3 and client.is_experiment_succeeded("grid-budget"),
             timeout=120)
