"""One trial one step forward: its workload, its status, its metrics (reference §6.3, §6.5).

A trial's state comes from its workload through the GJSON success/failure conditions:
failure first, then success, else Running once the workload exists. Metrics are collected
on every poll while it runs (early stopping judges them as they come) and once more, in
full, when the workload finished. Completed trials' workloads are deleted unless
``retainRun``; a stopped trial (experiment ended, early stopped) has its workload deleted
whatever ``retainRun`` says, because that is the only way to stop an arbitrary kind.

Every write is conditional on the object's resourceVersion; a 409 surfaces as ``ApiError``
and the experiment is reconciled again from fresh reads.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from katib.api.model import Trial, TrialCondition as TC
from katib.api.observation import UNAVAILABLE, MetricLog
from katib.backends.kubernetes.client import ApiError, Discovery, Kube, Resource
from katib.backends.kubernetes.collect import DB_KINDS, LOG_KINDS, PodFinder, TrialMetrics, container_terminated
from katib.backends.kubernetes.earlystopping import EarlyStopping
from katib.backends.kubernetes.render import RenderOptions, log_container, workload_manifest
from katib.backends.kubernetes.resources import TRIALS
from katib.backends.kubernetes.services import Services
from katib.controller import gjson
from katib.controller.conditions import is_true, now_rfc3339, set_condition
from katib.errors import TemplateError
from katib.metrics.values import unavailable_message

__all__ = ["ExperimentState", "TrialSync", "decode_trial"]

log = logging.getLogger(__name__)

# How long a trial waits for its workload's kind to be served before it fails: a CRD
# installed together with the experiment needs a moment to be established.
KIND_GRACE_SECONDS = 60.0


@dataclass
class ExperimentState:
    """What the controller keeps in memory per experiment. All of it can be lost (restart):
    it is rebuilt from the API server's objects."""

    uid: str
    suggester: Any = None
    exhausted: bool = False
    suggestion_failed: str | None = None
    early_stopper: EarlyStopping | None = None
    early_stopping_ready: bool = False
    metrics: dict[str, TrialMetrics] = field(default_factory=dict)
    cleaned: set[str] = field(default_factory=set)  # completed trials whose workload is gone
    settings_checked: bool = False
    warned_resume: bool = False


def decode_trial(obj: dict[str, Any]) -> Trial:
    errors: list[Any] = []
    trial: Trial = Trial.from_dict(obj, "", errors)
    if errors:
        log.warning("trial %s: ignoring fields that do not decode: %s", obj["metadata"].get("name"),
                    "; ".join(str(e) for e in errors))
    return trial


def _observed(trial: Trial) -> bool:
    """Whether the trial's status already holds a value of its objective (recorded before a
    restart, when the pods whose logs held it may be gone by now)."""
    name = trial.spec.objective.objective_metric_name if trial.spec.objective else None
    obs = trial.status.observation
    found = obs.metric(name) if obs is not None and name else None
    return found is not None and found.latest not in (None, UNAVAILABLE)


def _age_seconds(stamp: str | None) -> float:
    if not stamp:
        return 0.0
    try:
        then = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return 0.0
    return (datetime.now(timezone.utc) - then).total_seconds()


class TrialSync:
    def __init__(self, kube: Kube, discovery: Discovery, services: Services, render: RenderOptions) -> None:
        self.kube = kube
        self.discovery = discovery
        self.services = services
        self.render = render
        self.pods = PodFinder(kube, discovery)

    # -- status ---------------------------------------------------------------------------
    def write(self, obj: dict[str, Any], trial: Trial) -> dict[str, Any]:
        obj = dict(obj)
        obj["status"] = trial.status.to_dict()
        return self.kube.replace_status(TRIALS, obj)

    def finish(self, st: ExperimentState, trial: Trial, state: str, reason: str, message: str) -> None:
        now = now_rfc3339()
        conds = trial.status.conditions
        if is_true(conds, TC.RUNNING):
            set_condition(conds, TC.RUNNING, "False", TC.REASONS[TC.RUNNING], message, now)
        set_condition(conds, state, "True", reason, message, now)
        trial.status.completion_time = now
        if st.early_stopper is not None:
            st.early_stopper.finished(trial.name, state)

    # -- workload -------------------------------------------------------------------------
    def _resource(self, trial: Trial) -> Resource | None:
        run_spec = trial.spec.run_spec or {}
        api_version, kind = run_spec.get("apiVersion"), run_spec.get("kind")
        if not api_version or not kind:
            return None
        return self.discovery.resolve(str(api_version), str(kind))

    def delete_workload(self, trial: Trial) -> None:
        res = self._resource(trial)
        if res is not None:
            self.kube.delete(res, trial.metadata.namespace, trial.name)

    # -- one step ---------------------------------------------------------------------------
    def sync(self, st: ExperimentState, obj: dict[str, Any], trial: Trial) -> tuple[dict[str, Any], Trial]:
        """Bring the trial forward; write its status if it changed. Returns the fresh pair."""
        before = trial.status.to_dict()
        if trial.status.state in TC.COMPLETED:
            if not trial.spec.retain_run and trial.name not in st.cleaned:
                self.delete_workload(trial)
                st.cleaned.add(trial.name)
            return obj, trial
        self._step(st, obj, trial)
        if trial.status.to_dict() != before:
            obj = self.write(obj, trial)
            if trial.status.state == TC.EARLY_STOPPED and st.early_stopper is not None:
                st.early_stopper.trial_stopped(trial.name)
        if trial.status.state in TC.COMPLETED:
            st.metrics.pop(trial.name, None)  # its rows are in its status (and the DB) now
            if not trial.spec.retain_run:
                self.delete_workload(trial)
                st.cleaned.add(trial.name)
        return obj, trial

    def _step(self, st: ExperimentState, obj: dict[str, Any], trial: Trial) -> None:
        conds = trial.status.conditions
        if not conds:
            now = now_rfc3339()
            set_condition(conds, TC.CREATED, "True", TC.REASONS[TC.CREATED], "Trial is created", now)
            trial.status.start_time = trial.status.start_time or now
        run_spec = trial.spec.run_spec or {}
        if not run_spec:
            self.finish(st, trial, TC.FAILED, TC.REASONS[TC.FAILED],
                        "Trial has failed: it has no spec.runSpec (its trial template could not be rendered)")
            return
        res = self._resource(trial)
        if res is None:
            if _age_seconds(obj["metadata"].get("creationTimestamp")) > KIND_GRACE_SECONDS:
                self.finish(st, trial, TC.FAILED, TC.REASONS[TC.FAILED],
                            f"Trial has failed: the cluster does not serve {run_spec.get('kind')} in "
                            f"{run_spec.get('apiVersion')}; install its CRD and operator")
            return
        workload = self.kube.get_or_none(res, trial.metadata.namespace, trial.name)
        if workload is None:
            if is_true(conds, TC.RUNNING):
                self._final_collect(st, obj, trial, res.kind)
                self.finish(st, trial, TC.FAILED, TC.REASONS[TC.FAILED],
                            f"Trial has failed: its {res.kind} was deleted while it ran")
                return
            workload = self._create_workload(st, obj, trial, res)
            if workload is None:
                return
        if workload["metadata"].get("deletionTimestamp"):
            return  # being deleted (stopped); the trial's state was recorded before
        if self._evaluate(st, obj, trial, workload, res.kind):
            return
        if not is_true(conds, TC.RUNNING):
            set_condition(conds, TC.RUNNING, "True", TC.REASONS[TC.RUNNING], "Trial is running", now_rfc3339())
        new = self.collect(st, obj, trial, res.kind, final=False)
        decision = st.early_stopper.report(trial.name, new) if st.early_stopper is not None else None
        if decision is not None:
            log.info("early stopping %s: %s", trial.name, decision.message)
            last = self._final_collect(st, obj, trial, res.kind)
            if st.early_stopper is not None:
                st.early_stopper.observe(trial.name, last)
            self.finish(st, trial, TC.EARLY_STOPPED, TC.REASONS[TC.EARLY_STOPPED], decision.message)
            self.kube.delete(res, trial.metadata.namespace, trial.name)

    def _create_workload(self, st: ExperimentState, obj: dict[str, Any], trial: Trial,
                         res: Resource) -> dict[str, Any] | None:
        try:
            body = workload_manifest(obj, trial, self.render)
        except TemplateError as exc:
            self.finish(st, trial, TC.FAILED, TC.REASONS[TC.FAILED], f"Trial has failed: {exc}")
            return None
        try:
            created = self.kube.create(res, trial.metadata.namespace, body)
        except ApiError as exc:
            if exc.conflict:  # created by an earlier attempt whose answer we did not see
                return self.kube.get_or_none(res, trial.metadata.namespace, trial.name)
            if exc.status in (400, 403, 404, 422):
                self.finish(st, trial, TC.FAILED, TC.REASONS[TC.FAILED],
                            f"Trial has failed: the {res.kind} was refused: {exc.message or exc}")
                return None
            raise
        log.info("trial %s/%s: created %s", trial.metadata.namespace, trial.name, res.kind)
        set_condition(trial.status.conditions, TC.RUNNING, "True", TC.REASONS[TC.RUNNING], "Trial is running",
                      now_rfc3339())
        return created  # type: ignore[no-any-return]

    def _evaluate(self, st: ExperimentState, obj: dict[str, Any], trial: Trial, workload: dict[str, Any],
                  kind: str) -> bool:
        """Apply the failure, then the success condition; True when the trial finished."""
        for cond, state, word in ((trial.spec.failure_condition, TC.FAILED, "failed"),
                                  (trial.spec.success_condition, TC.SUCCEEDED, "succeeded")):
            if not cond:
                continue
            try:
                detail = gjson.met_detail(workload, cond)
            except gjson.GJSONSyntaxError as exc:
                self.finish(st, trial, TC.FAILED, TC.REASONS[TC.FAILED],
                            f"Trial has failed: cannot evaluate {cond!r}: {exc}")
                return True
            if detail is None:
                continue
            reason, message = TC.REASONS[state], f"Trial has {word}"
            if detail.get("reason"):
                reason += f". Job reason: {detail['reason']}"
            if detail.get("message"):
                message += f". Job message: {detail['message']}"
            last = self._final_collect(st, obj, trial, kind)
            if st.early_stopper is not None:
                st.early_stopper.observe(trial.name, last)
            tm = st.metrics.get(trial.name)
            if state == TC.SUCCEEDED and not (tm is not None and tm.objective_seen()) and not _observed(trial):
                self._report_unavailable(st, trial)
                objective = trial.spec.objective.objective_metric_name if trial.spec.objective else ""
                self.finish(st, trial, TC.METRICS_UNAVAILABLE, TC.REASONS[TC.METRICS_UNAVAILABLE],
                            unavailable_message(objective or "", tm.refused if tm is not None else None))
            else:
                self.finish(st, trial, state, reason, message)
            return True
        return False

    # -- metrics ------------------------------------------------------------------------------
    def collect(self, st: ExperimentState, obj: dict[str, Any], trial: Trial, kind: str,
                final: bool) -> list[MetricLog]:
        """New rows of the trial since the last call; updates ``status.observation``."""
        tm = st.metrics.get(trial.name)
        if tm is None:
            tm = st.metrics[trial.name] = TrialMetrics.for_trial(trial)
        db = self.services.db
        new: list[MetricLog] = []
        if tm.kind in LOG_KINDS:
            container = log_container(trial)
            for pod in self.pods.primary_pods(trial, obj["metadata"]["uid"], kind):
                data = self.pods.read_log(pod, container)
                if data is not None:
                    new += tm.feed(pod["metadata"]["uid"], data, final or container_terminated(pod, container))
            tm.store(db, new)
        elif tm.kind in DB_KINDS and db is not None:
            new = tm.replace(db.get(trial.name))
        if tm.rows:
            trial.status.observation = tm.observation()
        return new

    def _final_collect(self, st: ExperimentState, obj: dict[str, Any], trial: Trial, kind: str) -> list[MetricLog]:
        try:
            return self.collect(st, obj, trial, kind, final=True)
        except ApiError as exc:  # the trial ends anyway; its metrics are what we have
            log.warning("trial %s: could not read its last metrics: %s", trial.name, exc)
            return []

    def _report_unavailable(self, st: ExperimentState, trial: Trial) -> None:
        tm = st.metrics.get(trial.name)
        row = tm.unavailable_row() if tm is not None else None
        if row is None or self.services.db is None:
            return
        if tm is not None and tm.kind in LOG_KINDS:
            tm.store(self.services.db, [row])
        elif tm is not None:
            self.services.db.report(trial.name, [row])

    def stop(self, st: ExperimentState, obj: dict[str, Any], trial: Trial, message: str) -> dict[str, Any]:
        """Record the trial Killed (with what it measured so far), then delete its workload."""
        if trial.status.state in TC.COMPLETED:
            return obj
        res = self._resource(trial)
        last = self._final_collect(st, obj, trial, res.kind) if res is not None else []
        if st.early_stopper is not None:
            st.early_stopper.observe(trial.name, last)
        self.finish(st, trial, TC.KILLED, TC.REASONS[TC.KILLED], message)
        obj = self.write(obj, trial)
        st.metrics.pop(trial.name, None)
        if res is not None:
            self.kube.delete(res, trial.metadata.namespace, trial.name)
        st.cleaned.add(trial.name)
        return obj

    def replay_rows(self, obj_by_name: dict[str, dict[str, Any]], trial: Trial) -> list[MetricLog] | None:
        """A completed trial's rows for an early-stopping rule rebuilt after a restart."""
        if self.services.db is not None:
            return self.services.db.get(trial.name)
        res = self._resource(trial)
        obj = obj_by_name.get(trial.name)
        if res is None or obj is None:
            return None
        tm = TrialMetrics.for_trial(trial)
        if tm.kind not in LOG_KINDS:
            return None
        container = log_container(trial)
        for pod in self.pods.primary_pods(trial, obj["metadata"]["uid"], res.kind):
            data = self.pods.read_log(pod, container)
            if data is not None:
                tm.feed(pod["metadata"]["uid"], data, True)
        return tm.rows or None
