"""Brief trial listing and the trials' version, on every backend: what the dashboard reads."""

from __future__ import annotations

import time

from katib.api.model import Condition, Metric, Observation, ParameterAssignment, TrialStatus
from katib.store import Store
from tests.store.test_store import experiment, trial


def _finished(store: Store, name: str, value: str) -> None:
    t = store.get_trial(name)
    t.status = TrialStatus(
        start_time="2024-03-04T05:06:07Z", completion_time="2024-03-04T05:07:08Z",
        conditions=[Condition(type="Created", reason="TrialCreated", message="Trial is created"),
                    Condition(type="Running", status="False", reason="TrialRunning"),
                    Condition(type="Failed", reason="TrialFailed", message="exited with status 3")],
        observation=Observation([Metric("loss", value, "9", value)]))
    store.update_trial(t)


def test_brief_trials_carry_what_tables_read(store: Store) -> None:
    store.create_experiment(experiment())
    store.create_trial(trial("t1", condition="Running"))
    t2 = trial("t2")
    # Numbers written bare (as tune() stores them) come back as the full decoder gives them.
    t2.spec.parameter_assignments = [ParameterAssignment("lr", 0.25), ParameterAssignment("n", 3)]  # type: ignore[arg-type]
    store.create_trial(t2)
    _finished(store, "t1", "0.125")
    brief = store.list_trials_brief("exp")
    full = store.list_trials("exp")
    assert [t.name for t in brief] == ["t1", "t2"]
    for b, f in zip(brief, full):
        assert b.status.state == f.status.state
        assert b.spec.parameter_assignments == f.spec.parameter_assignments
        assert b.status.observation == f.status.observation
        assert (b.status.start_time, b.status.completion_time) == (f.status.start_time, f.status.completion_time)
        assert b.metadata.creation_timestamp == f.metadata.creation_timestamp
    assert brief[1].spec.assignments == {"lr": "0.25", "n": "3"}
    # Only the condition that gives the state is kept, with its message.
    assert [(c.type, c.reason, c.message) for c in brief[0].status.conditions] == [
        ("Failed", "TrialFailed", "exited with status 3")]
    assert brief[1].status.state == "Pending" and brief[1].status.observation is None


def test_the_version_changes_with_every_trial_write_and_since_reads_only_those(store: Store) -> None:
    store.create_experiment(experiment())
    store.create_experiment(experiment("other"))
    assert store.trials_version("exp") == (0, None)
    store.create_trial(trial("t1"))
    store.create_trial(trial("t2"))
    count, first = store.trials_version("exp")
    assert count == 2 and first is not None
    time.sleep(0.01)
    store.create_trial(trial("o1", exp="other"))
    assert store.trials_version("exp") == (2, first)  # another experiment's trial: no change
    _finished(store, "t1", "0.5")
    count, later = store.trials_version("exp")
    assert count == 2 and later is not None and later > first
    assert [t.name for t in store.list_trials_brief("exp", updated_since=later)] == ["t1"]
    assert [t.name for t in store.list_trials_brief("exp", updated_since=first)] == ["t1", "t2"]
    assert store.list_trials_brief("nothing") == []
    assert [t.name for t in store.list_trials_brief("exp", newest=1)] == ["t2"]
    assert [t.name for t in store.list_trials_brief("exp", newest=5)] == ["t1", "t2"]
