"""``katib run``: one experiment, trials as local processes, everything in the store.

The loop: collect new metrics from running trials, let the early-stopping rule look at
them, mark ended trials, call the reconcile core, ask the suggester for what it requests,
start those trials, stop what it says to stop; repeat until the experiment completes. All
state lives in the store and the trials' directories, so the loop can be killed at any point
and started again (see ``process.TrialProcess``).

Every change is committed before the loop acts on it: the metrics read and the trials
marked ended in one pass are committed with the experiment's new status in one transaction
(nothing outside the store happens in between), and only then does a collector record how
far it read, a trial get stopped or a new one start. The runner reads the trials from the
store once and then keeps them in memory: it is the only writer of its experiment's trials.
What others may change (the budget, a stop request) it reads back from the stored experiment
about once a second (``control.RunnerControl``).
"""

from __future__ import annotations

import logging
import os
import random
import string
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from katib.api.model import (
    Experiment,
    ObjectMeta,
    ParameterAssignment,
    Trial,
    TrialCondition as TC,
    TrialSpec,
    TrialStatus,
)
from katib.api.observation import MetricLog
from katib.backends.local import deadline as deadlines
from katib.backends.local.collect import TrialCollector, check_collector
from katib.backends.local.control import STOP_MESSAGE, RunnerControl
from katib.backends.local.lock import runner_lock
from katib.backends.local.outage import Outage
from katib.backends.local.process import ProcessSpec, TrialProcess, output_tail, stop_all
from katib.controller.conditions import is_true, now_rfc3339, set_condition
from katib.controller.reconcile import compute_status, mark_interrupted, reconcile
from katib.controller.template import primary_container, render_trial_spec
from katib.errors import (
    NotFoundError,
    SearchSpaceExhausted,
    ServiceError,
    SettingsError,
    SuggestionsPending,
    TemplateError,
)
from katib.metrics.strategies import fold
from katib.metrics.values import unavailable_message

__all__ = ["LocalRunner", "RunOptions", "SuggestionServiceUnavailable", "run_directory", "trial_directory"]

log = logging.getLogger(__name__)

# Upstream's trial-name suffix alphabet (k8s utilrand): no vowels, no confusable characters.
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
INTERRUPTED = "katib.kubeflow.org/interrupted"
_ACTIVE = ("Pending", TC.RUNNING)  # the states a trial leaves only through this runner
DEFAULT_SUGGESTION_TIMEOUT = 300.0
WORKDIR_FILE = "workdir"


class SuggestionServiceUnavailable(ServiceError):
    """The suggestion service could not be reached for longer than the runner waits
    (``RunOptions.suggestion_timeout``). The experiment's running trials were stopped and
    recorded as interrupted, so running the experiment again resumes it."""

    def __init__(self, message: str, *, address: str | None, waited: float) -> None:
        super().__init__(message, retryable=True)
        self.address = address
        self.waited = waited


def run_directory(base: Path, namespace: str, experiment: str) -> Path:
    """Where an experiment's trial directories (and its runner lock) live under KATIB_HOME."""
    return base / "runs" / namespace / experiment


def trial_directory(base: Path, namespace: str, experiment: str, trial: str) -> Path:
    return run_directory(base, namespace, experiment) / trial


@dataclass
class RunOptions:
    base_dir: Path  # holds runs/<namespace>/<experiment>/<trial>/
    workdir: str  # where trial commands run unless workingDir is set
    poll_interval: float = 0.2
    grace_period: float = 10.0  # SIGTERM -> SIGKILL
    config_maps: Any = None
    extra_env: dict[str, str] = field(default_factory=dict)
    # How a trial runs: a process group by default; tune() runs trials in a worker pool.
    process_factory: Callable[[Path], TrialProcess] = TrialProcess
    # Set by anything that knows a trial ended (a worker pool), so the loop reacts at once
    # instead of at the next poll.
    wake: threading.Event = field(default_factory=threading.Event)
    # How long a suggestion service that cannot be reached (UNAVAILABLE, DEADLINE_EXCEEDED)
    # is waited for, asking again with backoff while the running trials go on; then the
    # runner stops them (resumable) and raises SuggestionServiceUnavailable.
    suggestion_timeout: float = DEFAULT_SUGGESTION_TIMEOUT


class LocalRunner:
    """Runs one experiment to completion (or until interrupted)."""

    def __init__(self, store: Any, experiment: Experiment, suggester: Any, options: RunOptions, *,
                 early_stopper: Any = None, on_progress: Callable[[Experiment, list[Trial]], None] | None = None) -> None:
        self.store = store
        self.experiment = experiment
        self.suggester = suggester
        self.options = options
        self.early_stopper = early_stopper
        self.on_progress = on_progress
        self.namespace = experiment.metadata.namespace or "default"
        self.processes: dict[str, TrialProcess] = {}
        # Every trial of the experiment in creation order, read from the store once and then
        # kept current by this runner, which writes every change it makes to a trial (reading
        # and decoding them again every loop made a loop O(trials)). ``_active``: the ones
        # still Pending or Running, the only ones a loop looks at.
        self._trials: dict[str, Trial] | None = None
        self._active: dict[str, Trial] = {}
        # Collectors whose rows are in the open transaction: they record how far they read
        # once it is committed.
        self._to_commit: list[TrialCollector] = []
        self._depth = 0  # nesting of _writes()
        self.collectors: dict[str, TrialCollector] = {}
        self.logs: dict[str, list[MetricLog]] = {}
        self._interrupted = threading.Event()
        self._exhausted = False
        self._suggestion_failed: str | None = None
        self._outage = Outage(options.suggestion_timeout, getattr(suggester, "address", None))
        # Trials stopped for passing their active deadline: name -> the deadline in seconds.
        self._overdue: dict[str, float] = {}
        # Budget changes and stop requests made from outside (KatibClient, the dashboard).
        self.control = RunnerControl(store, experiment)
        self.stop_requested: str | None = None  # when the stop request this run obeyed was made
        self.deleted = False  # the experiment was deleted while it ran
        check_collector(experiment)

    # -- public ----------------------------------------------------------------------------
    def interrupt(self) -> None:
        """Stop soon: running trials get SIGTERM and are recorded as Killed (interrupted);
        the experiment is marked Running=False (ExperimentInterrupted), not completed, so
        that ``katib run`` again resumes it."""
        self._interrupted.set()
        self.options.wake.set()

    def run(self) -> Experiment:
        directory = run_directory(self.options.base_dir, self.namespace, self.experiment.name)
        with runner_lock(directory, self.experiment.name):  # held already by katib run and tune()
            # Where trial commands run, for a runner started later by `katib resume`.
            (directory / WORKDIR_FILE).write_text(self.options.workdir)
            try:
                return self._run()
            except NotFoundError:
                if not self.control.poll(force=True).deleted:
                    raise
                self._abandon()
                return self.experiment

    def _run(self) -> Experiment:
        self.control.begin()
        self._resume()
        while True:
            trials = self._list_trials()
            requests = self.control.poll()
            if requests.deleted:
                self._abandon()
                return self.experiment
            if requests.stop and not self._interrupted.is_set():
                log.info("experiment %s: stop requested (%s)", self.experiment.name, requests.stop)
                self.stop_requested = requests.stop
                self._interrupted.set()
            with self._writes():  # this pass's metrics, ended trials and the experiment's status
                stopping = self._collect()
                interrupted = self._interrupted.is_set()
                if not interrupted and not stopping:
                    actions = reconcile(self.experiment, trials, now_rfc3339(),
                                        suggestion_exhausted=self._exhausted,
                                        suggestion_failed=self._suggestion_failed,
                                        suggestion_unavailable=self._outage.text())
                    self.experiment.status = actions.status
                    self.store.update_experiment_status(self.experiment)
            self._enforce_deadlines()
            if stopping:
                for trial, decision in stopping:
                    self._early_stop(trial, decision)
                continue
            if interrupted and self.stop_requested:
                self._stop_all(trials, "the experiment was stopped by a request; running it again resumes it",
                               f"{STOP_MESSAGE}; running it again resumes it")
                self.control.clear_stop()
                return self.experiment
            if interrupted:
                self._stop_all(trials, "interrupted (Ctrl-C); `katib run` again resumes it",
                               "Experiment was interrupted; running it again resumes it")
                return self.experiment
            if actions.stop:
                self._stop_trials([t for t in trials if t.name in actions.stop], reason="experiment completed")
                continue
            if actions.completed:
                if self.control.raised_at_the_end():
                    continue  # the next reconcile restarts it
                self._progress(trials)
                return self.experiment
            if actions.request and self._outage.may_ask():
                created = self._create_trials(trials, actions.request)
                if self._outage.gave_up is not None:
                    self._give_up(trials, self._outage.gave_up)
                if created and (len(created) < actions.request or any(t.name not in self._active for t in created)):
                    continue  # ask again at once for the rest, or count the trials that ended already
                # Else nothing is to be decided before a trial ends: the next pass (on the wake
                # or at the poll) records the new trials in the experiment's status.
                trials = self._list_trials()
            self._progress(trials)
            self.options.wake.wait(self.options.poll_interval)
            self.options.wake.clear()

    def _abandon(self) -> None:
        """The experiment was deleted: end its trials' processes, write nothing."""
        log.warning("experiment %s was deleted while it ran; stopping its trials", self.experiment.name)
        self.deleted = True
        stop_all([self._process(t) for t in self._active.values()], self.options.grace_period)

    def _list_trials(self) -> list[Trial]:
        if self._trials is None:
            listed = self.store.list_trials(self.experiment.name, self.namespace)
            self._trials = {t.name: t for t in listed}
            self._active = {t.name: t for t in listed if t.status.state in _ACTIVE}
        return list(self._trials.values())

    @contextmanager
    def _writes(self) -> Iterator[None]:
        """One store transaction (a nested block joins it); the collectors that read rows in
        it record their offsets once it is committed (a runner killed before that reads
        those rows again)."""
        self._depth += 1
        try:
            with self.store.transaction():
                yield
        finally:
            self._depth -= 1
        if self._depth == 0:
            collectors, self._to_commit = self._to_commit, []
            for collector in collectors:
                collector.commit()

    # -- resume ----------------------------------------------------------------------------
    def _resume(self) -> None:
        """Adopt trials still running from an earlier runner; re-run interrupted ones."""
        trials = self.store.list_trials(self.experiment.name, self.namespace)
        if self.early_stopper is not None:
            self._replay_early_stopping(trials)
        for trial in trials:
            state = trial.status.state
            if state == TC.KILLED and trial.metadata.annotations.get(INTERRUPTED) == "true":
                # Interrupted by Ctrl-C: run it again under the same name so no budget is lost
                # and no trial is duplicated. Its partial metrics belong to the aborted run, and
                # so does how far its output was read ("collected"): a runner that resumes the
                # new attempt must not skip that much of the new output.
                trial.metadata.annotations.pop(INTERRUPTED)
                trial.status = TrialStatus(start_time=now_rfc3339(), conditions=[])
                self._set(trial, TC.CREATED, "Trial is created again to resume the experiment")
                self.store.delete_observations(trial.name)
                self.store.update_trial(trial)
                proc = self._process(trial)
                for name in ("pid", "exitcode", "stdout.log", "collected"):
                    (proc.directory / name).unlink(missing_ok=True)
                self._start(trial)
            elif state in ("Pending", TC.RUNNING):
                proc = self._process(trial)
                if proc.adopt() or proc.exit_code() is not None:
                    # Running on, or ended while nobody watched: collect from where we were.
                    self.logs[trial.name] = self.store.get_observations(trial.name)
                    self.collectors[trial.name] = TrialCollector.for_trial(
                        self.experiment, trial, proc.directory, resume=True, stored=self.logs[trial.name])
                elif not proc.recorded():
                    self._start(trial)
                else:
                    self._finish(trial, TC.FAILED, "TrialFailed",
                                 "The trial's process disappeared without an exit status while no runner watched it")

    def _replay_early_stopping(self, trials: list[Trial]) -> None:
        """A new early-stopping session learns the finished trials' curves again."""
        for trial in trials:
            if trial.status.state in TC.COMPLETED:
                self.early_stopper.observe(trial.name, self._objective_rows(trial, self.store.get_observations(trial.name)))
                self.early_stopper.trial_finished(trial.name, trial.status.state)

    def steps_saved(self, trials: list[Trial]) -> int:
        """Reports the early-stopped trials did not make: the longest completed trial's
        number of objective reports minus each stopped trial's."""
        def reports(t: Trial) -> int:
            name = t.spec.objective.objective_metric_name if t.spec.objective else None
            return sum(1 for r in self.store.get_observations(t.name, name))
        full = max((reports(t) for t in trials if t.status.state == TC.SUCCEEDED), default=0)
        return sum(max(0, full - reports(t)) for t in trials if t.status.state == TC.EARLY_STOPPED)

    # -- trials ----------------------------------------------------------------------------
    def _process(self, trial: Trial) -> TrialProcess:
        proc = self.processes.get(trial.name)
        if proc is None:
            directory = trial_directory(self.options.base_dir, self.namespace, self.experiment.name, trial.name)
            proc = self.processes[trial.name] = self.options.process_factory(directory)
        return proc

    def _new_name(self, taken: set[str]) -> str:
        while True:
            name = f"{self.experiment.name}-" + "".join(random.choices(_ALPHABET, k=8))
            if name not in taken:
                return name

    def _create_trials(self, trials: list[Trial], n: int) -> list[Trial]:
        try:
            assignments = self.suggester.suggest(self.experiment, trials, n)
        except SearchSpaceExhausted:
            self._exhausted = True
            return []
        except SuggestionsPending:
            return []  # asked again after the next trial finishes
        except SettingsError as exc:
            self._suggestion_failed = str(exc)
            return []
        except ServiceError as exc:
            if not exc.retryable:
                raise
            self._outage.failed(exc)  # asked again later; the loop goes on meanwhile
            return []
        self._outage.answered()
        taken = set(self._trials) if self._trials is not None else {t.name for t in trials}
        created = []
        spec = self.experiment.spec
        for a in assignments:
            name = a.trial_name or self._new_name(taken)
            taken.add(name)
            # The experiment's objective and collector go in uncopied: this object is only
            # encoded into the store, and the runner keeps the copy the store decodes.
            labels = dict(self.experiment.metadata.labels)
            labels.update(a.labels)
            labels["katib.kubeflow.org/experiment"] = self.experiment.name
            trial = Trial(
                metadata=ObjectMeta(name=name, namespace=self.namespace, labels=labels),
                spec=TrialSpec(
                    objective=spec.objective,
                    parameter_assignments=[ParameterAssignment(k, v) for k, v in a.values.items()],
                    metrics_collector=spec.metrics_collector_spec,
                    retain_run=bool(spec.trial_template and spec.trial_template.retain),
                    primary_container_name=spec.trial_template.primary_container_name if spec.trial_template else None,
                    primary_pod_labels=spec.trial_template.primary_pod_labels if spec.trial_template else None,
                    success_condition=spec.trial_template.success_condition if spec.trial_template else None,
                    failure_condition=spec.trial_template.failure_condition if spec.trial_template else None,
                    labels=dict(a.labels) or None,
                ),
                status=TrialStatus(start_time=now_rfc3339()),
            )
            self._set(trial, TC.CREATED, "Trial is created")
            try:
                assert spec.trial_template is not None
                trial.spec.run_spec = render_trial_spec(spec.trial_template, dict(a.values), name, self.namespace,
                                                        self.options.config_maps)
            except TemplateError as exc:
                with self._writes():
                    trial = self._remember(self.store.create_trial(trial))
                    self._finish(trial, TC.FAILED, "TrialFailed", f"The trial template could not be rendered: {exc}")
                created.append(trial)
                continue
            # Kept as stored (uid, creation time, assignments as upstream's strings), as a
            # later listing would return it.
            trial = self._remember(self.store.create_trial(trial))
            self._start(trial)
            created.append(trial)
        return created

    # -- suggestion service outage ----------------------------------------------------------
    def _give_up(self, trials: list[Trial], why: str) -> None:
        """Stop the running trials as interrupted (a rerun resumes them) and raise."""
        waited = self._outage.waited()
        self._stop_all(trials, "the suggestion service was unavailable; running the experiment again resumes it",
                       f"Experiment was interrupted: {why}; running it again resumes it")
        raise SuggestionServiceUnavailable(why, address=getattr(self.suggester, "address", None), waited=waited)

    # -- active deadlines --------------------------------------------------------------------
    def _deadline(self, trial: Trial) -> float | None:
        return deadlines.active_deadline(trial.spec.run_spec)

    def _enforce_deadlines(self) -> None:
        """Stop running trials past their active deadline, counted from their recorded start
        (so a restarted runner keeps the count): SIGTERM, then SIGKILL after the grace
        period. The next pass finds them ended and records them Failed (DeadlineExceeded)."""
        now = time.time()
        for trial in list(self._active.values()):
            proc = self.processes.get(trial.name)
            if proc is None or trial.name not in self.collectors:
                continue
            if trial.name in self._overdue:
                proc.kill_if_overdue(self.options.grace_period)
                continue
            limit = self._deadline(trial)
            if limit is None:
                continue
            elapsed = deadlines.seconds_since(trial.status.start_time, now)
            if elapsed is not None and elapsed >= limit and proc.exit_code() is None:
                log.info("trial %s passed its active deadline of %g s; stopping it", trial.name, limit)
                self._overdue[trial.name] = limit
                proc.terminate()

    def _remember(self, trial: Trial) -> Trial:
        if self._trials is not None:
            self._trials[trial.name] = trial
            self._active[trial.name] = trial
        return trial

    def _start(self, trial: Trial) -> None:
        assert trial.spec.run_spec is not None
        container = primary_container(trial.spec.run_spec, trial.spec.primary_container_name or "",
                                      primary_pod_labels=trial.spec.primary_pod_labels)
        proc = self._process(trial)
        collector = TrialCollector.for_trial(self.experiment, trial, proc.directory)
        env = dict(os.environ)
        env.update(self.options.extra_env)
        # The container's own env may name the metrics path too (LOG_DIR=/var/log/katib/...):
        # it moves with the trial's copy of that directory, like the command's arguments.
        env.update({k: collector.rewrite_text(v) for k, v in container.resolve_env(trial).items()})
        env.update({
            "KATIB_TRIAL_NAME": trial.name,
            "KATIB_EXPERIMENT_NAME": self.experiment.name,
            "KATIB_NAMESPACE": self.namespace,
            "KATIB_TRIAL_DIR": str(proc.directory),
            "KATIB_DB_URL": self.store.url.render_as_string(hide_password=False),
            "PYTHONUNBUFFERED": "1",  # metrics must arrive while the trial runs, not at exit
        })
        env.update(collector.env)
        command = collector.rewrite([*container.command, *container.args])
        if not command:
            raise TemplateError(f"trial {trial.name}: the primary container "
                                f"{trial.spec.primary_container_name!r} has no command; the local backend "
                                "runs commands, not images: set command (and args)")
        if command[0] in ("python", "python3"):
            command[0] = sys.executable  # run trials with the interpreter (and venv) katib runs in
        cwd = container.working_dir if container.working_dir and os.path.isdir(container.working_dir) \
            else self.options.workdir
        proc.start(ProcessSpec(command=command, env=env, cwd=cwd))
        self.collectors[trial.name] = collector
        self.logs[trial.name] = []
        self._set(trial, TC.RUNNING, "Trial is running")
        self.store.update_trial(trial)

    def _collect(self) -> list[tuple[Trial, Any]]:
        """Read new metrics of running trials; mark trials whose process ended. Only store
        writes happen here (in the caller's transaction); the running trials the
        early-stopping rule decided to stop are returned with its decision, to be stopped
        once those writes are committed."""
        stopping: list[tuple[Trial, Any]] = []
        for trial in list(self._active.values()):
            proc = self.processes.get(trial.name)
            collector = self.collectors.get(trial.name)
            if proc is None or collector is None:
                continue
            code = proc.exit_code()  # read before the last collect so no line is missed
            ended = code is not None or proc.ended_without_record()
            new = collector.poll() if code is None else collector.finish()
            if new:
                self.store.report_observations(trial.name, new)
                self.logs.setdefault(trial.name, []).extend(new)
                if not ended:  # an ended trial is never collected again
                    self._to_commit.append(collector)
            if collector.pushes:
                logs = self.store.get_observations(trial.name)
                changed = len(logs) != len(self.logs.get(trial.name, []))
                self.logs[trial.name] = logs
                new = new or (logs if changed else [])
            if new:
                trial.status.observation = self._fold(trial)
                if not ended:  # else the write that ends it carries the observation
                    self.store.update_trial(trial)
                if self.early_stopper is not None:
                    if code is None:
                        decision = self.early_stopper.report(trial.name, self._objective_rows(trial, new))
                        if decision and ended:  # its process is gone already: nothing to wait for
                            self._early_stop(trial, decision)
                        elif decision:
                            stopping.append((trial, decision))
                    else:  # the trial's last logs still belong to its curve
                        self.early_stopper.observe(trial.name, self._objective_rows(trial, new))
            if ended:
                if trial.name in self._overdue:
                    self._finish(trial, TC.FAILED, deadlines.REASON, deadlines.message(self._overdue.pop(trial.name)))
                else:
                    self._ended(trial, code)
        return stopping

    @staticmethod
    def _objective_rows(trial: Trial, rows: list[MetricLog]) -> list[MetricLog]:
        objective = trial.spec.objective.objective_metric_name if trial.spec.objective else None
        return [r for r in rows if r.metric_name == objective]

    def _fold(self, trial: Trial) -> Any:
        names = trial.spec.objective.metric_names if trial.spec.objective else None
        return fold(self.logs.get(trial.name, []), names)

    def _early_stop(self, trial: Trial, decision: Any) -> None:
        """Stop the trial and record it EarlyStopped with its last metrics."""
        proc = self.processes[trial.name]
        proc.stop(self.options.grace_period)
        final = self.collectors[trial.name].finish()
        with self._writes():
            if final:
                self.store.report_observations(trial.name, final)
                self.logs[trial.name].extend(final)
                self.early_stopper.observe(trial.name, self._objective_rows(trial, final))
                trial.status.observation = self._fold(trial)
            self._finish(trial, TC.EARLY_STOPPED, "TrialEarlyStopped", decision.message)

    def _ended(self, trial: Trial, code: int | None) -> None:
        if trial.status.state in TC.COMPLETED:
            return
        if code is None:
            self._finish(trial, TC.FAILED, "TrialFailed", "The trial's process ended without an exit status")
        elif code != 0:
            tail = self._tail(trial)
            self._finish(trial, TC.FAILED, "TrialFailed",
                         f"Trial has failed. Job message: command exited with status {code}" + tail)
        else:
            objective = trial.spec.objective.objective_metric_name if trial.spec.objective else None
            metric = trial.status.observation.metric(objective) if trial.status.observation and objective else None
            if metric is None or metric.latest in (None, "unavailable"):
                collector = self.collectors.get(trial.name)
                self._finish(trial, TC.METRICS_UNAVAILABLE, "MetricsUnavailable",
                             unavailable_message(objective or "", collector.refused if collector else None)
                             + self._tail(trial))
            else:
                self._finish(trial, TC.SUCCEEDED, "TrialSucceeded", "Trial has succeeded")

    def _tail(self, trial: Trial) -> str:
        text = output_tail(self.processes[trial.name].log_path)
        return f"; last output:\n{text}" if text else ""

    def _finish(self, trial: Trial, state: str, reason: str, message: str) -> None:
        self._set(trial, state, message, reason)
        trial.status.completion_time = now_rfc3339()
        self.store.update_trial(trial)
        self._active.pop(trial.name, None)
        self.collectors.pop(trial.name, None)
        if self.early_stopper is not None:
            self.early_stopper.trial_finished(trial.name, state)

    def _set(self, trial: Trial, state: str, message: str, reason: str | None = None) -> None:
        now = now_rfc3339()
        conds = trial.status.conditions
        if state in TC.COMPLETED and is_true(conds, TC.RUNNING):
            set_condition(conds, TC.RUNNING, "False", TC.REASONS[TC.RUNNING], message, now)
        set_condition(conds, state, "True", reason or TC.REASONS[state], message, now)

    def _stop_trials(self, trials: list[Trial], reason: str, interrupted: bool = False) -> None:
        stop_all([self._process(t) for t in trials], self.options.grace_period)
        for trial in trials:
            collector = self.collectors.get(trial.name)
            with self._writes():
                final = collector.finish() if collector is not None else []
                if final:
                    self.store.report_observations(trial.name, final)
                    self.logs.setdefault(trial.name, []).extend(final)
                    trial.status.observation = self._fold(trial)
                if interrupted:
                    trial.metadata.annotations[INTERRUPTED] = "true"
                self._finish(trial, TC.KILLED, "TrialKilled", f"Trial was stopped: {reason}")

    def _stop_all(self, trials: list[Trial], reason: str, message: str) -> None:
        """Stop every running trial as interrupted (a rerun starts it again under its name)
        and mark the experiment interrupted: not Running, not completed."""
        active = [t for t in trials if t.status.state in (TC.RUNNING, "Pending")]
        self._stop_trials(active, reason, interrupted=True)
        trials = self.store.list_trials(self.experiment.name, self.namespace)
        now = now_rfc3339()
        # Counts only: a reconcile would take the interrupted trials for finished ones and
        # could end the experiment (maxTrialCount reached) though they are to run again.
        status = compute_status(self.experiment, trials)
        status.last_reconcile_time = now
        self.experiment.status = mark_interrupted(status, message, now)
        self.store.update_experiment_status(self.experiment)

    def _progress(self, trials: list[Trial]) -> None:
        if self.on_progress is not None:
            self.on_progress(self.experiment, trials)

