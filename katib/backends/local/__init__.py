"""The embedded default: trials as local processes, state in the store.

``prepare`` turns a loaded experiment into a defaulted, validated one (nothing runs on bad
input); ``open_experiment`` creates it in the store or resumes the stored one; ``run``
drives it to completion with ``LocalRunner``. ``control`` acts on a stored experiment from
outside its runner (budget, stop, delete, a detached runner for it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterable

from katib.api.defaults import set_defaults
from katib.api.model import Experiment, ExperimentCondition, ExperimentSpec, ResumePolicy, Trial
from katib.api.space import SearchSpace
from katib.api.validation import validate
from katib.backends.local.collect import check_collector
from katib.backends.local.lock import runner_lock
from katib.backends.local.runner import LocalRunner, RunOptions, run_directory
from katib.errors import AlreadyExistsError, FieldError, NotFoundError, SettingsError, ValidationError

__all__ = ["prepare", "exclusive", "open_experiment", "run", "katib_home", "LocalRunner", "RunOptions",
           "LAST_APPLIED_BUDGET"]


def katib_home() -> Path:
    """Where local runs keep trial directories (``KATIB_HOME``, default ``~/.katib``)."""
    return Path(os.environ.get("KATIB_HOME", "~/.katib")).expanduser()


def _known_early_stopping() -> list[str]:
    try:
        from earlystop import registry as es_registry
    except ImportError:  # pragma: no cover - early stopping is part of the package
        return []
    return list(es_registry.names())


def check_settings(exp: Experiment) -> list[FieldError]:
    """Algorithm and early-stopping settings checked before anything runs (upstream only
    finds out when the suggestion service first answers)."""
    from suggestion import registry

    errors: list[FieldError] = []
    spec = exp.spec
    if spec.algorithm is None or not spec.algorithm.algorithm_name:
        return errors
    try:
        cls = registry.get(spec.algorithm.algorithm_name)
        assert spec.objective is not None
        cls.validate_settings(spec.algorithm.settings, SearchSpace.from_experiment(spec), spec.objective,
                              max_trial_count=spec.max_trial_count, parallel_trial_count=spec.parallel_trial_count)
    except SettingsError as exc:
        errors.append(FieldError("spec.algorithm.algorithmSettings", str(exc)))
    except NotFoundError as exc:
        errors.append(FieldError("spec.algorithm.algorithmName", str(exc).split(": ", 1)[-1]))
    except ValidationError as exc:
        errors.extend(exc.errors)
    if spec.early_stopping is not None and spec.early_stopping.algorithm_name:
        try:
            from earlystop import registry as es_registry

            es_registry.get(spec.early_stopping.algorithm_name).validate_settings(spec.early_stopping.settings)
        except SettingsError as exc:
            errors.append(FieldError("spec.earlyStopping.algorithmSettings", str(exc)))
        except NotFoundError as exc:
            errors.append(FieldError("spec.earlyStopping.algorithmName", str(exc)))
    return errors


# Upstream algorithms served only by upstream's suggestion images: valid in an experiment,
# runnable with `katib run --suggestion-address NAME=HOST:PORT` or on Kubernetes.
EXTERNAL_ALGORITHMS = ("pbt", "enas", "darts")


def prepare(exp: Experiment, *, config_maps: Any = None, remote_algorithms: Iterable[str] = (),
            old: Experiment | None = None, local: bool = True) -> Experiment:
    """Default and validate; raise ValidationError listing every problem.

    ``local=False`` checks the experiment as Katib would accept it (``katib validate``);
    ``local=True`` also checks that ``katib run`` can run it here (the algorithm is built in
    or has a remote address, the metrics collector works without a cluster).
    """
    from suggestion import registry

    exp.metadata.namespace = exp.metadata.namespace or "default"
    if local and not exp.spec.resume_policy:
        # Upstream defaults to Never to reclaim the suggestion Deployment of a finished
        # experiment; here there is none (the search is rebuilt from the stored trials), so a
        # finished experiment can be given more trials unless its file says Never.
        exp.spec.resume_policy = ResumePolicy.LONG_RUNNING
    set_defaults(exp, config_maps=config_maps)
    remote = set(remote_algorithms)
    builtin = set(registry.names())
    known = builtin | remote | set(EXTERNAL_ALGORITHMS)
    errors = validate(exp, old=old, known_algorithms=known, known_early_stopping=_known_early_stopping(),
                      config_maps=config_maps)
    name = exp.spec.algorithm.algorithm_name if exp.spec.algorithm else None
    if not errors and name in builtin and name not in remote:
        errors.extend(check_settings(exp))
    if not errors and local:
        if name not in builtin and name not in remote:
            errors.append(FieldError("spec.algorithm.algorithmName", (
                f"{name!r} is not built in; run it with an upstream-compatible suggestion service: "
                f"katib run --suggestion-address {name}=HOST:PORT (or on Kubernetes)")))
        try:
            check_collector(exp)
        except ValidationError as exc:
            errors.extend(exc.errors)
    if errors:
        raise ValidationError(errors)
    return exp


_BUDGET = ("parallel_trial_count", "max_trial_count", "max_failed_trial_count")


def _differences(a: Any, b: Any, path: str, out: list[str]) -> None:
    """The paths where ``a`` and ``b`` (decoded JSON) differ, as specific as their shapes allow."""
    if a == b:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            _differences(a.get(key), b.get(key), f"{path}.{key}", out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            _differences(x, y, f"{path}[{i}]", out)
    else:
        out.append(path)


def spec_differences(stored: ExperimentSpec, new: ExperimentSpec) -> list[str]:
    """What differs between two specs besides what a resume may change: the budget and,
    locally, the resumePolicy (it only decides whether a finished experiment may go on)."""
    da, db = stored.to_dict(), new.to_dict()
    for key in ("parallelTrialCount", "maxTrialCount", "maxFailedTrialCount", "resumePolicy"):
        da.pop(key, None)
        db.pop(key, None)
    out: list[str] = []
    _differences(da, db, "spec", out)
    return out


def _refuse_restart(stored: Experiment, exp: Experiment) -> FieldError | None:
    """Upstream's rule for giving a finished experiment more trials (reference §6.7): only
    one that ended by reaching maxTrialCount, with resumePolicy LongRunning or FromVolume."""
    status = stored.status
    if status is None or not (status.is_true(ExperimentCondition.SUCCEEDED)
                              or status.is_true(ExperimentCondition.FAILED)):
        return None
    ended = next((c for c in status.conditions if c.status == "True"
                  and c.type in (ExperimentCondition.SUCCEEDED, ExperimentCondition.FAILED)), None)
    reason = ended.reason if ended is not None else ""
    fresh = (f"to search further, run it under another name (katib run FILE --name NEW) or delete it first "
             f"(katib delete experiment {exp.name})")
    if reason != ExperimentCondition.REASON_MAX_TRIALS_REACHED:
        return FieldError("spec.maxTrialCount", (
            f"experiment {exp.name!r} has ended ({reason}); only an experiment that ended by reaching "
            f"maxTrialCount can be given more trials; {fresh}"))
    if exp.spec.resume_policy not in (ResumePolicy.LONG_RUNNING, ResumePolicy.FROM_VOLUME):
        return FieldError("spec.resumePolicy", (
            f"experiment {exp.name!r} reached its maxTrialCount and its resumePolicy is "
            f"{exp.spec.resume_policy or ResumePolicy.NEVER}, so it cannot be given more trials; set "
            f"resumePolicy: LongRunning in the file (or leave it out: LongRunning is the local default), or "
            f"{fresh}"))
    return None


def exclusive(exp: Experiment) -> ContextManager[None]:
    """Be the only runner of ``exp`` on this machine while the block runs (AlreadyExistsError
    otherwise): taken before the stored experiment is resumed or edited, held through ``run``."""
    namespace = exp.metadata.namespace or "default"
    return runner_lock(run_directory(katib_home(), namespace, exp.name), exp.name)


# The budget the file (or tune()'s arguments) gave when the experiment was last run, as JSON.
LAST_APPLIED_BUDGET = "katib.kubeflow.org/last-applied-budget"


_BUDGET_KEYS = {"maxTrialCount": "max_trial_count", "parallelTrialCount": "parallel_trial_count",
                "maxFailedTrialCount": "max_failed_trial_count"}


def _budget(spec: ExperimentSpec) -> dict[str, Any]:
    return {key: getattr(spec, attr) for key, attr in _BUDGET_KEYS.items()}


def _keep_edited_budget(stored: Experiment, exp: Experiment) -> None:
    """The rule kubectl apply follows with its last-applied configuration: a budget field the
    file has not changed since it was last run keeps the stored value (which KatibClient or
    the dashboard may have edited since); a field the file changed wins. Without a record
    (an experiment stored before there was one) the file wins."""
    try:
        last = json.loads(stored.metadata.annotations.get(LAST_APPLIED_BUDGET, "null"))
    except ValueError:
        last = None
    if not isinstance(last, dict):
        return
    given = _budget(exp.spec)
    for key, attr in _BUDGET_KEYS.items():
        if key in last and given[key] == last[key]:
            setattr(exp.spec, attr, getattr(stored.spec, attr))


def open_experiment(store: Any, exp: Experiment, *, config_maps: Any = None,
                    remote_algorithms: Iterable[str] = ()) -> tuple[Experiment, bool]:
    """Create the experiment in the store, or return the stored one to resume it.

    Resuming accepts the budget changes upstream accepts on update (parallelTrialCount,
    maxTrialCount, maxFailedTrialCount, with the same rules); any other difference is an
    error naming the way out. A budget edited in the store since the file was last run is
    kept unless the file changed that field too (``_keep_edited_budget``). Returns
    (experiment, resumed).
    """
    namespace = exp.metadata.namespace or "default"
    applied = json.dumps(_budget(exp.spec), sort_keys=True)
    try:
        stored = store.get_experiment(exp.name, namespace)
    except NotFoundError:
        stored = None
    if stored is None:
        exp.metadata.annotations[LAST_APPLIED_BUDGET] = applied
        try:
            store.create_experiment(exp)
        except AlreadyExistsError:  # lost a race with another runner: resume instead
            return open_experiment(store, exp, config_maps=config_maps, remote_algorithms=remote_algorithms)
        return exp, False
    differ = spec_differences(stored.spec, exp.spec)
    if differ:
        shown = ", ".join(differ[:5]) + (f" and {len(differ) - 5} more" if len(differ) > 5 else "")
        raise ValidationError([FieldError(
            "metadata.name",
            f"experiment {exp.name!r} already exists in namespace {namespace!r} with a different spec "
            f"({shown} differ); only parallelTrialCount, maxTrialCount and maxFailedTrialCount may change "
            f"when resuming. Delete it first (katib delete experiment {exp.name}) or choose another name")])
    _keep_edited_budget(stored, exp)
    changed = any(getattr(stored.spec, k) != getattr(exp.spec, k) for k in _BUDGET)
    if changed:
        refused = _refuse_restart(stored, exp)
        if refused is not None:
            raise ValidationError([refused])
        # Upstream's update rules, with the resumePolicy of the file (checked just above).
        old = stored.copy()
        old.spec.resume_policy = exp.spec.resume_policy
        prepare(exp, config_maps=config_maps, remote_algorithms=remote_algorithms, old=old)
    if (changed or stored.spec.resume_policy != exp.spec.resume_policy
            or stored.metadata.annotations.get(LAST_APPLIED_BUDGET) != applied):
        def apply(e: Experiment) -> None:
            for k in (*_BUDGET, "resume_policy"):
                setattr(e.spec, k, getattr(exp.spec, k))
            e.metadata.annotations[LAST_APPLIED_BUDGET] = applied
        # Spec and annotations only: the status stays whatever the store holds.
        stored = store.edit_experiment(exp.name, namespace, apply)
    return stored, True


def run(store: Any, exp: Experiment, suggester: Any, *, workdir: str | None = None, config_maps: Any = None,
        early_stopper: Any = None, on_progress: Callable[[Experiment, list[Trial]], None] | None = None,
        runner_hook: Callable[[LocalRunner], None] | None = None, poll_interval: float = 0.2,
        options: RunOptions | None = None) -> Experiment:
    options = options or RunOptions(base_dir=katib_home(), workdir=workdir or os.getcwd(), config_maps=config_maps,
                                    poll_interval=poll_interval)
    runner = LocalRunner(store, exp, suggester, options, early_stopper=early_stopper, on_progress=on_progress)
    if runner_hook is not None:
        runner_hook(runner)
    return runner.run()


