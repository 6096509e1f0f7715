"""``KatibClient``: upstream's SDK methods (reference §11.1) on Kubernetes or on the local store.

``KatibClient()`` talks to the API server (kube-config or in-cluster), as upstream's does;
``KatibClient(backend="local")`` reads what ``katib run`` and ``tune()`` wrote to the local
store (``db_url``, default ``$KATIB_DB_URL`` or ``~/.katib/katib.db``). Both return
``katib.api.model`` objects (``Experiment``, ``Trial``, ``OptimalTrial``: snake_case
attributes, like upstream's V1beta1 models) and metric rows as ``MetricLog``.

Both backends act on experiments too; locally a runner process plays the controller's part
(``katib.backends.local.control``):

- ``create_experiment`` validates first and raises ``ValidationError`` listing every problem
  with its field path (an error from the API server keeps the server's message). Locally it
  checks what ``katib run`` checks, stores the experiment and starts a detached runner
  (``katib resume NAME`` in its own session, output in ``runs/<ns>/<name>/runner.log`` under
  ``$KATIB_HOME``), which outlives this process.
- ``edit_experiment_budget`` changes maxTrialCount, parallelTrialCount, maxFailedTrialCount
  under upstream's update rules. A running local runner picks it up within about a second;
  an experiment that ended by reaching maxTrialCount is resumed by a detached runner, except
  one tune() ran (its objective lives in that process: call tune() again).
- ``stop_experiment`` (not in upstream's SDK): locally the runner stops its running trials
  and marks the experiment interrupted, so ``katib run`` / ``katib resume`` / tune() resume
  it. On Kubernetes the experiment gets no more trials: maxTrialCount is lowered to the
  number of trials it has, and the running ones finish (see the method).
- ``delete_experiment`` stops a running local experiment first.
- ``is_running_locally`` tells whether a runner on this machine runs the experiment.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any, Iterator

from katib.api.model import Condition, Experiment, OptimalTrial, Trial
from katib.api.observation import MetricLog
from katib.errors import NotFoundError, ValidationError

__all__ = ["KatibClient"]

log = logging.getLogger(__name__)

_EXPERIMENT_LABEL = "katib.kubeflow.org/experiment"
_SERVER_FIELDS = ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields", "selfLink")
# generateName's suffix alphabet, as the API server's (no vowels, no confusable characters)
_SUFFIX = "bcdfghjklmnpqrstvwxz2456789"


class KatibClient:
    def __init__(self, config_file: str | None = None, context: str | None = None,
                 client_configuration: Any = None, namespace: str | None = None, *,
                 backend: str = "kubernetes", db_url: str | None = None) -> None:
        if backend not in ("kubernetes", "local"):
            raise ValueError(f"backend must be 'kubernetes' or 'local', got {backend!r}")
        self.backend = backend
        self._store: Any = None
        self._kube: Any = None
        if backend == "local":
            from katib.store import Store

            self._store = Store(db_url) if db_url else Store()
            self.namespace = namespace or "default"
        else:
            from katib.backends.kubernetes.sdk_client import KubernetesApi

            self._kube = KubernetesApi(config_file, context, client_configuration, namespace)
            self.namespace = self._kube.namespace

    def _ns(self, namespace: str | None) -> str:
        return namespace or self.namespace

    @property
    def store(self) -> Any:
        """The local store this client reads (``katib.store.Store``), None on Kubernetes: for
        readers that need more than upstream's methods, such as the dashboard's brief,
        incremental trial reads."""
        return self._store

    def _local_only_reads(self, method: str) -> None:
        if self._kube is None:
            raise ValueError(f"KatibClient.{method}() needs the Kubernetes backend: the local backend has no "
                             "Suggestion objects (its algorithms run inside the experiment's runner)")

    # -- experiments -----------------------------------------------------------------------
    def create_experiment(self, experiment: Experiment | dict[str, Any], namespace: str | None = None, *,
                          workdir: str | None = None) -> Experiment:
        """Validate and create; returns the created Experiment (with uid, resourceVersion).
        Locally it also starts running (``workdir``: where trial commands run, default this
        process's working directory)."""
        from katib.backends.local import prepare

        if isinstance(experiment, Experiment):
            exp = experiment.copy()
        else:
            errors: list[Any] = []
            exp = Experiment.from_dict(dict(experiment), "", errors)
            if errors:
                raise ValidationError(errors)
        ns = namespace or exp.metadata.namespace or self.namespace
        exp.metadata.namespace = ns
        if not exp.metadata.name and not exp.metadata.generate_name:
            raise ValidationError("the experiment needs metadata.name (or metadata.generateName)", "metadata.name")
        if self._store is not None:
            from katib.backends.local import control

            if not exp.metadata.name:  # what the API server does with generateName
                exp.metadata.name = exp.metadata.generate_name + "".join(random.choices(_SUFFIX, k=5))  # type: ignore[operator]
            exp.status = None  # an experiment read back from a store can be created again
            exp.metadata.uid = exp.metadata.creation_timestamp = exp.metadata.resource_version = None
            exp.metadata.annotations.pop(control.STOP_REQUESTED, None)
            return control.create(self._store, exp, workdir=workdir)
        checked = exp.copy()
        if not checked.metadata.name:
            checked.metadata.name = checked.metadata.generate_name.rstrip("-") or "x"  # type: ignore[union-attr]
        prepare(checked, local=False)  # raises ValidationError naming each field
        body = exp.to_dict()
        body.pop("status", None)
        for key in _SERVER_FIELDS:  # an experiment read back from a cluster can be created again
            body.get("metadata", {}).pop(key, None)
        return Experiment.from_dict(self._kube.create("experiments", body, ns))  # type: ignore[no-any-return]

    def get_experiment(self, name: str, namespace: str | None = None, timeout: float = 120) -> Experiment:
        if self._store is not None:
            return self._store.get_experiment(name, self._ns(namespace))  # type: ignore[no-any-return]
        return Experiment.from_dict(self._kube.get("experiments", name, self._ns(namespace), timeout))  # type: ignore[no-any-return]

    def list_experiments(self, namespace: str | None = None, timeout: float = 120) -> list[Experiment]:
        if self._store is not None:
            return self._store.list_experiments(self._ns(namespace))  # type: ignore[no-any-return]
        return [Experiment.from_dict(e) for e in self._kube.list("experiments", self._ns(namespace), timeout=timeout)]

    def get_experiment_conditions(self, name: str, namespace: str | None = None, experiment: Experiment | None = None,
                                  timeout: float = 120) -> list[Condition]:
        exp = experiment or self.get_experiment(name, namespace, timeout)
        return list(exp.status.conditions) if exp.status else []

    def _is(self, kind: str, name: str, namespace: str | None, experiment: Experiment | None, timeout: float) -> bool:
        return any(c.type == kind and c.status == "True"
                   for c in self.get_experiment_conditions(name, namespace, experiment, timeout))

    def is_experiment_created(self, name: str, namespace: str | None = None, experiment: Experiment | None = None,
                              timeout: float = 120) -> bool:
        return self._is("Created", name, namespace, experiment, timeout)

    def is_experiment_running(self, name: str, namespace: str | None = None, experiment: Experiment | None = None,
                              timeout: float = 120) -> bool:
        return self._is("Running", name, namespace, experiment, timeout)

    def is_experiment_restarting(self, name: str, namespace: str | None = None,
                                 experiment: Experiment | None = None, timeout: float = 120) -> bool:
        return self._is("Restarting", name, namespace, experiment, timeout)

    def is_experiment_succeeded(self, name: str, namespace: str | None = None,
                                experiment: Experiment | None = None, timeout: float = 120) -> bool:
        return self._is("Succeeded", name, namespace, experiment, timeout)

    def is_experiment_failed(self, name: str, namespace: str | None = None, experiment: Experiment | None = None,
                             timeout: float = 120) -> bool:
        return self._is("Failed", name, namespace, experiment, timeout)

    def wait_for_experiment_condition(self, name: str, namespace: str | None = None,
                                      expected_condition: str = "Succeeded", timeout: float = 600,
                                      polling_interval: float = 15, apiserver_timeout: float = 120) -> Experiment:
        """Poll until the condition is True; RuntimeError when the experiment Failed (unless
        waiting for Failed), TimeoutError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            exp = self.get_experiment(name, namespace, apiserver_timeout)
            if self._is(expected_condition, name, namespace, exp, apiserver_timeout):
                return exp
            if expected_condition != "Failed" and self._is("Failed", name, namespace, exp, apiserver_timeout):
                message = next((c.message for c in exp.status.conditions if c.type == "Failed"), "")  # type: ignore[union-attr]
                raise RuntimeError(f"experiment {self._ns(namespace)}/{name} failed: {message}")
            if time.monotonic() >= deadline:
                raise TimeoutError(f"experiment {self._ns(namespace)}/{name} did not reach {expected_condition} "
                                   f"within {timeout} s")
            log.info("experiment %s: waiting for %s", name, expected_condition)
            time.sleep(min(polling_interval, max(0.0, deadline - time.monotonic())))

    def edit_experiment_budget(self, name: str, namespace: str | None = None, max_trial_count: int | None = None,
                               parallel_trial_count: int | None = None, max_failed_trial_count: int | None = None,
                               timeout: float = 120) -> Experiment:
        """Change the counts (the only spec fields an update may change). Checked like an
        update first, so a refused change names the rule instead of a bare 4xx. Locally, see
        the class docstring for who picks the change up."""
        from katib.backends.local.control import budget_errors

        changes = {k: v for k, v in (("maxTrialCount", max_trial_count), ("parallelTrialCount", parallel_trial_count),
                                     ("maxFailedTrialCount", max_failed_trial_count)) if v is not None}
        if not changes:
            raise ValueError("edit_experiment_budget: give max_trial_count, parallel_trial_count or "
                             "max_failed_trial_count")
        if self._store is not None:
            from katib.backends.local import control

            return control.edit_budget(self._store, name, self._ns(namespace), changes)
        old = self.get_experiment(name, namespace, timeout)
        new = old.copy()
        new.spec.max_trial_count = changes.get("maxTrialCount", new.spec.max_trial_count)
        new.spec.parallel_trial_count = changes.get("parallelTrialCount", new.spec.parallel_trial_count)
        new.spec.max_failed_trial_count = changes.get("maxFailedTrialCount", new.spec.max_failed_trial_count)
        errors = budget_errors(new, old)
        if errors:
            raise ValidationError(errors)
        return self._patch_spec(name, namespace, changes, timeout)

    def _patch_spec(self, name: str, namespace: str | None, changes: dict[str, Any], timeout: float) -> Experiment:
        return Experiment.from_dict(self._kube.patch("experiments", name, self._ns(namespace),  # type: ignore[no-any-return]
                                                     {"spec": changes}, timeout))

    def stop_experiment(self, name: str, namespace: str | None = None, *, wait: bool = False,
                        timeout: float = 120) -> Experiment:
        """Stop the experiment; returns it as it is then.

        Locally its runner stops the running trials (recorded Killed, to run again) and marks
        the experiment interrupted; ``katib run``, ``katib resume`` or tune() resume it. An
        experiment no runner runs is returned unchanged. ``wait``: return once the runner has
        stopped (TimeoutError after ``timeout`` seconds).

        On Kubernetes the experiment gets no more trials: maxTrialCount is lowered to the
        number of trials it has (at least 1; parallelTrialCount and maxFailedTrialCount
        lowered with it when above it, as validation requires), the running trials finish and
        the experiment ends ``Succeeded`` (``ExperimentMaxTrialsReached``), so raising
        maxTrialCount later restarts it (resumePolicy LongRunning or FromVolume). Upstream's
        admission webhook refuses a maxTrialCount not above ``status.trials`` (update rule 7),
        so against upstream's controller this raises its ValidationError; katib-lite's
        controller has no webhook and accepts it."""
        if self._store is not None:
            from katib.backends.local import control

            return control.request_stop(self._store, name, self._ns(namespace), wait=wait, timeout=timeout)
        exp = self.get_experiment(name, namespace, timeout)
        status = exp.status
        if status is not None and (status.is_true("Succeeded") or status.is_true("Failed")):
            return exp  # nothing runs any more
        have = max(len(self.list_trials(name, namespace, timeout)), (status.trials if status else None) or 0, 1)
        spec = exp.spec
        changes: dict[str, Any] = {}
        if spec.max_trial_count is None or spec.max_trial_count > have:
            changes["maxTrialCount"] = have
        if spec.parallel_trial_count is not None and spec.parallel_trial_count > have:
            changes["parallelTrialCount"] = have
        if spec.max_failed_trial_count is not None and spec.max_failed_trial_count > have:
            changes["maxFailedTrialCount"] = have
        return self._patch_spec(name, namespace, changes, timeout) if changes else exp

    def is_running_locally(self, name: str, namespace: str | None = None) -> bool:
        """Whether a runner on this machine (``katib run``, ``katib resume``, tune()) runs the
        experiment now. Always False on Kubernetes: its controller runs experiments."""
        if self._store is None:
            return False
        from katib.backends.local.control import runner_pid

        return runner_pid(name, self._ns(namespace)) is not None

    def delete_experiment(self, name: str, namespace: str | None = None, delete_options: Any = None) -> None:
        """Delete the experiment with its trials (and locally their metrics). Locally a running
        experiment is stopped first, so that nothing writes into it once it is gone."""
        if self._store is not None:
            from katib.backends.local import control

            control.delete(self._store, name, self._ns(namespace))
            return
        self._kube.delete("experiments", name, self._ns(namespace), delete_options)

    # -- trials ----------------------------------------------------------------------------
    def get_trial(self, name: str, namespace: str | None = None, timeout: float = 120) -> Trial:
        if self._store is not None:
            return self._store.get_trial(name, self._ns(namespace))  # type: ignore[no-any-return]
        return Trial.from_dict(self._kube.get("trials", name, self._ns(namespace), timeout))  # type: ignore[no-any-return]

    def list_trials(self, experiment_name: str | None = None, namespace: str | None = None,
                    timeout: float = 120) -> list[Trial]:
        """The experiment's trials (all trials in the namespace without a name)."""
        ns = self._ns(namespace)
        if self._store is not None:
            names = [experiment_name] if experiment_name else [e.name for e in self._store.list_experiments(ns)]
            return [t for n in names for t in self._store.list_trials(n, ns)]
        selector = f"{_EXPERIMENT_LABEL}={experiment_name}" if experiment_name else None
        return [Trial.from_dict(t) for t in self._kube.list("trials", ns, selector, timeout)]

    def get_success_trial_details(self, experiment_name: str | None = None, namespace: str | None = None,
                                  timeout: float = 120) -> list[dict[str, Any]]:
        """``{name, parameter_assignments, metrics}`` of each Succeeded trial (upstream's shape)."""
        out = []
        for t in self.list_trials(experiment_name, namespace, timeout):
            if t.status.state == "Succeeded":
                out.append({"name": t.name,
                            "parameter_assignments": [a.to_dict() for a in t.spec.parameter_assignments],
                            "metrics": [m.to_dict() for m in (t.status.observation.metrics
                                                              if t.status.observation else [])]})
        return out

    def get_optimal_hyperparameters(self, name: str, namespace: str | None = None,
                                    timeout: float = 120) -> OptimalTrial | None:
        """``status.currentOptimalTrial`` (best trial name, assignments, observation) or None."""
        exp = self.get_experiment(name, namespace, timeout)
        opt = exp.status.current_optimal_trial if exp.status else None
        return opt if opt is not None and opt.best_trial_name else None

    def get_trial_metrics(self, name: str, namespace: str | None = None, db_manager_address: str | None = None,
                          timeout: float = 120) -> list[MetricLog]:
        """Every observation row of trial ``name``: from the local store, or from the DB manager
        (``db_manager_address``, default upstream's in-cluster address)."""
        if self._store is not None and not db_manager_address:
            return self._store.get_observations(name)  # type: ignore[no-any-return]
        from katib.rpc.dbmanager_client import DEFAULT_ADDRESS, DBManagerClient

        client = DBManagerClient(deadline=timeout)
        try:
            return client.objective_logs(db_manager_address or DEFAULT_ADDRESS, name)
        finally:
            client.close()

    def get_job_logs(self, name: str, trial_name: str | None = None, follow: bool = False,
                     namespace: str | None = None) -> Iterator[str]:
        """Lines of the output of experiment ``name``'s trial ``trial_name`` (default: the best
        trial): its primary pod's log, or locally the trial's ``stdout.log``."""
        ns = self._ns(namespace)
        if trial_name is None:
            opt = self.get_optimal_hyperparameters(name, ns)
            if opt is None:
                raise NotFoundError(f"experiment {ns}/{name} has no best trial yet; name the trial")
            trial_name = opt.best_trial_name
        assert trial_name is not None
        if self._store is not None:
            return self._local_logs(name, trial_name, ns, follow)
        trial = self._kube.get("trials", trial_name, ns)
        return self._kube.pod_logs(trial, ns, follow)  # type: ignore[no-any-return]

    def _local_logs(self, experiment: str, trial: str, ns: str, follow: bool) -> Iterator[str]:
        from katib.backends.local import katib_home
        from katib.backends.local.runner import trial_directory

        path = trial_directory(katib_home(), ns, experiment, trial) / "stdout.log"
        if not path.exists():
            raise NotFoundError(f"trial {ns}/{trial} of experiment {experiment} has no output at {path}")
        with open(path, errors="replace") as f:
            while True:
                line = f.readline()
                if line:
                    yield line.rstrip("\n")
                    continue
                if not follow or (path.parent / "exitcode").exists():
                    return
                time.sleep(0.2)

    # -- suggestions (Kubernetes only) -----------------------------------------------------
    def get_suggestion(self, name: str, namespace: str | None = None, timeout: float = 120) -> dict[str, Any]:
        self._local_only_reads("get_suggestion")
        return self._kube.get("suggestions", name, self._ns(namespace), timeout)  # type: ignore[no-any-return]

    def list_suggestions(self, namespace: str | None = None, timeout: float = 120) -> list[dict[str, Any]]:
        """Suggestions (upstream lists experiments here by mistake, reference §11.1)."""
        self._local_only_reads("list_suggestions")
        return self._kube.list("suggestions", self._ns(namespace), timeout=timeout)  # type: ignore[no-any-return]

    # -- tune ------------------------------------------------------------------------------
    def tune(self, objective: Any, parameters: Any, **kwargs: Any) -> Any:
        """``katib.tune`` on this client's backend and namespace."""
        from katib.sdk.tune import tune

        kwargs.setdefault("namespace", self.namespace)
        if self._kube is not None:
            return tune(objective, parameters, backend="kubernetes", client=self, **kwargs)
        kwargs.setdefault("db_url", self._store.url.render_as_string(hide_password=False))
        return tune(objective, parameters, backend="local", **kwargs)

    def close(self) -> None:
        if self._kube is not None:
            self._kube.close()
        if self._store is not None:
            self._store.close()

    def __enter__(self) -> "KatibClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
