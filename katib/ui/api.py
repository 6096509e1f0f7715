"""The dashboard's JSON API. Every error answers ``{"message": ...}`` (validation errors add
``"errors": [{"path", "message"}]``, as ``katib validate`` lists them) with a status that says
what went wrong: 400 bad input, 403 actions not allowed, 404 gone, 409 exists already,
503 the store or cluster cannot be reached (retry), 500 a bug (logged by the server, never
a stack trace in the answer).

Reads
  ``GET /api/info``
      backend (local | kubernetes), namespace, what is read (store URL, password hidden, or
      cluster), whether actions are allowed and if not why.
  ``GET /api/experiments?namespace=NS&status=STATUS&q=TEXT``
      ``{"experiments": [...], "token"}``: each with status (as ``katib get experiments``
      shows it, Interrupted included), algorithm, counts (trials, done, succeeded, running,
      pending, failed, killed, earlyStopped, metricsUnavailable), maxTrialCount, best
      (trial, metric, value) and creation time, newest first; ``status`` keeps one status,
      ``q`` names containing the text.
  ``GET /api/experiments/{ns}/{name}``
      the experiment: conditions, optimum, spec as YAML, budget, counts, parameters (types
      and bounds), metric names, ``runner`` (locally: whether a runner is working on it),
      ``generation`` (moves when its trials change) and ``token``.
  ``GET /api/experiments/{ns}/{name}/trials?sort=KEY&order=asc|desc&offset=N&limit=N&f.KEY=EXPR``
      one page of the trial table, sorted and filtered on the server over every column
      (``katib.ui.table`` documents keys and filter expressions): total, matched, columns,
      rows (values as the CLI prints them).
  ``GET /api/experiments/{ns}/{name}/figures/{kind}?params=a,b&x=P&y=Q&metric=M``
      a Plotly figure ``{"data", "layout"}`` from ``katib.visualization.figures``; kind is
      history, parallel, slice, contour (x, y), importance, intermediate (metric) or edf.
  ``GET /api/experiments/{ns}/{name}/trials/{trial}``
      the trial: parameters, metrics, metrics per step (table and chart), conditions, why it
      failed (reason, message, traceback), the last lines of its log (local run directory or
      pod log), ``token``.
  ``GET /api/events?watch=experiments|experiment|trial&namespace=NS&name=E&trial=T``
      Server-sent events (``text/event-stream``): an ``update`` event carrying the watched
      resource as the matching GET returns it whenever it changed (checked every second), a
      ``problem`` event with ``{"message"}`` while it cannot be read.

Actions (403 unless allowed; requests must carry ``X-Katib-UI: 1``, which a page of another
site cannot send without the server's consent)
  ``POST /api/validate?namespace=NS`` body: Experiment YAML or JSON -> summary of the defaulted
      experiment (in NS unless its metadata names a namespace)
  ``POST /api/experiments?namespace=NS`` body: Experiment YAML or JSON -> 201 ``{"name", "namespace"}``
  ``POST /api/experiments/{ns}/{name}/budget`` body ``{"maxTrialCount": N}``
  ``POST /api/experiments/{ns}/{name}/stop``
  ``DELETE /api/experiments/{ns}/{name}``
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Callable

from katib.errors import NotFoundError
from katib.ui import actions, table, views
from katib.ui.backend import Dashboard
from katib.ui.cache import ExperimentCache
from katib.ui.charts import Charts
from katib.visualization.data import ExperimentData

__all__ = ["Reader", "token_of"]

log = logging.getLogger(__name__)

_VOLATILE = ("duration", "token")  # changes every second while running: not a reason to update a page


def token_of(payload: dict[str, Any]) -> str:
    stable = {k: v for k, v in payload.items() if k not in _VOLATILE}
    return hashlib.sha1(json.dumps(stable, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Reader:
    """The payloads of the API, as plain (blocking) functions: endpoints run them in a
    worker thread, the event stream calls them every second."""

    def __init__(self, dashboard: Dashboard, cache: ExperimentCache | None = None, charts: Charts | None = None) -> None:
        self.dashboard = dashboard
        self.cache = cache or ExperimentCache(dashboard)
        self.charts = charts or Charts()

    @property
    def settings(self) -> Any:
        return self.dashboard.settings

    def info(self) -> dict[str, Any]:
        s = self.settings
        return {"backend": s.backend, "namespace": self.dashboard.namespace, "source": s.source,
                "allowActions": s.allow_actions, "actionsNote": s.actions_note}

    def experiments(self, namespace: str, status: str = "", q: str = "") -> dict[str, Any]:
        timeout = self.settings.timeout
        exps = self.dashboard.call(lambda c: c.list_experiments(namespace, timeout=timeout))
        rows = [views.experiment_row(e) for e in exps]
        rows.sort(key=lambda r: r["created"], reverse=True)
        if status:
            rows = [r for r in rows if r["status"].lower() == status.lower()]
        if q:
            rows = [r for r in rows if q.lower() in r["name"].lower()]
        payload = {"namespace": namespace, "experiments": rows}
        payload["token"] = token_of(payload)
        # The user is about to open one of these: read the newest ahead.
        self.cache.warm([(r["namespace"], r["name"]) for r in rows[:self.cache.size // 2]])
        return payload

    def _running(self, namespace: str, name: str) -> bool | None:
        if not self.dashboard.local:
            return None
        probe: Callable[..., bool] | None = getattr(self.dashboard.client(), "is_running_locally", None)
        if probe is None:
            return None
        return bool(self.dashboard.call(lambda c: probe(name, namespace)))

    def experiment(self, namespace: str, name: str, wait: bool = True) -> dict[str, Any]:
        """The experiment page's data. ``wait=False``: when its trials have not been read yet,
        answer from the experiment alone (``generation`` None) and read them in the background,
        so the page shows its header while the table waits for them."""
        if wait or self.cache.peek(namespace, name) is not None:
            entry = self.cache.get(namespace, name)
            exp, data, generation = entry.experiment, entry.data, entry.generation
        else:
            timeout = self.settings.timeout
            exp = self.dashboard.call(lambda c: c.get_experiment(name, namespace, timeout=timeout))
            data, generation = ExperimentData.from_experiment(exp, []), None
            self.cache.warm([(namespace, name)])
        payload = views.experiment_detail(exp, running=self._running(namespace, name))
        payload.update({
            "parameters": [{"name": p.name, "type": p.type, "low": p.low, "high": p.high, "log": p.log,
                            "choices": list(p.choices)} for p in data.parameters],
            "metricNames": list(data.metric_names), "generation": generation,
        })
        payload["token"] = token_of(payload)
        return payload

    def trials(self, namespace: str, name: str, params: dict[str, str]) -> dict[str, Any]:
        filters = {k[2:]: v for k, v in params.items() if k.startswith("f.") and v.strip()}
        order = params.get("order", "asc")
        if order not in ("asc", "desc"):
            raise ValueError(f"order: expected asc or desc, got {order!r}")
        sort, offset, limit = params.get("sort") or "number", _int(params, "offset", 0), _int(params, "limit", 50)
        if sort == "number" and order == "desc" and offset == 0 and not filters and 1 <= limit <= table.MAX_LIMIT:
            newest = self._newest_page(namespace, name, limit)
            if newest is not None:
                return newest
        entry = self.cache.get(namespace, name)
        page = table.query(entry.data, sort=sort, descending=order == "desc", filters=filters, offset=offset,
                           limit=limit)
        page["generation"] = entry.generation
        return page

    def _newest_page(self, namespace: str, name: str, limit: int) -> dict[str, Any] | None:
        """The page a table opens on (newest trials first) read on its own while the
        experiment's trials have not been read yet: the page shows it at once instead of
        after the whole read (a second or two for 20,000 trials), which starts meanwhile.
        None when the trials are read already, or changed while this page was read."""
        if not self.dashboard.local or self.cache.peek(namespace, name) is not None:
            return None

        def read(client: Any) -> tuple[Any, list[Any], Any, Any]:
            before = client.store.trials_version(name, namespace)
            exp = client.get_experiment(name, namespace)
            trials = client.store.list_trials_brief(name, namespace, newest=limit)
            return exp, trials, before, client.store.trials_version(name, namespace)

        self.cache.warm([(namespace, name)])
        exp, trials, before, after = self.dashboard.call(read)
        if before != after:
            return None
        data = ExperimentData.from_experiment(exp, trials)
        first = before[0] - len(data.trials)
        for i, point in enumerate(data.trials):
            point.number = first + i
        page = table.query(data, sort="number", descending=True, limit=limit)
        opt = exp.status.current_optimal_trial if exp.status else None
        page.update(total=before[0], matched=before[0], generation=None,
                    best=opt.best_trial_name if opt is not None and opt.best_trial_name else None)
        return page

    def figure(self, namespace: str, name: str, kind: str, options: dict[str, str]) -> str:
        entry = self.cache.get(namespace, name)
        db = {"db_manager_address": self.settings.db_manager} if self.settings.db_manager else {}

        def read_rows(trial: str) -> list[Any]:
            return list(self.dashboard.call(lambda c: c.get_trial_metrics(trial, namespace, **db)))

        return self.charts.get(entry, kind, options, read_rows)

    def trial(self, namespace: str, name: str, trial_name: str) -> dict[str, Any]:
        timeout = self.settings.timeout
        exp = self.cache.get(namespace, name).experiment
        trial = self.dashboard.call(lambda c: c.get_trial(trial_name, namespace, timeout=timeout))
        if views.experiment_of(trial) != name:
            raise NotFoundError(f"trial {namespace}/{trial_name} is not a trial of experiment {name}")
        rows, rows_error = None, ""
        db = {"db_manager_address": self.settings.db_manager} if self.settings.db_manager else {}
        try:
            rows = self.dashboard.call(lambda c: c.get_trial_metrics(trial_name, namespace, **db))
        except Exception as exc:  # noqa: BLE001 - the rest of the trial is still worth showing
            if self.dashboard.local:
                raise
            rows_error = (f"metrics per step cannot be read from the DB manager"
                          f"{' at ' + self.settings.db_manager if self.settings.db_manager else ''}: "
                          f"{views_first_line(exc)}; start katib ui with --db-manager HOST:PORT")
        path = self._log_path(namespace, name, trial_name)
        lines, total, log_error = self.dashboard.call(lambda c: views.read_log(c, name, trial_name, namespace, path))
        source = str(path) if path is not None else "the trial's pod log"
        payload = views.trial_detail(exp, trial, rows, rows_error, lines, total, log_error, source)
        payload["token"] = token_of(payload)
        return payload

    def _log_path(self, namespace: str, name: str, trial: str) -> Path | None:
        """Where the local backend keeps the trial's output (None on Kubernetes: a pod log)."""
        if not self.dashboard.local:
            return None
        from katib.backends.local import katib_home
        from katib.backends.local.runner import trial_directory

        return trial_directory(katib_home(), namespace, name, trial) / "stdout.log"

    # -- actions ---------------------------------------------------------------------------
    def validate(self, text: str, namespace: str | None = None) -> dict[str, Any]:
        exp, config_maps = actions.parse(text, namespace or self.dashboard.namespace)
        warnings = actions.check(exp, config_maps, local=self.dashboard.local)
        return actions.summary(exp, warnings)

    def create(self, text: str, namespace: str | None = None) -> dict[str, Any]:
        """Create the pasted experiment, in ``namespace`` unless its metadata names one."""
        exp, config_maps = actions.parse(text, namespace or self.dashboard.namespace)
        actions.check(exp, config_maps, local=self.dashboard.local)
        created = self.dashboard.call(lambda c: c.create_experiment(exp, exp.metadata.namespace))
        return {"name": created.name, "namespace": created.metadata.namespace or exp.metadata.namespace}

    def budget(self, namespace: str, name: str, body: Any) -> dict[str, Any]:
        value = actions.budget_value(body)
        self.dashboard.call(lambda c: c.edit_experiment_budget(name, namespace, max_trial_count=value))
        self.cache.forget(namespace, name)
        return self.experiment(namespace, name)

    def stop(self, namespace: str, name: str) -> dict[str, Any]:
        self.dashboard.call(lambda c: c.stop_experiment(name, namespace))
        self.cache.forget(namespace, name)
        return self.experiment(namespace, name)

    def delete(self, namespace: str, name: str) -> dict[str, Any]:
        self.dashboard.call(lambda c: c.delete_experiment(name, namespace))
        self.cache.forget(namespace, name)
        return {"deleted": name, "namespace": namespace}


def views_first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _int(params: dict[str, str], key: str, default: int) -> int:
    text = params.get(key)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{key}: expected a whole number, got {text!r}") from None
