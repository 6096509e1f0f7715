"""The dashboard's trial cache on a real store: read once, then only what changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from katib.api.model import Condition, Experiment, Metric, Observation, ParameterAssignment, Trial, TrialStatus
from katib.errors import NotFoundError
from katib.sdk.client import KatibClient
from katib.store import EXPERIMENT_LABEL
from katib.ui.backend import Dashboard, Settings
from katib.ui.cache import ExperimentCache


def _experiment(name: str = "exp") -> Experiment:
    return Experiment.from_dict({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"objective": {"type": "minimize", "objectiveMetricName": "loss"},
                 "algorithm": {"algorithmName": "random"}, "maxTrialCount": 10,
                 "parameters": [{"name": "lr", "parameterType": "double",
                                 "feasibleSpace": {"min": "0.1", "max": "1"}}]}})


def _trial(name: str, lr: str, exp: str = "exp") -> Trial:
    t = Trial()
    t.metadata.name, t.metadata.namespace = name, "default"
    t.metadata.labels = {EXPERIMENT_LABEL: exp}
    t.spec.parameter_assignments = [ParameterAssignment("lr", lr)]
    t.status = TrialStatus(conditions=[Condition(type="Running", reason="TrialRunning")])
    return t


@pytest.fixture
def setup(tmp_path: Path) -> Any:
    client = KatibClient(backend="local", db_url=f"sqlite:///{tmp_path / 'k.db'}")
    dashboard = Dashboard(lambda: client, Settings())
    yield client, ExperimentCache(dashboard, ttl=0.0)
    client.close()


def test_a_read_then_only_the_changed_trials(setup: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    client, cache = setup
    store = client.store
    store.create_experiment(_experiment())
    for i in range(3):
        store.create_trial(_trial(f"t{i}", f"0.{i + 1}"))
    reads: list[Any] = []
    real = store.list_trials_brief

    def spy(*args: Any, **kwargs: Any) -> Any:
        reads.append(kwargs.get("updated_since"))
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "list_trials_brief", spy)
    first = cache.get("default", "exp")
    assert [t.name for t in first.data.trials] == ["t0", "t1", "t2"] and reads == [None]
    assert cache.get("default", "exp").generation == first.generation and len(reads) == 1  # nothing changed
    done = store.get_trial("t1")
    done.status.conditions.append(Condition(type="Succeeded", reason="TrialSucceeded"))
    done.status.observation = Observation([Metric("loss", "0.5", "0.9", "0.5")])
    store.update_trial(done)
    store.create_trial(_trial("t3", "0.4"))
    second = cache.get("default", "exp")
    assert len(reads) == 2 and reads[1] is not None  # only what changed since the first read
    assert second.generation > first.generation
    assert [(t.number, t.name, t.state, t.value) for t in second.data.trials] == [
        (0, "t0", "Running", None), (1, "t1", "Succeeded", 0.5), (2, "t2", "Running", None), (3, "t3", "Running", None)]
    assert [t.state for t in first.data.trials] == ["Running"] * 3  # a request holding the old entry keeps it


def test_an_experiment_made_again_is_read_again_and_a_deleted_one_is_gone(setup: Any) -> None:
    client, cache = setup
    store = client.store
    store.create_experiment(_experiment())
    store.create_trial(_trial("t0", "0.1"))
    assert [t.name for t in cache.get("default", "exp").data.trials] == ["t0"]
    store.delete_experiment("exp")
    with pytest.raises(NotFoundError):
        cache.get("default", "exp")
    assert cache.peek("default", "exp") is None
    store.create_experiment(_experiment())
    store.create_trial(_trial("u0", "0.2"))
    assert [t.name for t in cache.get("default", "exp").data.trials] == ["u0"]
    # Deleted and made again between two looks: another uid, so nothing of the old one is kept.
    store.delete_experiment("exp")
    store.create_experiment(_experiment())
    store.create_trial(_trial("v0", "0.3"))
    store.create_trial(_trial("v1", "0.4"))
    assert [(t.number, t.name) for t in cache.get("default", "exp").data.trials] == [(0, "v0"), (1, "v1")]
