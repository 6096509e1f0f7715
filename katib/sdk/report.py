"""``katib.report_metrics``: push metrics from training code.

In a local trial (``katib run`` or ``tune()`` set ``KATIB_DB_URL`` and ``KATIB_TRIAL_NAME``)
the values go straight into the store, with no server to run. Inside a cluster the call
goes to the DBManager service (``ReportObservationLog``), at ``db_manager_address``, else
``$KATIB_DB_MANAGER_ADDRESS``, else upstream's default address. Timestamps have microsecond
resolution (upstream's have seconds, §9.4).

With ``KATIB_METRICS_SINK=stdout`` (set by ``tune()`` for the StdOut collector) the values
are printed as ``step=<n> <name>=<value>`` lines instead, for the collector to read.
"""

from __future__ import annotations

import math
import os
import threading
from typing import Any, Mapping

from katib.api.observation import MetricLog, utcnow

__all__ = ["report_metrics"]

_lock = threading.Lock()
_stores: dict[str, Any] = {}
_db_client: Any = None
# The report count of each metric in this process, for reports that give no step.
_counts: dict[str, int] = {}


def _store(url: str) -> Any:
    with _lock:
        store = _stores.get(url)
        if store is None:
            from katib.store import Store

            # The runner created and migrated the schema; a trial only appends rows.
            store = _stores[url] = Store(url, skip_init=True)
        return store


def report_metrics(metrics: Mapping[str, Any], step: int | None = None, *,
                   db_manager_address: str | None = None, timeout: float = 120.0) -> None:
    """Record ``metrics`` (name -> number) for the current trial, at ``step`` if given
    (else the count of reports so far, starting at 1, as the collectors number lines).

    Raises ValueError when not inside a trial (no ``KATIB_TRIAL_NAME``) or when a value is
    not a finite number (nan, inf), naming the metric; nothing of the call is recorded then.
    """
    trial = os.environ.get("KATIB_TRIAL_NAME")
    if not trial:
        raise ValueError("report_metrics: KATIB_TRIAL_NAME is not set; call it from code that runs as a trial "
                         "(katib run, katib.tune() or a Katib trial pod)")
    if not metrics:
        raise ValueError("report_metrics: metrics is empty; pass e.g. {'loss': 0.3}")
    now = utcnow()
    numbers = []
    for name, value in metrics.items():
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"report_metrics: metric {name!r} must be a number, got {value!r}") from None
        if not math.isfinite(number):
            # The rule for every collector (katib.metrics.values): a search cannot rank it.
            raise ValueError(f"report_metrics: metric {name!r} must be a finite number, got {value!r}; "
                             "nan and inf are not recorded")
        numbers.append((str(name), number))
    logs = []
    for name, number in numbers:  # made only once every value passed
        # The step is the row's position: a report of a step stored already (a retry after
        # an error that hid a success) is dropped by the store, not stored twice.
        at = step if step is not None else _counts.get(name, 0) + 1
        logs.append(MetricLog(name, repr(number), now, at, at))
    _send(trial, logs, db_manager_address, timeout)
    if step is None:  # counted once sent: a call that raised and is retried keeps its step
        for row in logs:
            _counts[row.metric_name] = row.step or 0


def _send(trial: str, logs: list[MetricLog], db_manager_address: str | None, timeout: float) -> None:
    if os.environ.get("KATIB_METRICS_SINK") == "stdout":
        # A tune() trial with the StdOut collector: print what the collector reads live
        # (it takes ``step`` on the same line as the step), so pushed and printed metrics
        # share one channel and early stopping sees both.
        for row in logs:
            print(f"step={row.step} {row.metric_name}={row.value}", flush=True)
        return
    url = os.environ.get("KATIB_DB_URL")
    if url and not db_manager_address:
        _store(url).report_observations(trial, logs)
        return
    global _db_client
    from katib.rpc.dbmanager_client import DEFAULT_ADDRESS, DBManagerClient

    with _lock:
        if _db_client is None or _db_client.deadline != timeout:
            _db_client = DBManagerClient(deadline=timeout)
        client = _db_client
    address = db_manager_address or os.environ.get("KATIB_DB_MANAGER_ADDRESS") or DEFAULT_ADDRESS
    try:
        client.report(address, trial, logs)
    except Exception as exc:
        raise RuntimeError(f"report_metrics: could not report to the DB manager at {address}: {exc}") from exc
