"""``katib.tune()``: tune a Python function, locally (default) or on Kubernetes.

::

    import katib
    from katib import search

    def objective(p):                       # p == {"lr": 0.013, "layers": 3, "opt": "adam"}
        return train(p["lr"], p["layers"], p["opt"])      # a number: the objective metric

    result = katib.tune(objective, {"lr": search.double(1e-4, 1e-1, distribution="logUniform"),
                                    "layers": search.int(1, 4), "opt": search.categorical(["adam", "sgd"])},
                        objective_metric_name="accuracy", max_trial_count=20, parallel_trial_count=2)
    result.best_parameters

The objective gets one argument, a dict of typed values. It may return a number (the
objective metric), a dict of metrics, or None; print ``name=value`` lines; or call
``katib.report_metrics({...}, step=n)`` as it trains, which feeds early stopping. An
exception fails that trial only; its traceback is printed and kept in the result.

Arguments keep upstream's names (reference §11.2) where upstream has them. Differences:
``objective`` and ``parameters`` come first; ``name`` is optional (``tune-<function>-<random>``;
the same name again resumes that experiment); the objective metric defaults to
``"objective"``; ``parallel_trial_count`` defaults to ``min(3, max_trial_count)``; ``early_stopping``, ``backend``, ``trainer``, ``wait``,
``progress`` and ``db_url`` are new. Locally ``base_image``, ``resources_per_trial`` and
``packages_to_install`` have no effect (the objective runs in this Python environment), but they
are part of the Experiment. ``trial_active_deadline_seconds`` holds everywhere: a trial still
running that long after it started is stopped and recorded Failed (reason DeadlineExceeded).
``tune(name=...)`` of a stored experiment resumes it (a larger ``max_trial_count`` gives a
finished one more trials); a different objective function, metric, goal or search space is
refused, naming what differs.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Callable, Mapping, Sequence

from katib.api.defaults import DEFAULT_PARALLEL_TRIAL_COUNT
from katib.sdk.experiment import (
    DEFAULT_METRIC,
    ExperimentArgs,
    Trainer,
    default_name,
    env_list,
    plan_parameters,
    resources,
)
from katib.sdk.result import TuneResult

__all__ = ["tune", "TuneResult", "Trainer"]

log = logging.getLogger(__name__)

BACKENDS = ("local", "kubernetes")


def _count(name: str, value: Any, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be a whole number of at least {minimum}, got {value!r}")
    return value


def _goal(value: Any) -> float | None:
    if value is None:
        return None
    try:
        goal = float(value)
    except (TypeError, ValueError, OverflowError):
        goal = math.nan
    if isinstance(value, bool) or not math.isfinite(goal):
        raise ValueError(f"objective_goal must be a finite number (the objective value that ends the search), "
                         f"got {value!r}")
    return goal


def tune(
    objective: Callable[[dict[str, Any]], Any],
    parameters: Mapping[str, Any],
    *,
    name: str | None = None,
    namespace: str | None = None,
    objective_metric_name: str | None = None,
    additional_metric_names: Sequence[str] | None = None,
    objective_type: str = "maximize",
    objective_goal: float | None = None,
    algorithm_name: str = "random",
    algorithm_settings: Mapping[str, Any] | Sequence[Any] | None = None,
    early_stopping: Any = None,
    max_trial_count: int | None = None,
    parallel_trial_count: int | None = None,
    max_failed_trial_count: int | None = None,
    env_per_trial: Mapping[str, str] | Sequence[Any] | None = None,
    retain_trials: bool = False,
    packages_to_install: Sequence[str] | None = None,
    pip_index_urls: Sequence[str] | None = None,
    base_image: str | None = None,
    resources_per_trial: Any = None,
    metrics_collector_config: Mapping[str, Any] | None = None,
    trial_active_deadline_seconds: int | None = None,
    trainer: Trainer | Mapping[str, Any] | None = None,
    backend: str = "local",
    wait: bool = False,
    progress: bool = True,
    db_url: str | None = None,
    client: Any = None,
    objective_transport: str = "source",
) -> Any:
    """Search ``parameters`` for the best value of ``objective``; see the module docstring.

    - ``early_stopping``: ``True`` (medianstop with its defaults), an algorithm name, or
      ``{"algorithm_name": "medianstop", "algorithm_settings": {"min_trials_required": 2,
      "start_step": 2}}``. It acts on metrics reported while the trial runs (printed lines or
      ``katib.report_metrics``), not on a returned value.
    - ``metrics_collector_config``: ``{"kind": "StdOut"}`` (default; returned, printed and
      reported metrics all flow through the trial's output) or ``{"kind": "Push"}``
      (``report_metrics`` writes to the store / DB manager).
    - ``backend="local"``: trials run in ``parallel_trial_count`` warm worker processes; returns a
      ``TuneResult``. ``progress=False`` silences the progress bar. ``db_url``: the store
      (default ``$KATIB_DB_URL`` or ``~/.katib/katib.db``).
    - ``backend="kubernetes"``: creates the Experiment through ``client`` (a ``KatibClient``,
      default one from the kube-config) and returns its name, or with ``wait=True`` waits and
      returns a ``TuneResult``. The trial is a batch Job, or with ``trainer`` a Kubeflow Trainer
      TrainJob (``katib.sdk.Trainer(runtime, num_nodes, resources_per_node)``). The objective
      travels as its source (``objective_transport="source"``, upstream's way: the function
      must import what it uses) or pickled (``"pickle"``: closures and lambdas too, but the
      image needs the same Python minor version; ``base_image`` defaults to python:X.Y-slim
      of this interpreter).
    """
    if not callable(objective):
        raise ValueError(f"objective must be a function taking a dict of parameters, got {objective!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    plan = plan_parameters(parameters)
    metric = objective_metric_name or DEFAULT_METRIC
    max_trial_count = _count("max_trial_count", max_trial_count, 1)
    if parallel_trial_count is None and max_trial_count is not None:
        # Upstream's default (3) is refused when the budget is smaller; ask for what can run.
        parallel_trial_count = min(DEFAULT_PARALLEL_TRIAL_COUNT, max_trial_count)
    args = ExperimentArgs(
        name=name or default_name(objective),
        namespace=namespace or "default",
        objective_metric_name=metric,
        additional_metric_names=list(additional_metric_names or []),
        objective_type=objective_type,
        objective_goal=_goal(objective_goal),
        algorithm_name=algorithm_name,
        algorithm_settings=algorithm_settings,
        early_stopping=early_stopping,
        max_trial_count=max_trial_count,
        parallel_trial_count=_count("parallel_trial_count", parallel_trial_count, 1),
        max_failed_trial_count=_count("max_failed_trial_count", max_failed_trial_count, 0),
        metrics_collector_config=dict(metrics_collector_config or {"kind": "StdOut"}),
        retain_trials=retain_trials,
        trial_active_deadline_seconds=_count("trial_active_deadline_seconds", trial_active_deadline_seconds, 1),
    )
    env = env_list(env_per_trial)
    trainer_spec = Trainer.of(trainer) if trainer is not None else None
    if backend == "kubernetes":
        from katib.sdk.kube import tune_on_kubernetes

        return tune_on_kubernetes(
            objective, plan, args, env=env, trainer=trainer_spec, client=client, wait=wait,
            namespace_given=namespace is not None, base_image=base_image,
            resources_per_trial=resources(resources_per_trial), packages_to_install=list(packages_to_install or []),
            pip_index_urls=list(pip_index_urls or []), transport=objective_transport, progress=progress)
    if args.max_trial_count is None and args.objective_goal is None:
        log.warning("tune(): no max_trial_count and no objective_goal: trials run until interrupted")
    for arg, value in (("packages_to_install", packages_to_install), ("base_image", base_image),
                       ("resources_per_trial", resources_per_trial)):
        if value:
            log.info("tune(): %s has no effect locally (the objective runs in this Python environment)", arg)
    from katib.sdk.local import run_local

    return run_local(objective, plan, args, env=env, trainer=trainer_spec, progress=progress, db_url=db_url)
