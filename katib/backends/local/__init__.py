"""The embedded default: trials as local processes, state in the store.

``prepare`` turns a loaded experiment into a defaulted, validated one (nothing runs on bad
input); ``open_experiment`` creates it in the store or resumes the stored one; ``run``
drives it to completion with ``LocalRunner``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterable

from katib.api.defaults import set_defaults
from katib.api.model import Experiment, ExperimentSpec, Trial
from katib.api.space import SearchSpace
from katib.api.validation import validate
from katib.backends.local.collect import check_collector
from katib.backends.local.lock import runner_lock
from katib.backends.local.runner import LocalRunner, RunOptions, run_directory
from katib.errors import AlreadyExistsError, FieldError, NotFoundError, SettingsError, ValidationError

__all__ = ["prepare", "exclusive", "open_experiment", "run", "katib_home", "LocalRunner", "RunOptions"]


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
    if spec.algorithm is None or not spec.algorithm.algorithm_name or spec.nas_config is not None:
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


_EDITABLE = ("parallel_trial_count", "max_trial_count", "max_failed_trial_count")


def _same_search(a: ExperimentSpec, b: ExperimentSpec) -> bool:
    da, db = a.to_dict(), b.to_dict()
    for key in ("parallelTrialCount", "maxTrialCount", "maxFailedTrialCount"):
        da.pop(key, None)
        db.pop(key, None)
    return da == db


def exclusive(exp: Experiment) -> ContextManager[None]:
    """Be the only runner of ``exp`` on this machine while the block runs (AlreadyExistsError
    otherwise): taken before the stored experiment is resumed or edited, held through ``run``."""
    namespace = exp.metadata.namespace or "default"
    return runner_lock(run_directory(katib_home(), namespace, exp.name), exp.name)


def open_experiment(store: Any, exp: Experiment, *, config_maps: Any = None,
                    remote_algorithms: Iterable[str] = ()) -> tuple[Experiment, bool]:
    """Create the experiment in the store, or return the stored one to resume it.

    Resuming accepts the budget changes upstream accepts on update (parallelTrialCount,
    maxTrialCount, maxFailedTrialCount, with the same rules); any other difference is an
    error naming the way out. Returns (experiment, resumed).
    """
    namespace = exp.metadata.namespace or "default"
    try:
        stored = store.get_experiment(exp.name, namespace)
    except NotFoundError:
        stored = None
    if stored is None:
        try:
            store.create_experiment(exp)
        except AlreadyExistsError:  # lost a race with another runner: resume instead
            return open_experiment(store, exp, config_maps=config_maps, remote_algorithms=remote_algorithms)
        return exp, False
    if not _same_search(stored.spec, exp.spec):
        raise ValidationError([FieldError(
            "metadata.name",
            f"experiment {exp.name!r} already exists in namespace {namespace!r} with a different spec; "
            f"only parallelTrialCount, maxTrialCount and maxFailedTrialCount may change when resuming. "
            f"Delete it first (katib delete experiment {exp.name}) or choose another name")])
    changed = any(getattr(stored.spec, k) != getattr(exp.spec, k) for k in _EDITABLE)
    if changed:
        prepare(exp, config_maps=config_maps, remote_algorithms=remote_algorithms, old=stored)
        for k in _EDITABLE:
            setattr(stored.spec, k, getattr(exp.spec, k))
        store.update_experiment(stored)
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


