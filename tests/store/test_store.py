"""The Store API on every backend: experiments, trials, observations, concurrency."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from katib.api.model import (
    Condition,
    Experiment,
    ExperimentStatus,
    Metric,
    Observation,
    ObjectiveSpec,
    ParameterAssignment,
    Trial,
    TrialStatus,
)
from katib.api.observation import MetricLog
from katib.errors import AlreadyExistsError, NotFoundError
from katib.store import EXPERIMENT_LABEL, Store

T0 = datetime(2024, 3, 4, 5, 6, 7, 123456, tzinfo=timezone.utc)


def experiment(name: str = "exp", namespace: str | None = None) -> Experiment:
    e = Experiment()
    e.metadata.name = name
    e.metadata.namespace = namespace
    e.metadata.labels = {"team": "a"}
    e.spec.max_trial_count = 3
    e.spec.objective = ObjectiveSpec(type="minimize", objective_metric_name="loss")
    return e


def trial(name: str, exp: str = "exp", namespace: str | None = None,
          condition: str | None = None) -> Trial:
    t = Trial()
    t.metadata.name = name
    t.metadata.namespace = namespace
    t.metadata.labels = {EXPERIMENT_LABEL: exp}
    t.spec.parameter_assignments = [ParameterAssignment("lr", "0.1")]
    if condition:
        t.status = TrialStatus(conditions=[Condition(type=condition)])
    return t


# -- experiments --------------------------------------------------------------------------

def test_experiment_round_trip(store: Store) -> None:
    created = store.create_experiment(experiment())
    got = store.get_experiment("exp")
    assert got.spec == experiment().spec
    assert got.metadata.labels == {"team": "a"}
    assert got.metadata.namespace == "default"
    assert got.metadata.uid == created.metadata.uid and got.metadata.uid
    assert got.metadata.creation_timestamp == created.metadata.creation_timestamp
    assert got.status is None


def test_experiment_duplicate_and_missing(store: Store) -> None:
    store.create_experiment(experiment())
    with pytest.raises(AlreadyExistsError):
        store.create_experiment(experiment())
    with pytest.raises(NotFoundError):
        store.get_experiment("nope")
    with pytest.raises(NotFoundError):
        store.update_experiment(experiment("nope"))
    with pytest.raises(NotFoundError):
        store.delete_experiment("nope")


def test_experiment_names_are_per_namespace_and_case_sensitive(store: Store) -> None:
    store.create_experiment(experiment("exp", "a"))
    store.create_experiment(experiment("exp", "b"))
    store.create_experiment(experiment("Exp", "b"))
    store.create_experiment(experiment("other"))
    assert [e.name for e in store.list_experiments("b")] == ["exp", "Exp"]
    assert [(e.metadata.namespace, e.name) for e in store.list_experiments()] == [
        ("a", "exp"), ("b", "exp"), ("b", "Exp"), ("default", "other")]
    with pytest.raises(NotFoundError):
        store.get_experiment("exp")  # default namespace


def test_update_experiment_spec_and_status(store: Store) -> None:
    created = store.create_experiment(experiment())
    e = store.get_experiment("exp")
    e.spec.max_trial_count = 10
    e.status = ExperimentStatus(conditions=[Condition(type="Created", reason="ExperimentCreated")],
                                trials=2, succeeded_trial_list=["t1"])
    e.metadata.uid = "ignored"  # identity does not change on update
    store.update_experiment(e)
    got = store.get_experiment("exp")
    assert got.spec.max_trial_count == 10
    assert got.status == e.status
    assert got.metadata.uid == created.metadata.uid


def test_delete_experiment_cascades_to_trials_and_observations(store: Store) -> None:
    store.create_experiment(experiment())
    store.create_experiment(experiment("keep"))
    store.create_trial(trial("t1"))
    store.create_trial(trial("k1", "keep"))
    store.report_observations("t1", [MetricLog("loss", "1", T0)])
    store.report_observations("k1", [MetricLog("loss", "2", T0)])
    store.delete_experiment("exp")
    with pytest.raises(NotFoundError):
        store.get_trial("t1")
    assert store.get_observations("t1") == []
    assert [o.value for o in store.get_observations("k1")] == ["2"]
    assert [t.name for t in store.list_trials("keep")] == ["k1"]


def test_update_experiment_status_replaces_only_the_status(store: Store) -> None:
    created = store.create_experiment(experiment())
    e = store.get_experiment("exp")
    e.spec.max_trial_count = 99  # not written: only the status is
    e.metadata.labels = {"team": "b"}
    e.status = ExperimentStatus(trials=1, running_trial_list=["t1"])
    store.update_experiment_status(e)
    got = store.get_experiment("exp")
    assert got.status == e.status
    assert got.spec.max_trial_count == 3 and got.metadata.labels == {"team": "a"}
    assert got.metadata.uid == created.metadata.uid
    with pytest.raises(NotFoundError):
        store.update_experiment_status(experiment("nope"))


# -- trials -------------------------------------------------------------------------------

def test_trial_round_trip_and_order(store: Store) -> None:
    store.create_experiment(experiment())
    names = ["t-b", "t-a", "t-c"]
    for n in names:
        store.create_trial(trial(n))
    assert [t.name for t in store.list_trials("exp")] == names  # creation order
    got = store.get_trial("t-a")
    assert got.spec.assignments == {"lr": "0.1"}
    assert got.metadata.labels[EXPERIMENT_LABEL] == "exp"


def test_trial_errors(store: Store) -> None:
    store.create_experiment(experiment())
    store.create_trial(trial("t1"))
    with pytest.raises(AlreadyExistsError):
        store.create_trial(trial("t1"))
    with pytest.raises(NotFoundError):
        store.create_trial(trial("t2", exp="nope"))
    with pytest.raises(NotFoundError):
        store.get_trial("t2")
    with pytest.raises(NotFoundError):
        store.update_trial(trial("t2"))
    unlabelled = Trial()
    unlabelled.metadata.name = "t3"
    with pytest.raises(ValueError, match=EXPERIMENT_LABEL):
        store.create_trial(unlabelled)
    store.create_trial(unlabelled, experiment_name="exp")
    assert [t.name for t in store.list_trials("exp")] == ["t1", "t3"]


def test_trials_are_namespaced(store: Store) -> None:
    store.create_experiment(experiment("exp", "a"))
    store.create_experiment(experiment("exp", "b"))
    store.create_trial(trial("t1", namespace="a"))
    store.create_trial(trial("t1", namespace="b"))
    with pytest.raises(NotFoundError):
        store.create_trial(trial("t2", namespace="c"))
    assert [t.metadata.namespace for t in store.list_trials("exp", "b")] == ["b"]


def test_update_trial_status_and_filter_by_state(store: Store) -> None:
    store.create_experiment(experiment())
    store.create_trial(trial("t1", condition="Running"))
    store.create_trial(trial("t2"))
    store.create_trial(trial("t3", condition="Running"))
    t1 = store.get_trial("t1")
    t1.status.conditions.append(Condition(type="Succeeded"))
    t1.status.observation = Observation([Metric("loss", "0.1", "0.5", "0.2")])
    store.update_trial(t1)
    assert store.get_trial("t1").status == t1.status
    assert [t.name for t in store.list_trials("exp", states={"Running"})] == ["t3"]
    assert [t.name for t in store.list_trials("exp", states={"Succeeded", "Pending"})] == [
        "t1", "t2"]
    assert store.list_trials("exp", states=[]) == []


# -- observations -------------------------------------------------------------------------

def rows(values: list[tuple[str, str, float]], step: bool = False) -> list[MetricLog]:
    return [MetricLog(n, v, T0 + timedelta(seconds=s), i + 1 if step else None)
            for i, (n, v, s) in enumerate(values)]


def test_observations_order_filter_and_precision(store: Store) -> None:
    logs = rows([("loss", "0.5", 2), ("acc", "0.1", 1), ("loss", "0.7", 0.000001),
                 ("loss", "0.6", 2), ("loss", "0.4", 3)], step=True)
    assert store.report_observations("t1", logs) == 5
    got = store.get_observations("t1", "loss")
    assert [(o.value, o.step) for o in got] == [("0.7", 3), ("0.5", 1), ("0.6", 4), ("0.4", 5)]
    assert got[0].timestamp == T0 + timedelta(microseconds=1)  # microseconds survive
    assert got[0].timestamp.tzinfo is not None
    assert [o.metric_name for o in store.get_observations("t1")] == [
        "loss", "acc", "loss", "loss", "loss"]
    assert store.get_observations("t1", "") == store.get_observations("t1")
    window = store.get_observations("t1", "loss", start=T0 + timedelta(seconds=2),
                                    end=T0 + timedelta(seconds=2))
    assert [o.value for o in window] == ["0.5", "0.6"]
    assert store.get_observations("other") == []


def test_observation_times_in_other_zones_are_stored_as_utc(store: Store) -> None:
    plus2 = timezone(timedelta(hours=2))
    store.report_observations("t1", [MetricLog("loss", "1", datetime(2024, 1, 1, 2, tzinfo=plus2))])
    assert store.get_observations("t1")[0].timestamp == datetime(2024, 1, 1, tzinfo=timezone.utc)


def test_observation_names_are_case_sensitive_and_unicode(store: Store) -> None:
    store.report_observations("t1", rows([("Loss", "1", 0), ("loss", "2", 1), ("précision", "3", 2)]))
    assert [o.value for o in store.get_observations("t1", "loss")] == ["2"]
    assert [o.value for o in store.get_observations("t1", "précision")] == ["3"]
    assert store.get_observations("T1") == []


def test_report_nothing_and_delete(store: Store) -> None:
    assert store.report_observations("t1", []) == 0
    store.report_observations("t1", rows([("loss", "1", 0), ("loss", "2", 1)]))
    store.report_observations("t2", rows([("loss", "3", 0)]))
    assert store.delete_observations("t1") == 2
    assert store.get_observations("t1") == []
    assert len(store.get_observations("t2")) == 1
    with pytest.raises(ValueError):
        store.report_observations("", rows([("loss", "1", 0)]))


def test_a_repeated_position_is_stored_once(store: Store) -> None:
    """A log read again after a crash, or a retried push, stores nothing twice: the first
    copy of each (trial, metric, position) stays, even inside one batch."""
    first = [MetricLog("loss", f"0.{9 - i}", T0 + timedelta(seconds=i), i, i) for i in range(1, 4)]
    store.report_observations("t1", first)
    again = [MetricLog("loss", "0.0", T0 + timedelta(seconds=9), 3, 3),  # a repeat, another value
             MetricLog("loss", "0.5", T0 + timedelta(seconds=4), 4, 4),
             MetricLog("loss", "0.5", T0 + timedelta(seconds=4), 4, 4),
             MetricLog("acc", "0.1", T0, 3, 3)]  # another metric: not a repeat
    store.report_observations("t1", first + again)
    store.report_observations("t2", first)  # another trial: not a repeat
    got = store.get_observations("t1", "loss")
    assert [(o.value, o.step, o.position) for o in got] == [
        ("0.8", 1, 1), ("0.7", 2, 2), ("0.6", 3, 3), ("0.5", 4, 4)]
    assert [o.value for o in store.get_observations("t1", "acc")] == ["0.1"]
    assert len(store.get_observations("t2")) == 3


def test_rows_without_a_position_are_all_kept(store: Store) -> None:
    """Upstream's clients (gRPC ReportObservationLog) send no position: every row counts."""
    logs = [MetricLog("loss", "0.5", T0), MetricLog("loss", "0.5", T0)]
    store.report_observations("t1", logs)
    store.report_observations("t1", logs)
    assert [o.position for o in store.get_observations("t1")] == [None] * 4


def test_repeats_inside_an_open_transaction_are_skipped(store: Store) -> None:
    with store.transaction():
        store.report_observations("t1", [MetricLog("loss", "1", T0, 1, 1)])
        store.report_observations("t1", [MetricLog("loss", "1", T0, 1, 1), MetricLog("loss", "2", T0, 2, 2)])
        # PostgreSQL refuses the rest of a transaction after an error: there was none.
        store.report_observations("t1", [MetricLog("loss", "3", T0, 3, 3)])
    assert [o.value for o in store.get_observations("t1")] == ["1", "2", "3"]


def test_large_batch_in_one_call(store: Store) -> None:
    logs = [MetricLog("loss", str(i), T0 + timedelta(microseconds=i), i) for i in range(5000)]
    store.report_observations("t1", logs)
    got = store.get_observations("t1", "loss")
    assert [o.step for o in got] == list(range(5000))


def test_concurrent_writers_from_threads(store: Store) -> None:
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            for i in range(20):
                store.report_observations(f"t{k}", [MetricLog("loss", str(i), T0, i)])
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(len(store.get_observations(f"t{k}")) == 20 for k in range(8))


# -- transactions -------------------------------------------------------------------------

def _finish(store: Store, name: str, value: str) -> Trial:
    """What the runner does when a trial ends: its last rows, its state, the experiment's."""
    t = store.get_trial(name)
    store.report_observations(name, [MetricLog("loss", value, T0)])
    t.status.conditions.append(Condition(type="Succeeded"))
    store.update_trial(t)
    e = store.get_experiment("exp")
    e.status = ExperimentStatus(trials=1, succeeded_trial_list=[name])
    store.update_experiment_status(e)
    return t


def test_a_transaction_commits_its_writes_together(store: Store, db_url: str) -> None:
    store.create_experiment(experiment())
    store.create_trial(trial("t1", condition="Running"))
    other = Store(db_url, skip_init=True)  # another connection, as another process would read
    try:
        with store.transaction():
            _finish(store, "t1", "0.5")
            assert store.get_trial("t1").status.state == "Succeeded"  # its own writes are visible
            assert [o.value for o in store.get_observations("t1")] == ["0.5"]
            with store.transaction():  # a nested block joins the outer one
                store.report_observations("t1", [MetricLog("acc", "0.9", T0)])
            assert other.get_observations("t1") == []  # nothing is visible outside before the end
        assert other.get_trial("t1").status.state == "Succeeded"
        assert [o.value for o in other.get_observations("t1")] == ["0.5", "0.9"]
        status = other.get_experiment("exp").status
        assert status is not None and status.succeeded_trial_list == ["t1"]
    finally:
        other.close()


def test_a_transaction_that_raises_stores_nothing(store: Store) -> None:
    store.create_experiment(experiment())
    store.create_trial(trial("t1", condition="Running"))
    with pytest.raises(RuntimeError), store.transaction():
        _finish(store, "t1", "0.5")
        raise RuntimeError("the runner died half-way")
    assert store.get_trial("t1").status.state == "Running"
    assert store.get_observations("t1") == []
    assert store.get_experiment("exp").status is None
    with pytest.raises(NotFoundError), store.transaction():
        store.report_observations("t1", [MetricLog("loss", "1", T0)])
        store.update_trial(trial("missing"))
    assert store.get_observations("t1") == []
    with store.transaction():  # the store is usable afterwards, in and out of transactions
        _finish(store, "t1", "0.4")
    assert [o.value for o in store.get_observations("t1")] == ["0.4"]


def test_a_transaction_belongs_to_its_thread(store: Store) -> None:
    store.create_experiment(experiment())
    store.create_trial(trial("t1", condition="Running"))
    seen: list[int] = []
    with store.transaction():
        store.report_observations("t1", [MetricLog("loss", "1", T0)])
        reader = threading.Thread(target=lambda: seen.append(len(store.get_observations("t1"))))
        reader.start()
        reader.join()
    assert seen == [0]  # another thread's calls run outside this thread's transaction
    assert len(store.get_observations("t1")) == 1


def test_ping_and_repr_hide_password(store: Store, db_url: str) -> None:
    store.ping()
    assert "secret" not in repr(Store("postgresql+psycopg2://u:secret@h/db", skip_init=True))


def _report_many(url: str, worker: int, count: int) -> None:
    s = Store(url)
    for i in range(count):
        s.report_observations(f"w{worker}", [MetricLog("loss", str(i), T0, i)])
    s.close()


@pytest.mark.slow
def test_concurrent_writer_processes(db_url: str) -> None:
    """The runner and trial processes write at once; nobody fails with 'database is locked',
    and concurrent first starts migrate the schema exactly once."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_report_many, args=(db_url, w, 30)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    s = Store(db_url)
    assert [len(s.get_observations(f"w{w}")) for w in range(4)] == [30, 30, 30, 30]
    s.close()


def _settings(store: Store) -> dict[str, Any]:
    with store.engine.connect() as conn:
        return {k: conn.exec_driver_sql(f"PRAGMA {k}").scalar()
                for k in ("journal_mode", "foreign_keys", "busy_timeout")}


def test_sqlite_pragmas(tmp_path: Any) -> None:
    s = Store(f"sqlite:///{tmp_path}/k.db", busy_timeout=5)
    assert _settings(s) == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 5000}
    s.close()


def test_default_url_from_env_or_home(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from katib.store import default_url

    monkeypatch.delenv("KATIB_DB_URL", raising=False)
    monkeypatch.delenv("KATIB_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_url() == "sqlite:///~/.katib/katib.db"
    s = Store()
    assert s.url.database == str(tmp_path / "home" / ".katib" / "katib.db")
    assert (tmp_path / "home" / ".katib" / "katib.db").exists()
    s.close()
    monkeypatch.setenv("KATIB_HOME", str(tmp_path / "khome"))
    assert Store().url.database == str(tmp_path / "khome" / "katib.db")
    monkeypatch.setenv("KATIB_DB_URL", f"sqlite:///{tmp_path}/env.db")
    s = Store()
    assert s.url.database == f"{tmp_path}/env.db"
    s.close()
    s = Store(f"sqlite:///{tmp_path}/arg.db")  # the argument wins over the environment
    assert s.url.database == f"{tmp_path}/arg.db"
    s.close()


def test_in_memory_sqlite_works() -> None:
    s = Store("sqlite://")
    s.create_experiment(experiment())
    assert s.get_experiment("exp").name == "exp"
    s.close()
