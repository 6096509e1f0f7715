"""Store.edit_experiment on every backend: what KatibClient and a runner use to change an
experiment's budget and annotations beside the runner writing its status."""

from __future__ import annotations

import threading

import pytest

from katib.api.model import Experiment, ExperimentStatus
from katib.errors import NotFoundError
from katib.store import Store
from tests.store.test_store import experiment


def test_edit_changes_spec_and_annotations_and_keeps_the_status(store: Store) -> None:
    created = store.create_experiment(experiment())
    e = store.get_experiment("exp")
    e.status = ExperimentStatus(trials=2, running_trial_list=["t1", "t2"])
    store.update_experiment_status(e)

    def change(x: Experiment) -> None:
        x.spec.max_trial_count = 7
        x.metadata.annotations["note"] = "raised"
        x.metadata.uid = "forged"  # identity is not editable
    edited = store.edit_experiment("exp", "default", change)
    assert edited.spec.max_trial_count == 7
    got = store.get_experiment("exp")
    assert got.spec.max_trial_count == 7 and got.metadata.annotations == {"note": "raised"}
    assert got.status == e.status
    assert got.metadata.uid == created.metadata.uid and got.metadata.labels == {"team": "a"}

    def fails(x: Experiment) -> None:
        x.spec.max_trial_count = 99
        raise RuntimeError("changed my mind")
    with pytest.raises(RuntimeError):
        store.edit_experiment("exp", "default", fails)
    assert store.get_experiment("exp").spec.max_trial_count == 7
    with pytest.raises(NotFoundError, match="default/missing"):
        store.edit_experiment("missing", "default", change)


def test_concurrent_edits_lose_nothing_and_leave_the_status_alone(store: Store) -> None:
    """Two editors incrementing a counter while a runner writes the status: every edit
    counts (the row is locked between read and write) and the last status stays."""
    store.create_experiment(experiment())
    rounds = 15
    errors: list[BaseException] = []

    def increment(x: Experiment) -> None:
        x.metadata.annotations["count"] = str(int(x.metadata.annotations.get("count", "0")) + 1)

    def editor() -> None:
        try:
            for _ in range(rounds):
                store.edit_experiment("exp", "default", increment)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def runner() -> None:
        try:
            e = store.get_experiment("exp")
            for i in range(rounds):
                e.status = ExperimentStatus(trials=i)
                store.update_experiment_status(e)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=editor), threading.Thread(target=editor), threading.Thread(target=runner)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    got = store.get_experiment("exp")
    assert got.metadata.annotations["count"] == str(2 * rounds)
    assert got.status is not None and got.status.trials == rounds - 1
