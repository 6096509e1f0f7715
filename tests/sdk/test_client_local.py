"""KatibClient(backend="local"): upstream's read methods on the local store."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator, Tuple

import pytest

import katib
from katib import search
from katib.errors import NotFoundError, ValidationError
from katib.sdk.client import KatibClient
from tests.sdk import objectives as obj


Setup = Tuple[KatibClient, katib.TuneResult, Path]


@pytest.fixture(scope="module")
def client_and_result(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    # One run for the whole module: its own store, since the per-test store is function-scoped.
    home = tmp_path_factory.mktemp("client-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("KATIB_HOME", str(home))
    db = f"sqlite:///{home}/katib.db"
    client = KatibClient(backend="local", db_url=db, namespace="team")
    result = client.tune(obj.echoes_environment, {"x": search.double(0, 1)}, name="readable", max_trial_count=3,
                         parallel_trial_count=2, progress=False, env_per_trial={"CUSTOM": "yes"})
    yield client, result, home
    mp.undo()


def test_read_methods(client_and_result: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    client, result, home = client_and_result
    monkeypatch.setenv("KATIB_HOME", str(home))  # where the trials' output is
    assert result.namespace == "team"
    exp = client.get_experiment("readable")
    assert exp.metadata.namespace == "team" and exp.spec.max_trial_count == 3
    assert [e.name for e in client.list_experiments()] == ["readable"]
    assert client.list_experiments("default") == []
    assert client.is_experiment_created("readable") and client.is_experiment_succeeded("readable")
    assert not client.is_experiment_failed("readable") and not client.is_experiment_running("readable")
    assert {c.type for c in client.get_experiment_conditions("readable")} >= {"Created", "Succeeded"}
    assert client.wait_for_experiment_condition("readable", timeout=5, polling_interval=0.1).name == "readable"
    with pytest.raises(TimeoutError):
        client.wait_for_experiment_condition("readable", expected_condition="Failed", timeout=0.2,
                                             polling_interval=0.1)
    trials = client.list_trials("readable")
    assert [t.name for t in trials] == [t.name for t in result.trials]
    assert client.get_trial(trials[0].name).spec.assignments == trials[0].spec.assignments
    details = client.get_success_trial_details("readable")
    assert len(details) == 3 and {"name", "parameter_assignments", "metrics"} <= set(details[0])
    best = client.get_optimal_hyperparameters("readable")
    assert best is not None and best.best_trial_name == result.best_trial_name
    rows = client.get_trial_metrics(trials[0].name)
    assert [(r.metric_name, r.value) for r in rows] == [("objective", "1.0")]
    lines = list(client.get_job_logs("readable", trials[0].name))
    assert lines[0] == f"trial {trials[0].name} custom yes python 3.{sys.version_info[1]}"
    assert list(client.get_job_logs("readable"))[-1] == "objective=1.0"  # the best trial's
    with pytest.raises(NotFoundError):
        client.get_experiment("missing")
    # tune()'s objective lives in the process that called it: no runner can be started for it here
    with pytest.raises(ValidationError, match=r"started by katib.tune\(\).*call tune\(\.\.\., name='readable'\) again"):
        client.edit_experiment_budget("readable", max_trial_count=5)
    assert client.get_experiment("readable").spec.max_trial_count == 3  # refused before anything was written
    with pytest.raises(ValueError, match="needs the Kubernetes backend"):
        client.list_suggestions()
    client.delete_experiment("readable")
    assert client.list_experiments() == []
