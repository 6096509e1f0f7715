"""Acting on a local experiment from outside its runner: raise its budget, stop it, delete it.

A runner (``katib run``, ``katib resume``, ``tune()``) owns its experiment: it alone writes
its trials and status. Others (``KatibClient(backend="local")``, the dashboard, ``katib
stop``) talk to it through the stored experiment, which the runner reads back at most once a
second (``RunnerControl``, one indexed row read):

- the budget (``maxTrialCount``, ``parallelTrialCount``, ``maxFailedTrialCount``) in the
  stored spec: the runner takes what it finds there;
- a stop request: the annotation ``katib.kubeflow.org/stop-requested`` (its value is when it
  was asked). The runner stops its running trials and marks the experiment interrupted, as
  Ctrl-C does, so running it again resumes it; then it removes the annotation. A request no
  runner saw (its runner ended first) is dropped when the next run starts: it was meant for
  that earlier run, and must not stop every later one.

Whether a runner is alive is whether it holds the experiment's lock (``lock.lock_holder``).
Raising the budget of an experiment that ended by reaching ``maxTrialCount`` while no runner
holds it starts a detached one (``katib resume``, see ``katib.backends.local.detached``);
deleting a running experiment stops it first, so that neither its runner nor its trials
write into a deleted experiment.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from katib.api.model import Experiment, ExperimentCondition as EC
from katib.backends.local.lock import lock_holder
from katib.controller.conditions import now_rfc3339
from katib.errors import AlreadyExistsError, FieldError, KatibError, NotFoundError, ValidationError

__all__ = ["RunnerControl", "Requests", "STOP_REQUESTED", "CREATED_BY_TUNE", "BUDGET_FIELDS", "STOP_MESSAGE",
           "runner_pid", "request_stop", "edit_budget", "create", "delete", "check_resumable", "budget_errors"]

log = logging.getLogger(__name__)

STOP_REQUESTED = "katib.kubeflow.org/stop-requested"
CREATED_BY = "katib.kubeflow.org/created-by"
CREATED_BY_TUNE = "katib.tune"  # tune() writes it; its objective lives in the caller's process
# spec key -> ExperimentSpec attribute: the only fields an update may change (reference §4.2 rule 7)
BUDGET_FIELDS = {"maxTrialCount": "max_trial_count", "parallelTrialCount": "parallel_trial_count",
                 "maxFailedTrialCount": "max_failed_trial_count"}
_BUDGET_PATHS = tuple(f"spec.{k}" for k in (*BUDGET_FIELDS, "resumePolicy"))
CHECK_INTERVAL = 1.0
STOP_MESSAGE = "Experiment was stopped by a request (katib stop, KatibClient.stop_experiment or the dashboard)"


def _run_dir(name: str, namespace: str) -> Path:
    from katib.backends.local import katib_home  # the package imports the runner, which imports us
    from katib.backends.local.runner import run_directory

    return run_directory(katib_home(), namespace, name)


def runner_pid(name: str, namespace: str) -> int | None:
    """The pid of the process running the experiment on this machine (0 if it is just
    starting), or None when no runner holds it."""
    return lock_holder(_run_dir(name, namespace))


# -- the runner's side --------------------------------------------------------------------------
@dataclass
class Requests:
    stop: str | None = None  # when a pending stop request was made
    budget_changed: bool = False  # applied to the runner's experiment already
    deleted: bool = False  # the experiment is gone from the store (or replaced by another of its name)


class RunnerControl:
    """What a runner reads back from the store while it runs (see the module docstring)."""

    def __init__(self, store: Any, experiment: Experiment, interval: float = CHECK_INTERVAL) -> None:
        self.store = store
        self.experiment = experiment
        self.interval = interval
        self.namespace = experiment.metadata.namespace or "default"
        self._next = 0.0

    def begin(self) -> None:
        """At the start of a run: drop a stop request meant for an earlier run."""
        stored = self.store.get_experiment(self.experiment.name, self.namespace)
        if self.experiment.metadata.uid is None:
            self.experiment.metadata.uid = stored.metadata.uid
        if STOP_REQUESTED in stored.metadata.annotations:
            log.info("experiment %s: dropping a stop request no runner saw (made %s)", self.experiment.name,
                     stored.metadata.annotations[STOP_REQUESTED])
            self.clear_stop()
        self._next = time.monotonic() + self.interval

    def poll(self, force: bool = False) -> Requests:
        """What was asked since the last look; looks at most once per ``interval`` unless
        ``force``. A changed budget is applied to the runner's experiment here."""
        now = time.monotonic()
        if not force and now < self._next:
            return Requests()
        self._next = now + self.interval
        try:
            stored = self.store.get_experiment(self.experiment.name, self.namespace)
        except NotFoundError:
            return Requests(deleted=True)
        if self.experiment.metadata.uid and stored.metadata.uid != self.experiment.metadata.uid:
            return Requests(deleted=True)  # deleted, and created again under its name
        requests = Requests(stop=stored.metadata.annotations.get(STOP_REQUESTED))
        spec = self.experiment.spec
        for key, attr in BUDGET_FIELDS.items():
            old, new = getattr(spec, attr), getattr(stored.spec, attr)
            if old != new:
                log.info("experiment %s: %s changed from %s to %s", self.experiment.name, key, old, new)
                setattr(spec, attr, new)
                requests.budget_changed = True
        return requests

    def raised_at_the_end(self) -> bool:
        """Look once more after the experiment's end was written: whoever raised the budget
        meanwhile saw this runner alive and left the raise to it."""
        requests = self.poll(force=True)
        if requests.stop:
            self.clear_stop()  # nothing runs any more
        return requests.budget_changed and not requests.deleted

    def clear_stop(self) -> None:
        def clear(exp: Experiment) -> None:
            exp.metadata.annotations.pop(STOP_REQUESTED, None)
        try:
            self.store.edit_experiment(self.experiment.name, self.namespace, clear)
        except NotFoundError:
            pass


# -- the other side: KatibClient, the dashboard, `katib stop` -----------------------------------
def _wait_until_stopped(name: str, namespace: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while runner_pid(name, namespace) is not None:
        if time.monotonic() >= deadline:
            raise TimeoutError(f"experiment {namespace}/{name} was asked to stop, but its runner (pid "
                               f"{runner_pid(name, namespace)}) is still stopping its trials after {timeout:g} s")
        time.sleep(0.05)


def request_stop(store: Any, name: str, namespace: str, *, wait: bool = False, timeout: float = 60.0) -> Experiment:
    """Ask the experiment's runner to stop (see the module docstring); ``wait``: until it has.
    An experiment no runner runs is left as it is: there is nothing to stop."""
    exp: Experiment = store.get_experiment(name, namespace)
    if runner_pid(name, namespace) is None:
        return exp

    def ask(e: Experiment) -> None:
        e.metadata.annotations[STOP_REQUESTED] = now_rfc3339()
    store.edit_experiment(name, namespace, ask)
    if wait:
        _wait_until_stopped(name, namespace, timeout)
    return store.get_experiment(name, namespace)  # type: ignore[no-any-return]


def check_resumable(exp: Experiment) -> None:
    """Raise ValidationError when no process but the one that started ``exp`` can run it."""
    name = exp.name
    if exp.metadata.annotations.get(CREATED_BY) == CREATED_BY_TUNE:
        raise ValidationError([FieldError("metadata.annotations", (
            f"experiment {name!r} was started by katib.tune(), whose objective function lives in the Python "
            f"process that called it, so it cannot be resumed from elsewhere; call tune(..., name={name!r}) "
            "again to resume it (it picks up the budget stored here)"))])
    template = exp.spec.trial_template
    if template is not None and template.config_map is not None:
        raise ValidationError([FieldError("spec.trialTemplate.configMap", (
            f"experiment {name!r} takes its trial template from ConfigMap "
            f"{template.config_map.config_map_namespace}/{template.config_map.config_map_name}, which is only "
            f"in the file it was run from; resume it with `katib run FILE --config-map FILE`"))])


def budget_errors(new: Experiment, old: Experiment) -> list[FieldError]:
    """Upstream's update rules, as they concern a budget edit (the rest was checked at
    creation, and an object not defaulted yet would break rules that do not concern it)."""
    from katib.api.validation import validate

    return [e for e in validate(new, old=old) if e.path.startswith(_BUDGET_PATHS)]


def _settings_errors(exp: Experiment) -> list[FieldError]:
    """What the built-in algorithm says of the new budget (grid: no more trials than
    combinations), checked before it is stored: a runner would refuse it only afterwards,
    leaving a stored spec it cannot run."""
    from suggestion import registry

    from katib.backends.local import check_settings

    name = exp.spec.algorithm.algorithm_name if exp.spec.algorithm else ""
    return check_settings(exp) if name in registry.names() else []


def _restartable(exp: Experiment) -> bool:
    """Ended by reaching maxTrialCount, which now allows more trials (reference §6.7)."""
    status = exp.status
    if status is None or not status.is_true(EC.SUCCEEDED):
        return False
    cond = status.condition(EC.SUCCEEDED)
    done = status.trials or 0
    return (cond is not None and cond.reason == EC.REASON_MAX_TRIALS_REACHED
            and exp.spec.max_trial_count is not None and exp.spec.max_trial_count > done)


def _completed(exp: Experiment) -> bool:
    return exp.status is not None and (exp.status.is_true(EC.SUCCEEDED) or exp.status.is_true(EC.FAILED))


def edit_budget(store: Any, name: str, namespace: str, changes: dict[str, int], *, workdir: str | None = None,
                handoff_timeout: float = 10.0) -> Experiment:
    """Change the budget under upstream's update rules. A running runner picks it up within
    about a second; an experiment that ended by reaching maxTrialCount gets a detached runner
    (``katib resume``) unless tune() ran it."""
    from katib.backends.local import detached

    unknown = set(changes) - set(BUDGET_FIELDS)
    if unknown:
        raise ValueError(f"edit_budget: unknown budget field(s) {sorted(unknown)}; use {sorted(BUDGET_FIELDS)}")
    old: Experiment = store.get_experiment(name, namespace)
    new = old.copy()
    for key, value in changes.items():
        setattr(new.spec, BUDGET_FIELDS[key], value)
    errors = budget_errors(new, old)
    if not errors:
        errors = _settings_errors(new)
    if errors:
        raise ValidationError(errors)
    if _restartable(new) and runner_pid(name, namespace) is None:
        check_resumable(new)  # before anything is written

    def apply(e: Experiment) -> None:
        for key, value in changes.items():
            setattr(e.spec, BUDGET_FIELDS[key], value)
    store.edit_experiment(name, namespace, apply)
    # A runner that was ending when the budget was written may have missed it: it checks
    # once more after it wrote its experiment's end, so either it goes on (its status is no
    # longer completed) or it lets go of the lock soon; then a new runner takes over.
    deadline = time.monotonic() + handoff_timeout
    while True:
        current: Experiment = store.get_experiment(name, namespace)
        if runner_pid(name, namespace) is None:
            break
        if not _completed(current) or time.monotonic() >= deadline:
            return current
        time.sleep(0.05)
    if _restartable(current):
        check_resumable(current)
        detached.start(store, name, namespace, workdir=workdir)
        current = store.get_experiment(name, namespace)
    return current


def create(store: Any, exp: Experiment, *, workdir: str | None = None) -> Experiment:
    """Check ``exp`` as ``katib run`` does, store it and start a detached runner for it.
    Its YAML is written to the run directory (``experiment.yaml``) for ``katib run`` later."""
    from katib.api.loader import dump_yaml
    from katib.backends import local
    from katib.backends.local import detached

    local.prepare(exp)  # ValidationError listing every problem, as katib run prints them
    check_resumable(exp)  # a ConfigMap template would not reach the runner
    namespace = exp.metadata.namespace or "default"

    def refuse_taken() -> None:
        try:
            store.get_experiment(exp.name, namespace)
        except NotFoundError:
            return
        raise AlreadyExistsError(f"experiment {namespace}/{exp.name} exists already; choose another name or "
                                 f"delete it first (katib delete experiment {exp.name})")

    refuse_taken()  # before the lock: its runner would hold that, and "being run" says less
    with local.exclusive(exp):  # no `katib run` of this name starts meanwhile
        refuse_taken()
        local.open_experiment(store, exp)
        (_run_dir(exp.name, namespace) / "experiment.yaml").write_text(dump_yaml(exp))
    # Explicit: a recorded one would be a deleted namesake's.
    detached.start(store, exp.name, namespace, workdir=workdir or os.getcwd())
    return store.get_experiment(exp.name, namespace)  # type: ignore[no-any-return]


def delete(store: Any, name: str, namespace: str, *, timeout: float = 60.0) -> None:
    """Delete the experiment, its trials and their metrics; a running one is stopped first,
    and trial processes a killed runner left behind are ended."""
    from katib.backends.local.process import TrialProcess
    from katib.backends.local.runner import trial_directory

    if runner_pid(name, namespace) is not None:
        try:
            request_stop(store, name, namespace, wait=True, timeout=timeout)
        except TimeoutError as exc:
            raise KatibError(f"{exc}; experiment {namespace}/{name} was not deleted, try again") from None
    from katib.backends.local import katib_home

    for trial in store.list_trials(name, namespace):
        if trial.status.state in ("Running", "Pending"):
            proc = TrialProcess(trial_directory(katib_home(), namespace, name, trial.name))
            if proc.adopt():
                log.info("stopping trial %s, left running by a runner that is gone", trial.name)
                proc.stop(10.0)
    store.delete_experiment(name, namespace)
