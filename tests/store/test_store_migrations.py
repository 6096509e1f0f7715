"""Schema migrations: upgrades keep data, the migrated schema is what the models say."""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from katib.store import Store
from katib.store.migrate import VERSION_TABLE, current_revision, downgrade, head_revision
from katib.store.models import metadata


def _insert_0001_data(store: Store) -> None:
    """Rows as revision 0001 (upstream's observation_logs columns) holds them."""
    now = datetime(2024, 1, 1, 12, 0, 0, 654321)
    with store.engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO experiments (namespace, name, uid, meta, spec, status, created, updated)"
            " VALUES ('default', 'old', 'u1', :meta, :spec, NULL, :now, :now)"),
            {"meta": '{"name": "old", "namespace": "default", "uid": "u1"}',
             "spec": '{"maxTrialCount": 5}', "now": now})
        exp_id = conn.execute(sa.text("SELECT id FROM experiments")).scalar()
        conn.execute(sa.text(
            "INSERT INTO trials (namespace, name, experiment_id, uid, state, meta, spec, status,"
            " created, updated) VALUES ('default', 'old-t1', :exp, 'u2', 'Succeeded', :meta,"
            " '{}', NULL, :now, :now)"),
            {"exp": exp_id, "now": now,
             "meta": '{"name": "old-t1", "labels": {"katib.kubeflow.org/experiment": "old"}}'})
        conn.execute(sa.text(
            "INSERT INTO observation_logs (trial_name, time, metric_name, value)"
            " VALUES ('old-t1', :t1, 'loss', '0.5'), ('old-t1', :t0, 'loss', '0.9')"),
            {"t1": now, "t0": now.replace(microsecond=0)})


def test_upgrade_from_the_first_revision_keeps_data(db_url: str) -> None:
    store = Store(db_url, skip_init=True)
    assert current_revision(store.engine) is None
    store.migrate("0001")
    assert current_revision(store.engine) == "0001"
    _insert_0001_data(store)
    store.migrate()
    assert current_revision(store.engine) == head_revision()
    logs = store.get_observations("old-t1", "loss")
    assert [(o.value, o.step) for o in logs] == [("0.9", None), ("0.5", None)]
    assert logs[1].timestamp == datetime(2024, 1, 1, 12, 0, 0, 654321, tzinfo=timezone.utc)
    assert store.get_experiment("old").spec.max_trial_count == 5
    assert [t.name for t in store.list_trials("old", states={"Succeeded"})] == ["old-t1"]
    indexes = {i["name"] for i in sa.inspect(store.engine).get_indexes("observation_logs")}
    assert "ix_observation_logs_trial_metric_time" in indexes
    store.close()


def test_migrated_schema_matches_the_models(store: Store) -> None:
    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={
            "version_table": VERSION_TABLE, "compare_type": True})
        diff = compare_metadata(ctx, metadata)
    # MariaDB reports JSON columns as LONGTEXT: a spelling difference, not a real one.
    diff = [d for d in diff if not (d[0][0] == "modify_type" and "JSON" in repr(d[0][-1])
                                    and "LONGTEXT" in repr(d[0][-2]))]
    assert diff == []


def test_init_is_idempotent_and_downgrade_works(db_url: str) -> None:
    Store(db_url).close()
    store = Store(db_url)
    assert current_revision(store.engine) == head_revision()
    downgrade(store.engine, "base")
    assert current_revision(store.engine) is None
    assert "observation_logs" not in sa.inspect(store.engine).get_table_names()
    store.migrate()
    store.report_observations("t", [])
    store.close()


UPSTREAM_DDL = {
    "mysql": "CREATE TABLE observation_logs (trial_name VARCHAR(255) NOT NULL,"
             " id INT AUTO_INCREMENT PRIMARY KEY, time DATETIME(6),"
             " metric_name VARCHAR(255) NOT NULL, value TEXT NOT NULL)",
    "postgresql": "CREATE TABLE observation_logs (trial_name VARCHAR(255) NOT NULL,"
                  " id serial PRIMARY KEY, time TIMESTAMP(6),"
                  " metric_name VARCHAR(255) NOT NULL, value TEXT NOT NULL)",
    "sqlite": "CREATE TABLE observation_logs (trial_name VARCHAR(255) NOT NULL,"
              " id INTEGER PRIMARY KEY AUTOINCREMENT, time DATETIME,"
              " metric_name VARCHAR(255) NOT NULL, value TEXT NOT NULL)",
}


def test_adopts_a_database_created_by_upstreams_db_manager(db_url: str, backend: str) -> None:
    """Swapping upstream's db-manager for ours keeps the observations it stored."""
    store = Store(db_url, skip_init=True)
    with store.engine.begin() as conn:
        conn.execute(sa.text(UPSTREAM_DDL[backend]))
        conn.execute(sa.text(
            "INSERT INTO observation_logs (trial_name, time, metric_name, value)"
            " VALUES ('t1', :t, 'loss', '0.25')"), {"t": datetime(2024, 1, 1, 0, 0, 0, 500000)})
    store.migrate()
    logs = store.get_observations("t1")
    assert [(o.value, o.timestamp, o.step) for o in logs] == [
        ("0.25", datetime(2024, 1, 1, 0, 0, 0, 500000, tzinfo=timezone.utc), None)]
    from katib.api.observation import MetricLog

    store.report_observations("t1", [MetricLog("loss", "0.2", datetime(2024, 1, 2, tzinfo=timezone.utc), 2)])
    assert [o.step for o in store.get_observations("t1", "loss")] == [None, 2]
    store.close()
