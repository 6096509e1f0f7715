"""``katib controller``: Experiments reconciled through the shared reconcile core (§6).

Per experiment (one worker at a time, see ``workqueue``): read the Experiment and its
Trials fresh from the API server, bring each trial forward (``trials.TrialSync``), call
``katib.controller.reconcile`` and carry out its Actions as the local runner does: write the
experiment status, stop the trials it names, ask the suggester for what it requests and
create those Trials. Watches on Experiments, Trials and trial workloads wake an experiment
up; while trials run it is polled every ``poll_interval`` (that is when logs are read); a
periodic resync catches anything a watch missed.

Restarts: everything is derived from the API server. Trial CRs are the record of what was
asked; an experiment never has more trials than the core allows, counted over the listed
Trials, and a worker lists them right before it creates any. A controller killed at any
point and started again therefore neither loses nor duplicates a trial. Two controllers at
once would each create trials: with leader election (``leader``, ``katib controller
--leader-elect``) only the lease holder starts, and ``ControllerOptions.leading`` is asked
before every reconcile and every trial created, so a worker stops writing as soon as the
lease is gone.

Departures from upstream (reference §13): no Suggestion CR with an ever-growing list of
assignments (assignments live on the Trials); trials never exceed maxTrialCount; running
trials are stopped (Killed) when the experiment ends; SuggestionEndReached ends an
experiment whose search space is exhausted.
"""

from __future__ import annotations

import logging
import random
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from katib.api.model import Experiment, ExperimentStatus, ResumePolicy
from katib.api.space import SearchSpace, format_value
from katib.backends.kubernetes.client import ApiError, Discovery, Kube, Resource
from katib.backends.kubernetes.experiments import ApiConfigMaps, decode_experiment, invalid_status, prepare
from katib.backends.kubernetes.render import RenderOptions, trial_manifest
from katib.backends.kubernetes.resources import EXPERIMENT_LABEL, EXPERIMENTS, TRIALS, WORKLOAD_KINDS
from katib.backends.kubernetes.services import Services
from katib.backends.kubernetes.trials import ExperimentState, TrialSync, decode_trial
from katib.backends.kubernetes.watch import Watcher
from katib.backends.kubernetes.workqueue import WorkQueue
from katib.controller.conditions import now_rfc3339, set_condition
from katib.controller.reconcile import is_completed, reconcile
from katib.controller.template import render_trial_spec
from katib.errors import (
    SearchSpaceExhausted,
    ServiceError,
    SettingsError,
    SuggestionsPending,
    TemplateError,
    ValidationError,
)

__all__ = ["Controller", "ControllerOptions"]

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, experiment name)
# Upstream's trial-name suffix alphabet (k8s utilrand): no vowels, no look-alikes.
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


# Upstream lists every trial's name in the experiment's status, so the object grows with the
# trial count until etcd refuses it (§13 item 17). We keep the newest names of each list;
# the counts stay exact and the Trials themselves are listed by label.
MAX_LISTED_TRIALS = 100
_TRIAL_LISTS = ("runningTrialList", "pendingTrialList", "failedTrialList", "succeededTrialList",
                "killedTrialList", "earlyStoppedTrialList", "metricsUnavailableTrialList")


def _bounded(status: dict[str, Any]) -> dict[str, Any]:
    for key in _TRIAL_LISTS:
        names = status.get(key)
        if isinstance(names, list) and len(names) > MAX_LISTED_TRIALS:
            status[key] = names[-MAX_LISTED_TRIALS:]  # trials are in creation order: keep the newest
    return status


@dataclass
class ControllerOptions:
    namespace: str | None = None  # None: every namespace
    workers: int = 4
    poll_interval: float = 2.0  # while trials run: how often their logs and workloads are read
    resync_period: float = 30.0
    render: RenderOptions = field(default_factory=RenderOptions)
    # Leader election: False once this controller may no longer write (None: always may).
    leading: Callable[[], bool] | None = None


class _NotLeading(Exception):
    """The lease was lost mid-reconcile: drop the work, the new leader redoes it."""


class Controller:
    def __init__(self, kube: Kube, services: Services, options: ControllerOptions | None = None) -> None:
        self.kube = kube
        self.services = services
        self.options = options or ControllerOptions()
        self.discovery = Discovery(kube)
        self.trials = TrialSync(kube, self.discovery, services, self.options.render)
        self.queue: WorkQueue[Key] = WorkQueue()
        self.states: dict[Key, ExperimentState] = {}
        self._states_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._watched: set[Resource] = set()
        self._failures: dict[Key, int] = {}

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        ns = self.options.namespace
        self._watch(EXPERIMENTS, lambda t, o: self._enqueue(o["metadata"].get("namespace"), o["metadata"]["name"]))
        self._watch(TRIALS, self._on_labelled, label_selector=EXPERIMENT_LABEL)
        self._watch_workloads()
        for i in range(self.options.workers):
            worker = threading.Thread(target=self._work, name=f"katib-worker-{i}", daemon=True)
            worker.start()
            self._threads.append(worker)
        resync = threading.Thread(target=self._resync, name="katib-resync", daemon=True)
        resync.start()
        self._threads.append(resync)
        log.info("controller started (namespace: %s, %d workers)", ns or "all", self.options.workers)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking work; let each worker finish the experiment it is on."""
        self._stop.set()
        self.queue.shutdown()
        for t in self._threads:
            t.join(timeout)
        log.info("controller stopped")

    def request_stop(self) -> None:
        """Ask ``wait`` to return (safe from a signal handler); then call ``stop``."""
        self._stop.set()

    def wait(self) -> None:
        while not self._stop.wait(1.0):
            pass

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    # -- events -------------------------------------------------------------------------------
    def _watch(self, res: Resource, handler: Any, label_selector: str | None = None) -> None:
        self._watched.add(res)
        w = Watcher(self.kube, res, self.options.namespace, handler, self._stop, label_selector=label_selector)
        w.start()

    def _watch_workloads(self) -> None:
        for api_version, kind in WORKLOAD_KINDS:
            res = self.discovery.resolve(api_version, kind)
            if res is not None and res not in self._watched:
                self._watch(res, self._on_labelled, label_selector=EXPERIMENT_LABEL)

    def _enqueue(self, namespace: str | None, name: str | None) -> None:
        if namespace and name:
            self.queue.add((namespace, name))

    def _on_labelled(self, _type: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        self._enqueue(meta.get("namespace"), (meta.get("labels") or {}).get(EXPERIMENT_LABEL))

    def _resync(self) -> None:
        while not self._stop.wait(self.options.resync_period):
            try:
                items, _ = self.kube.list(EXPERIMENTS, self.options.namespace)
                for obj in items:
                    self._enqueue(obj["metadata"].get("namespace"), obj["metadata"]["name"])
                self._watch_workloads()  # kinds whose CRD was installed since
            except Exception:  # noqa: BLE001 - keep resyncing
                log.exception("resync failed")

    def _work(self) -> None:
        while not self._stop.is_set():
            key = self.queue.get(timeout=0.5)
            if key is None:
                continue
            delay: float | None
            try:
                self._check_leading()
                delay = self.reconcile(key)
                self._failures.pop(key, None)
            except _NotLeading:
                log.info("%s/%s: not reconciled: this controller no longer holds the lease", key[0], key[1])
                delay = None
            except ApiError as exc:
                if exc.conflict:
                    log.debug("%s/%s: conflict (%s); reading it again", key[0], key[1], exc)
                    delay = 0.0
                else:
                    delay = self._backoff(key, exc)
            except Exception as exc:  # noqa: BLE001 - one experiment's error must not stop the others
                delay = self._backoff(key, exc)
            finally:
                self.queue.done(key)
            if delay is not None and not self._stop.is_set():
                self.queue.add_after(key, delay)

    def _check_leading(self) -> None:
        if self.options.leading is not None and not self.options.leading():
            raise _NotLeading()

    def _backoff(self, key: Key, exc: Exception) -> float:
        n = self._failures[key] = self._failures.get(key, 0) + 1
        delay = min(0.5 * 2 ** (n - 1), 30.0)
        log.warning("%s/%s: reconcile failed (%s: %s); again in %.1fs", key[0], key[1], type(exc).__name__, exc,
                    delay, exc_info=n == 1 and not isinstance(exc, (ApiError, ServiceError)))
        return delay

    # -- one experiment -----------------------------------------------------------------------
    def reconcile(self, key: Key) -> float | None:
        """Reconcile one experiment; seconds until it wants to be looked at again (None: only
        when something changes)."""
        ns, name = key
        obj = self.kube.get_or_none(EXPERIMENTS, ns, name)
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            with self._states_lock:
                self.states.pop(key, None)
            return None
        uid = obj["metadata"]["uid"]
        st = self.states.get(key)
        if st is None or st.uid != uid:
            st = self.states[key] = ExperimentState(uid)
        exp, decode_errors = decode_experiment(obj)
        config_maps = ApiConfigMaps(self.kube, ns)
        # The algorithm's settings are checked once, before the experiment is first marked
        # (as upstream's suggestion controller does); the rest of validation every time, so
        # an edit that breaks the spec is caught.
        check_settings = (exp.status is None or not exp.status.conditions) and not st.settings_checked
        if st.suggester is None:
            st.suggester = self.services.suggester_for(exp)
        errors = prepare(exp, decode_errors, self.services, config_maps, st.suggester if check_settings else None)
        st.settings_checked = st.settings_checked or (check_settings and not errors)
        trial_objs = self._list_trials(ns, name, uid)
        if errors:
            status = invalid_status(exp, errors)
            if exp.status is None or status.to_dict() != exp.status.to_dict():
                self._write_status(obj, status)
                failed = status.condition("Failed")
                log.info("experiment %s/%s is invalid: %s", ns, name, failed.message if failed else errors)
            if not trial_objs:
                return None  # refused before anything was created
            exp.status = status
        return self._reconcile_valid(st, obj, exp, trial_objs, config_maps)

    def _list_trials(self, ns: str, name: str, uid: str) -> list[dict[str, Any]]:
        items, _ = self.kube.list(TRIALS, ns, label_selector=f"{EXPERIMENT_LABEL}={name}")
        # Only this experiment's trials: an older experiment of the same name may still be
        # being garbage-collected.
        mine = [t for t in items if any(r.get("uid") == uid for r in t["metadata"].get("ownerReferences") or [])]
        # The core reads "list order" as creation order (best trial ties, §1.8).
        return sorted(mine, key=lambda t: (t["metadata"].get("creationTimestamp") or "", t["metadata"]["name"]))

    def _reconcile_valid(self, st: ExperimentState, obj: dict[str, Any], exp: Experiment,
                         trial_objs: list[dict[str, Any]], config_maps: ApiConfigMaps) -> float | None:
        trials = [decode_trial(o) for o in trial_objs]
        if exp.spec.early_stopping is not None and st.early_stopper is None:
            st.early_stopper = self.services.early_stopper_for(exp)
            by_name = {t["metadata"]["name"]: t for t in trial_objs}
            if st.early_stopper is not None:
                st.early_stopper.replay(trials, lambda t: self.trials.replay_rows(by_name, t))
        if st.early_stopper is not None:
            st.early_stopper.update(exp, trials)
        for i, trial in enumerate(trials):
            trial_objs[i], trials[i] = self.trials.sync(st, trial_objs[i], trial)
        core = self._resume_guard(st, exp)
        actions = reconcile(core, trials, now_rfc3339(), suggestion_exhausted=st.exhausted,
                            suggestion_failed=st.suggestion_failed)
        obj = self._write_status(obj, actions.status, exp.status)
        if actions.restarted:
            log.info("experiment %s/%s restarts: maxTrialCount was raised", exp.metadata.namespace, exp.name)
        if actions.stop:
            pairs = {t.name: (o, t) for o, t in zip(trial_objs, trials)}
            for trial_name in actions.stop:
                o, t = pairs[trial_name]
                self.trials.stop(st, o, t, "Trial was stopped: the experiment has completed")
            return 0.0  # count them as Killed right away
        if actions.completed:
            self._release(st, exp)
            return None
        if actions.request > 0:
            created = self._create_trials(st, obj, exp, trials, actions.request, config_maps)
            if created:
                return 0.0  # start their workloads now
        return self.options.poll_interval

    def _resume_guard(self, st: ExperimentState, exp: Experiment) -> Experiment:
        """Resume policy Never: a finished experiment stays finished whatever maxTrialCount
        becomes (upstream's webhook refuses that edit; we have no webhook, so we ignore it)."""
        policy = exp.spec.resume_policy or ResumePolicy.NEVER
        if policy != ResumePolicy.NEVER or not is_completed(exp.status):
            return exp
        completed = exp.status.trials if exp.status is not None and exp.status.trials is not None else 0
        if exp.spec.max_trial_count is not None and exp.spec.max_trial_count > completed and not st.warned_resume:
            st.warned_resume = True
            log.warning("experiment %s/%s: resumePolicy is Never, so it is not restarted even if maxTrialCount "
                        "is raised; use LongRunning or FromVolume to make it restartable",
                        exp.metadata.namespace, exp.name)
        guarded = exp.copy()
        guarded.spec.max_trial_count = None
        return guarded

    def _release(self, st: ExperimentState, exp: Experiment) -> None:
        """LongRunning keeps the algorithm's memory for a restart; Never and FromVolume let it
        go (FromVolume rebuilds it from the Trials when the experiment restarts)."""
        if (exp.spec.resume_policy or ResumePolicy.NEVER) != ResumePolicy.LONG_RUNNING:
            st.suggester = None
            st.early_stopper = None
            st.metrics.clear()

    def _write_status(self, obj: dict[str, Any], status: ExperimentStatus,
                      old: ExperimentStatus | None = None) -> dict[str, Any]:
        new = _bounded(status.to_dict())
        if old is not None:
            before = _bounded(old.to_dict())
            before.pop("lastReconcileTime", None)
            after = dict(new)
            after.pop("lastReconcileTime", None)
            if before == after:
                return obj  # nothing but the clock moved: spare the API server a write
        body = dict(obj)
        body["status"] = new
        return self.kube.replace_status(EXPERIMENTS, body)

    # -- new trials ---------------------------------------------------------------------------
    def _trial_name(self, exp: str, wanted: str | None, taken: set[str]) -> str:
        # <experiment>-<8 chars>: at most 40 + 9 = 49 characters, so the trial's Job and its
        # pods' names (+6) stay within Kubernetes' 63-character limits.
        if wanted and len(wanted) <= 50 and _DNS_LABEL.fullmatch(wanted) and wanted not in taken:
            return wanted
        while True:
            name = f"{exp}-" + "".join(random.choices(_ALPHABET, k=8))
            if name not in taken:
                return name

    def _create_trials(self, st: ExperimentState, obj: dict[str, Any], exp: Experiment, trials: list[Any],
                       n: int, config_maps: ApiConfigMaps) -> int:
        if st.suggester is None:
            st.suggester = self.services.suggester_for(exp)
        try:
            assignments = st.suggester.suggest(exp, trials, n)
        except SearchSpaceExhausted:
            log.info("experiment %s/%s: the search space is exhausted", exp.metadata.namespace, exp.name)
            st.exhausted = True
            return 0
        except SuggestionsPending as exc:
            log.debug("experiment %s/%s: %s", exp.metadata.namespace, exp.name, exc)
            return 0  # asked again when a trial finishes (that event reconciles the experiment)
        except (SettingsError, ValidationError) as exc:
            st.suggestion_failed = str(exc)
            return 0
        except ServiceError as exc:
            if exc.retryable:
                raise
            st.suggestion_failed = str(exc)
            return 0
        assignments = list(assignments)[:n]  # never more than the core asked for
        space = SearchSpace.from_experiment(exp.spec) if exp.spec.parameters else None
        taken = {t.name for t in trials}
        ns = obj["metadata"]["namespace"]
        # The rule as it stands, in upstream's form, for the record (our controller applies
        # the live rule itself, at every report). Asked after the suggestions, as upstream does.
        rules = st.early_stopper.rules() if st.early_stopper is not None else []
        template = exp.spec.trial_template
        for a in assignments:
            values = space.format(dict(a.values)) if space else {k: format_value(v) for k, v in a.values.items()}
            name = self._trial_name(exp.name, a.trial_name, taken)
            taken.add(name)
            failure = None
            run_spec = None
            try:
                if template is None:
                    raise TemplateError("spec.trialTemplate is missing")
                run_spec = render_trial_spec(template, values, name, ns, config_maps)
            except TemplateError as exc:
                failure = f"Trial has failed: the trial template could not be rendered: {exc}"
            body = trial_manifest(obj, exp, name, values, dict(a.labels), rules, run_spec)
            self._check_leading()  # the new leader counts the trials afresh; one more here would exceed them
            created = self.kube.create(TRIALS, ns, body)
            trial = decode_trial(created)
            now = now_rfc3339()
            conds = trial.status.conditions
            set_condition(conds, "Created", "True", "TrialCreated", "Trial is created", now)
            trial.status.start_time = now
            if failure is not None:
                self.trials.finish(st, trial, "Failed", "TrialFailed", failure)
            self.trials.write(created, trial)
            log.info("experiment %s/%s: created trial %s %s", ns, exp.name, name, values)
        return len(assignments)

