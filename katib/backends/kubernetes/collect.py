"""Metrics from trial pods, without an admission webhook.

StdOut: the primary container's log, read through the API (``pods/log``). File: the log
of the sidecar that prints the metrics file (see ``render``). Both are parsed with the same
``LineCollector`` as local runs. Push and Custom: the rows the trial (or its collector)
reported to the DB manager.

Reading is incremental within one controller process: per pod we remember how many bytes
of the log were parsed and feed only the rest. The API has no "from byte N" parameter, so
a poll transfers the whole log; polls happen every ``--poll-interval`` per running trial.

After a controller restart nothing is remembered: the logs are parsed again from the start
(so the Trial's observation is folded from the full log, never from a mix), and rows the DB
already holds are not reported again: the rows of a log are the same on every read, so the
DB's rows for the trial are matched (metric and value, in order) against the re-read ones and
only the unmatched ones are stored.

Pods of a trial: those carrying the trial label (we put it on every pod template we can
see), else the pods the workload's operator labels with its name, else any pod whose
owner-reference chain leads to the trial. Of those, the primary ones: matching
``primaryPodLabels`` when set.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

from katib.api.model import CollectorKind, Observation, Trial
from katib.api.observation import UNAVAILABLE, MetricLog, utcnow
from katib.backends.kubernetes.client import ApiError, Discovery, Kube
from katib.backends.kubernetes.resources import PODS, POD_LABELS_BY_KIND, TRIAL_LABEL
from katib.backends.kubernetes.services import ObservationDB
from katib.metrics.collector import LineCollector
from katib.metrics.parsers import TEXT
from katib.metrics.strategies import fold
from katib.metrics.values import is_non_finite

__all__ = ["PodFinder", "TrialMetrics", "LOG_KINDS", "DB_KINDS"]

log = logging.getLogger(__name__)

LOG_KINDS = (CollectorKind.STDOUT, CollectorKind.FILE)
DB_KINDS = (CollectorKind.PUSH, CollectorKind.CUSTOM)


def _selector(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


class PodFinder:
    """Finds a trial's primary pods and reads their logs."""

    def __init__(self, kube: Kube, discovery: Discovery) -> None:
        self.kube = kube
        self.discovery = discovery
        self._owners: dict[str, list[dict[str, Any]]] = {}  # uid -> ownerReferences

    def primary_pods(self, trial: Trial, trial_uid: str, workload_kind: str) -> list[dict[str, Any]]:
        ns = trial.metadata.namespace
        primary = dict(trial.spec.primary_pod_labels or {})
        selectors = [{TRIAL_LABEL: trial.name}]
        selectors += [{key: trial.name} for key in POD_LABELS_BY_KIND.get(workload_kind, ())]
        for labels in selectors:
            pods, _ = self.kube.list(PODS, ns, label_selector=_selector({**labels, **primary}))
            if pods:
                return self._ordered(pods)
            if primary:  # pods exist but none is primary yet? then they are not ours to read
                any_pods, _ = self.kube.list(PODS, ns, label_selector=_selector(labels))
                if any_pods:
                    return []
        candidates, _ = self.kube.list(PODS, ns, label_selector=_selector(primary) if primary else None)
        return self._ordered([p for p in candidates if self._owned_by(p, trial_uid, ns)])

    @staticmethod
    def _ordered(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(pods, key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]))

    def _owned_by(self, obj: dict[str, Any], uid: str, namespace: str | None, depth: int = 0) -> bool:
        refs = obj["metadata"].get("ownerReferences") or []
        for ref in refs:
            if ref.get("uid") == uid:
                return True
        if depth >= 4:
            return False
        for ref in refs:
            owner_uid = ref.get("uid")
            owners = self._owners.get(owner_uid)
            if owners is None:
                res = self.discovery.resolve(ref.get("apiVersion", ""), ref.get("kind", ""))
                owner = self.kube.get_or_none(res, namespace, ref["name"]) if res is not None else None
                if owner is None:
                    continue
                owners = self._owners[owner_uid] = owner["metadata"].get("ownerReferences") or []
            if self._owned_by({"metadata": {"ownerReferences": owners}}, uid, namespace, depth + 1):
                return True
        return False

    def read_log(self, pod: dict[str, Any], container: str) -> bytes | None:
        """The container's log, or None while there is none to read (not started, gone)."""
        meta = pod["metadata"]
        try:
            return self.kube.read_bytes(PODS.path(meta["namespace"], meta["name"], "log"), {"container": container})
        except ApiError as exc:
            if exc.status in (400, 404):  # waiting to start, or the pod/container is gone
                return None
            raise


def container_terminated(pod: dict[str, Any], container: str) -> bool:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == container:
            return bool((status.get("state") or {}).get("terminated"))
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


@dataclass
class _PodLog:
    collector: LineCollector
    consumed: int = 0
    closed: bool = False


@dataclass
class TrialMetrics:
    """One trial's metrics as this controller process has read them."""

    trial_name: str
    metric_names: list[str]
    kind: str = CollectorKind.STDOUT
    fmt: str = TEXT
    filters: list[str] | None = None
    rows: list[MetricLog] = field(default_factory=list)
    _pods: dict[str, _PodLog] = field(default_factory=dict)
    _db_left: Counter[tuple[str, str]] | None = None

    @classmethod
    def for_trial(cls, trial: Trial) -> "TrialMetrics":
        mc = trial.spec.metrics_collector
        names = trial.spec.objective.metric_names if trial.spec.objective else []
        fmt, filters = TEXT, None
        source = mc.source if mc else None
        if source is not None:
            if source.file_system_path is not None and source.file_system_path.format:
                fmt = source.file_system_path.format
            if source.filter is not None and source.filter.metrics_format:
                filters = list(source.filter.metrics_format)
        return cls(trial.name, names, mc.kind if mc else CollectorKind.STDOUT, fmt, filters)

    def feed(self, pod_uid: str, data: bytes, finished: bool) -> list[MetricLog]:
        """New rows of one pod's log (``data`` is the whole log as read now)."""
        state = self._pods.get(pod_uid)
        if state is None:
            state = self._pods[pod_uid] = _PodLog(LineCollector(self.metric_names, self.fmt, self.filters))
        if state.closed:
            return []
        if len(data) < state.consumed:  # a restarted container: its log starts over
            log.info("trial %s: the log of pod %s started over; reading it anew", self.trial_name, pod_uid)
            state.collector = LineCollector(self.metric_names, self.fmt, self.filters)
            state.consumed = 0
        rows = state.collector.feed(data[state.consumed:])
        state.consumed = len(data)
        if finished:
            rows += state.collector.close()
            state.closed = True
        self.rows.extend(rows)
        return rows

    def replace(self, rows: Sequence[MetricLog]) -> list[MetricLog]:
        """For DB-sourced kinds: the full row list as the DB has it; returns the new tail."""
        new = list(rows[len(self.rows):]) if len(rows) >= len(self.rows) else list(rows)
        self.rows = list(rows)
        return new

    def observation(self) -> Observation:
        return fold(self.rows, self.metric_names)

    def objective_seen(self) -> bool:
        objective = self.metric_names[0] if self.metric_names else None
        return any(r.metric_name == objective and r.value != UNAVAILABLE and not is_non_finite(r.value) for r in self.rows)

    @property
    def refused(self) -> dict[str, list[str]]:
        """Per metric, the values the pods' logs held that were refused as not finite numbers."""
        out: dict[str, list[str]] = {}
        for state in self._pods.values():
            for name, values in state.collector.refused.items():
                out.setdefault(name, []).extend(v for v in values if v not in out[name])
        return out

    def unavailable_row(self) -> MetricLog | None:
        if not self.metric_names or self.objective_seen():
            return None
        return MetricLog(self.metric_names[0], UNAVAILABLE, utcnow())

    def store(self, db: ObservationDB | None, rows: Sequence[MetricLog]) -> None:
        """Report rows parsed from logs, leaving out the ones the DB already holds from an
        earlier controller process (see the module docstring)."""
        if db is None or not rows or self.kind not in LOG_KINDS:
            return
        if self._db_left is None:
            self._db_left = Counter((r.metric_name, r.value) for r in db.get(self.trial_name))
        fresh = []
        for row in rows:
            key = (row.metric_name, row.value)
            if self._db_left[key] > 0:
                self._db_left[key] -= 1
                continue
            fresh.append(row)
        db.report(self.trial_name, fresh)
