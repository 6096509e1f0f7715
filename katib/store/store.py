"""The store: experiments, trials and their observation rows in one SQL database.

Every method runs in its own short transaction and may be called from any thread; the
engine's pool hands each call a connection. ``Store.transaction()`` groups the calls one
thread makes into one transaction instead (the local runner commits a finished trial, its
last metrics and the experiment's new status at once). Names are namespaced (default
``"default"``) except observation rows, which are keyed by trial name alone as upstream's are.

The statements of the calls the runner makes for every trial are built once, with bound
parameters, so SQLAlchemy reuses their compiled form instead of building, hashing and
looking up a new statement per call.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, bindparam, delete, insert, select, text, update
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import URL
from sqlalchemy.exc import IntegrityError

from katib.api.model import Experiment, Trial
from katib.api.observation import MetricLog
from katib.errors import AlreadyExistsError, NotFoundError
from katib.store import migrate
from katib.store.engine import WRITE, make_engine, resolve_url
from katib.store.models import ExperimentRow, ObservationRow, TrialRow

__all__ = ["Store", "DEFAULT_NAMESPACE", "EXPERIMENT_LABEL"]

log = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "default"
# The label upstream puts on every Trial naming its experiment.
EXPERIMENT_LABEL = "katib.kubeflow.org/experiment"

# Core tables: plain INSERT/SELECT statements, no ORM unit of work to pay for.
_EXP = cast(Table, ExperimentRow.__table__)
_TRIAL = cast(Table, TrialRow.__table__)
_OBS = cast(Table, ObservationRow.__table__)


def _utc(ts: datetime) -> datetime:
    """Naive UTC for the database; naive input is taken to be UTC already."""
    if ts.tzinfo is not None:
        ts = ts.astimezone(timezone.utc).replace(tzinfo=None)
    return ts


def _aware(ts: datetime) -> datetime:
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts


def _rfc3339(ts: datetime) -> str:
    return _aware(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ns(namespace: str | None) -> str:
    return namespace or DEFAULT_NAMESPACE


def _meta(obj: Experiment | Trial, created: datetime) -> dict[str, Any]:
    """The object's metadata as stored: name, namespace and creation time filled in."""
    meta = obj.metadata.to_dict()
    meta["namespace"] = _ns(obj.metadata.namespace)
    meta.setdefault("creationTimestamp", _rfc3339(created))
    meta.setdefault("uid", str(uuid.uuid4()))
    return meta


def _status(obj: Experiment | Trial) -> dict[str, Any] | None:
    return obj.status.to_dict() if obj.status is not None else None


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


# The per-trial statements, built once (see the module docstring). Bound parameter names
# must differ from column names in UPDATE statements, hence the ``k_`` prefix.
_EXP_KEY = (_EXP.c.namespace == bindparam("k_ns"), _EXP.c.name == bindparam("k_name"))
_EXPERIMENT_ID = select(_EXP.c.id).where(*_EXP_KEY)
_INSERT_TRIAL = insert(_TRIAL)
_TRIAL_KEY = (_TRIAL.c.namespace == bindparam("k_ns"), _TRIAL.c.name == bindparam("k_name"))
_UPDATE_TRIAL = update(_TRIAL).where(*_TRIAL_KEY).values(
    status=bindparam("status"), state=bindparam("state"), updated=bindparam("updated"))
_UPDATE_TRIAL_META = _UPDATE_TRIAL.values(meta=bindparam("meta"))
_UPDATE_EXPERIMENT_STATUS = update(_EXP).where(*_EXP_KEY).values(
    status=bindparam("status"), updated=bindparam("updated"))


class Store:
    """Experiments, trials and observations in SQLite (default), PostgreSQL or MySQL.

    ``url`` is an SQLAlchemy URL; default ``$KATIB_DB_URL`` or ``sqlite:///~/.katib/katib.db``.
    The schema is created or upgraded on construction unless ``skip_init`` (then call
    ``migrate()`` yourself, or point the store at a database someone else migrated).
    In-memory SQLite (``sqlite://``) shares one connection: fine for tests, not for threads.
    """

    def __init__(self, url: str | URL | None = None, *, skip_init: bool = False,
                 busy_timeout: float = 30.0, **engine_options: Any) -> None:
        self.url = resolve_url(url)
        self.engine: Engine = make_engine(self.url, busy_timeout, **engine_options)
        self._local = threading.local()  # .open, .conn: this thread's transaction()
        if not skip_init:
            self.migrate()

    # -- lifecycle -------------------------------------------------------------------------

    def migrate(self, revision: str = migrate.HEAD) -> None:
        """Upgrade the schema to ``revision`` (default newest), keeping existing data."""
        migrate.upgrade(self.engine, revision)

    def ping(self) -> None:
        """Run ``SELECT 1``; raises the driver's error when the database is unreachable."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url.render_as_string()!r})"

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Make the store calls this thread makes inside the block one write transaction:
        committed together when the block ends, or not at all when it raises. Reads in the
        block see its writes. The transaction (and on SQLite the write lock) begins with the
        first call, not with the block. A nested block joins the outer one; other threads
        are not affected. Let an error raised by a call in the block end the block: after a
        database error PostgreSQL refuses the rest of the transaction."""
        local = self._local
        if getattr(local, "open", False):
            yield
            return
        local.open, local.conn = True, None
        try:
            yield
            if local.conn is not None:
                local.conn.commit()
        finally:
            conn, local.open, local.conn = local.conn, False, None
            if conn is not None:
                conn.close()  # rolls back what was not committed

    def _joined(self) -> Connection | None:
        """This thread's open ``transaction()``'s connection, begun on first use; None
        outside one."""
        local = self._local
        if not getattr(local, "open", False):
            return None
        if local.conn is None:
            conn = self.engine.connect().execution_options(**{WRITE: True})
            try:
                conn.begin()
            except BaseException:
                conn.close()
                raise
            local.conn = conn
        return cast(Connection, local.conn)

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        joined = self._joined()
        if joined is not None:
            yield joined
            return
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        joined = self._joined()
        if joined is not None:
            yield joined
            return
        with self.engine.connect() as conn:
            conn = conn.execution_options(**{WRITE: True})
            with conn.begin():
                yield conn

    # -- experiments -----------------------------------------------------------------------

    def create_experiment(self, experiment: Experiment) -> Experiment:
        """Store a new experiment; returns it with uid and creation time filled in.
        Raises AlreadyExistsError when the namespace has one of that name."""
        name, ns = experiment.name, _ns(experiment.metadata.namespace)
        if not name:
            raise ValueError("metadata.name: an experiment needs a name")
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        meta = _meta(experiment, now)
        try:
            with self._write() as conn:
                conn.execute(insert(_EXP).values(
                    namespace=ns, name=name, uid=meta["uid"], meta=meta,
                    spec=experiment.spec.to_dict(), status=_status(experiment),
                    created=now, updated=now,
                ))
        except IntegrityError as e:
            raise AlreadyExistsError(f"experiment {ns}/{name} exists already") from e
        return self._experiment(meta, experiment.spec.to_dict(), _status(experiment))

    def get_experiment(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> Experiment:
        with self._read() as conn:
            row = conn.execute(select(_EXP.c.meta, _EXP.c.spec, _EXP.c.status).where(
                _EXP.c.namespace == _ns(namespace), _EXP.c.name == name)).first()
        if row is None:
            raise NotFoundError(f"experiment {_ns(namespace)}/{name} not found")
        return self._experiment(row.meta, row.spec, row.status)

    def list_experiments(self, namespace: str | None = None) -> list[Experiment]:
        """Experiments in creation order; all namespaces when ``namespace`` is None."""
        query = select(_EXP.c.meta, _EXP.c.spec, _EXP.c.status).order_by(_EXP.c.id)
        if namespace is not None:
            query = query.where(_EXP.c.namespace == namespace)
        with self._read() as conn:
            return [self._experiment(r.meta, r.spec, r.status) for r in conn.execute(query)]

    def update_experiment(self, experiment: Experiment) -> None:
        """Replace the experiment's spec, status, labels and annotations."""
        name, ns = experiment.name, _ns(experiment.metadata.namespace)
        with self._write() as conn:
            row = conn.execute(select(_EXP.c.id, _EXP.c.meta, _EXP.c.created).where(
                _EXP.c.namespace == ns, _EXP.c.name == name)).first()
            if row is None:
                raise NotFoundError(f"experiment {ns}/{name} not found")
            meta = _meta(experiment, row.created)
            meta["uid"], meta["creationTimestamp"] = row.meta["uid"], row.meta["creationTimestamp"]
            conn.execute(update(_EXP).where(_EXP.c.id == row.id).values(
                meta=meta, spec=experiment.spec.to_dict(), status=_status(experiment),
                updated=_now(),
            ))

    def edit_experiment(self, name: str, namespace: str, change: Callable[[Experiment], None]) -> Experiment:
        """Read the experiment, let ``change`` edit its spec, labels or annotations, and write
        those back, in one transaction with the row locked: two editors (a dashboard raising
        the budget, a runner clearing a stop request) never undo each other. The status is
        neither written nor lost: it is its runner's to write. Returns the edited experiment."""
        ns = _ns(namespace)
        with self._write() as conn:
            row = conn.execute(select(_EXP.c.id, _EXP.c.meta, _EXP.c.spec, _EXP.c.status).where(
                _EXP.c.namespace == ns, _EXP.c.name == name).with_for_update()).first()
            if row is None:
                raise NotFoundError(f"experiment {ns}/{name} not found")
            experiment = self._experiment(row.meta, row.spec, row.status)
            change(experiment)
            meta = experiment.metadata.to_dict()
            meta.update(namespace=ns, name=name, uid=row.meta["uid"],
                        creationTimestamp=row.meta["creationTimestamp"])
            conn.execute(update(_EXP).where(_EXP.c.id == row.id).values(
                meta=meta, spec=experiment.spec.to_dict(), updated=_now()))
        return experiment

    def update_experiment_status(self, experiment: Experiment) -> None:
        """Replace the experiment's status only (what a runner changes on every loop)."""
        name, ns = experiment.name, _ns(experiment.metadata.namespace)
        with self._write() as conn:
            result = conn.execute(_UPDATE_EXPERIMENT_STATUS, {
                "k_ns": ns, "k_name": name, "status": _status(experiment), "updated": _now()})
        if result.rowcount == 0:
            raise NotFoundError(f"experiment {ns}/{name} not found")

    def delete_experiment(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> None:
        """Delete the experiment, its trials and their observations."""
        ns = _ns(namespace)
        with self._write() as conn:
            exp_id = conn.execute(select(_EXP.c.id).where(
                _EXP.c.namespace == ns, _EXP.c.name == name)).scalar()
            if exp_id is None:
                raise NotFoundError(f"experiment {ns}/{name} not found")
            trial_names = select(_TRIAL.c.name).where(_TRIAL.c.experiment_id == exp_id)
            # MySQL refuses a DELETE whose subquery reads the same table; this one reads trials.
            conn.execute(delete(_OBS).where(_OBS.c.trial_name.in_(trial_names)))
            conn.execute(delete(_TRIAL).where(_TRIAL.c.experiment_id == exp_id))
            conn.execute(delete(_EXP).where(_EXP.c.id == exp_id))

    @staticmethod
    def _experiment(meta: dict[str, Any], spec: dict[str, Any],
                    status: dict[str, Any] | None) -> Experiment:
        data: dict[str, Any] = {"metadata": meta, "spec": spec}
        if status is not None:
            data["status"] = status
        return Experiment.from_dict(data)  # type: ignore[no-any-return]

    # -- trials ----------------------------------------------------------------------------

    def create_trial(self, trial: Trial, experiment_name: str | None = None) -> Trial:
        """Store a new trial of ``experiment_name`` (default: the trial's
        ``katib.kubeflow.org/experiment`` label) in the trial's namespace. Raises
        NotFoundError for an unknown experiment, AlreadyExistsError for a taken name."""
        name, ns = trial.name, _ns(trial.metadata.namespace)
        experiment_name = experiment_name or trial.metadata.labels.get(EXPERIMENT_LABEL)
        if not name:
            raise ValueError("metadata.name: a trial needs a name")
        if not experiment_name:
            raise ValueError(f"metadata.labels: trial {name} needs the {EXPERIMENT_LABEL} label "
                             "or an explicit experiment_name")
        now = _now()
        meta = _meta(trial, now)
        spec, status = trial.spec.to_dict(), _status(trial)
        try:
            with self._write() as conn:
                exp_id = conn.execute(_EXPERIMENT_ID, {"k_ns": ns, "k_name": experiment_name}).scalar()
                if exp_id is None:
                    raise NotFoundError(f"experiment {ns}/{experiment_name} of trial {name} "
                                        "not found")
                conn.execute(_INSERT_TRIAL, {
                    "namespace": ns, "name": name, "experiment_id": exp_id, "uid": meta["uid"],
                    "state": trial.status.state, "meta": meta, "spec": spec, "status": status,
                    "created": now, "updated": now,
                })
        except IntegrityError as e:
            raise AlreadyExistsError(f"trial {ns}/{name} exists already") from e
        return self._trial(meta, spec, status)  # fresh dicts: nothing shared with ``trial``

    def get_trial(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> Trial:
        with self._read() as conn:
            row = conn.execute(select(_TRIAL.c.meta, _TRIAL.c.spec, _TRIAL.c.status).where(
                _TRIAL.c.namespace == _ns(namespace), _TRIAL.c.name == name)).first()
        if row is None:
            raise NotFoundError(f"trial {_ns(namespace)}/{name} not found")
        return self._trial(row.meta, row.spec, row.status)

    def list_trials(self, experiment_name: str, namespace: str = DEFAULT_NAMESPACE,
                    states: Collection[str] | None = None) -> list[Trial]:
        """The experiment's trials in creation order, optionally only those whose state
        (``TrialStatus.state``: Succeeded, Running, Pending, ...) is in ``states``."""
        return [self._trial(d["metadata"], d["spec"], d["status"])
                for d in self.list_trial_documents(experiment_name, namespace, states)]

    def list_trial_documents(self, experiment_name: str, namespace: str = DEFAULT_NAMESPACE,
                             states: Collection[str] | None = None) -> list[dict[str, Any]]:
        """``list_trials`` as stored: ``{"metadata", "spec", "status"}`` dicts with upstream's
        field names, not decoded into Trials. Decoding is most of the cost of reading
        thousands of trials; a reader that needs a few fields (the dashboard's plots) reads
        these."""
        ns = _ns(namespace)
        query = (
            select(_TRIAL.c.meta, _TRIAL.c.spec, _TRIAL.c.status)
            .join(_EXP, _EXP.c.id == _TRIAL.c.experiment_id)
            .where(_EXP.c.namespace == ns, _EXP.c.name == experiment_name)
            .order_by(_TRIAL.c.id)
        )
        if states is not None:
            query = query.where(_TRIAL.c.state.in_(list(states)))
        with self._read() as conn:
            return [{"metadata": r.meta, "spec": r.spec, "status": r.status or {}} for r in conn.execute(query)]

    def update_trial(self, trial: Trial) -> None:
        """Replace the trial's status (and so its state) and its labels and annotations
        (the runner marks interrupted trials there); name, uid and creation time stay."""
        ns = _ns(trial.metadata.namespace)
        now = _now()
        values: dict[str, Any] = {"k_ns": ns, "k_name": trial.name, "status": _status(trial),
                                  "state": trial.status.state, "updated": now}
        statement = _UPDATE_TRIAL
        if trial.metadata.creation_timestamp and trial.metadata.uid:
            values["meta"] = _meta(trial, now)
            statement = _UPDATE_TRIAL_META
        with self._write() as conn:
            result = conn.execute(statement, values)
        if result.rowcount == 0:
            raise NotFoundError(f"trial {ns}/{trial.name} not found")

    def trials_version(self, experiment_name: str, namespace: str = DEFAULT_NAMESPACE) -> tuple[int, datetime | None]:
        """(count, last update time) of the experiment's trials: changes whenever one is
        created or updated, so a reader that keeps trials knows when to read again."""
        from katib.store import brief

        with self._read() as conn:
            return brief.trials_version(conn, experiment_name, _ns(namespace))

    def list_trials_brief(self, experiment_name: str, namespace: str = DEFAULT_NAMESPACE,
                          updated_since: datetime | None = None, newest: int | None = None) -> list[Trial]:
        """The experiment's trials in creation order with only what tables and plots read
        (name, creation time, assignments, start and completion time, observation, and the
        condition that gives the state), several times faster than ``list_trials``;
        ``updated_since``: only those created or updated since then; ``newest``: only the
        last N created (see ``katib.store.brief``)."""
        from katib.store import brief

        with self._read() as conn:
            return brief.list_trials_brief(conn, experiment_name, _ns(namespace), updated_since, newest)

    @staticmethod
    def _trial(meta: dict[str, Any], spec: dict[str, Any],
               status: dict[str, Any] | None) -> Trial:
        return Trial.from_dict(  # type: ignore[no-any-return]
            {"metadata": meta, "spec": spec, "status": status or {}})

    # -- observations ----------------------------------------------------------------------

    def report_observations(self, trial_name: str, logs: Sequence[MetricLog]) -> int:
        """Append rows for ``trial_name`` in one batched insert; returns how many were given.
        A row whose (trial, metric, position) is stored already is a repeat (a log read
        again after a crash, a retried push) and is skipped; rows without a position are
        always appended."""
        if not trial_name:
            raise ValueError("trial_name: observations need the trial's name")
        rows = [(trial_name, _utc(m.timestamp), m.metric_name, m.value, m.step, m.position)
                for m in logs]
        if not rows:  # upstream builds invalid SQL here; we do nothing
            return 0
        with self._write() as conn:
            _insert_observations(conn, rows)
        return len(rows)

    def get_observations(self, trial_name: str, metric_name: str | None = None,
                         start: datetime | None = None, end: datetime | None = None,
                         ) -> list[MetricLog]:
        """Rows of ``trial_name`` (one metric, or all when ``metric_name`` is None or empty)
        with ``start <= time <= end``, ordered by time then insertion."""
        query = select(_OBS.c.metric_name, _OBS.c.value, _OBS.c.time, _OBS.c.step,
                       _OBS.c.position).where(_OBS.c.trial_name == trial_name)
        if metric_name:
            query = query.where(_OBS.c.metric_name == metric_name)
        if start is not None:
            query = query.where(_OBS.c.time >= _utc(start))
        if end is not None:
            query = query.where(_OBS.c.time <= _utc(end))
        query = query.order_by(_OBS.c.time, _OBS.c.id)
        with self._read() as conn:
            return [
                MetricLog(r.metric_name, r.value, _aware(r.time) if r.time else _ZERO, r.step,
                          r.position)
                for r in conn.execute(query).all()
            ]

    def delete_observations(self, trial_name: str) -> int:
        """Delete every row of ``trial_name``; returns how many there were."""
        with self._write() as conn:
            return conn.execute(delete(_OBS).where(_OBS.c.trial_name == trial_name)).rowcount


_OBS_COLUMNS = ("trial_name", "time", "metric_name", "value", "step", "position")


def _sqlite_time(ts: datetime) -> str:
    """SQLAlchemy's storage format for DateTime on SQLite (so its comparisons still hold)."""
    return (f"{ts.year:04d}-{ts.month:02d}-{ts.day:02d} "
            f"{ts.hour:02d}:{ts.minute:02d}:{ts.second:02d}.{ts.microsecond:06d}")


def _insert_observations(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    """One batched insert that skips repeats (rows whose (trial, metric, position) is
    stored already, see ``ObservationRow``). Metrics are the hot write path (every trial
    reports all the time), and SQLAlchemy's per-row parameter processing costs more than
    SQLite's insert itself, so SQLite and PyMySQL get the driver's executemany directly:
    sqlite3 prepares the statement once, PyMySQL rewrites it into multi-row INSERTs, and
    psycopg2's execute_values sends multi-row VALUES pages. Other drivers go through
    SQLAlchemy.

    Repeats are skipped by the unique index, not looked up first: one statement, no race
    between two writers. ``ON CONFLICT DO NOTHING`` (SQLite, PostgreSQL) and MySQL's no-op
    ``ON DUPLICATE KEY UPDATE`` skip only the conflicting rows; ``INSERT OR IGNORE`` and
    ``INSERT IGNORE`` are not used because they would also swallow other errors."""
    dialect, driver = conn.dialect.name, conn.dialect.driver
    columns = ", ".join(_OBS_COLUMNS)
    if dialect == "sqlite":
        conn.exec_driver_sql(
            f"INSERT INTO observation_logs ({columns}) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            [(r[0], _sqlite_time(r[1]), *r[2:]) for r in rows])
    elif dialect in ("mysql", "mariadb") and driver == "pymysql":
        conn.exec_driver_sql(
            f"INSERT INTO observation_logs ({columns}) VALUES (%s, %s, %s, %s, %s, %s)"
            " ON DUPLICATE KEY UPDATE id = id", rows)
    elif dialect == "postgresql" and driver == "psycopg2":
        # SQLAlchemy sends an ON CONFLICT insert row by row (its insertmanyvalues batching
        # leaves such statements out): 4-5x slower than plain multi-row VALUES. psycopg2's
        # execute_values sends the pages itself, on the transaction's own connection.
        from psycopg2.extras import execute_values  # type: ignore[import-untyped]

        cursor = conn.connection.cursor()
        try:
            execute_values(cursor, f"INSERT INTO observation_logs ({columns}) VALUES %s ON CONFLICT DO NOTHING",
                           rows, page_size=1000)
        finally:
            cursor.close()
    else:
        params = [dict(zip(_OBS_COLUMNS, r)) for r in rows]
        if dialect == "postgresql":
            conn.execute(postgresql.insert(_OBS).on_conflict_do_nothing(), params)
        elif dialect in ("mysql", "mariadb"):
            conn.execute(mysql.insert(_OBS).on_duplicate_key_update(id=_OBS.c.id), params)
        else:
            conn.execute(insert(_OBS), params)


# Upstream's "no time" (rows its db-manager wrote with a NULL time).
_ZERO = datetime(1, 1, 1, tzinfo=timezone.utc)
