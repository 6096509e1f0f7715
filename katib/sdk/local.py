"""tune() on this machine: the same runner as ``katib run``, trials in a warm worker pool.

The Experiment tune() builds goes through ``katib.backends.local`` exactly as a YAML file
does (defaults, validation, the store, the reconcile loop, early stopping, resume), so
``katib get`` / ``katib describe`` show it and ``tune(name=...)`` again resumes it. Only the
way a trial runs differs: ``RunOptions.process_factory`` hands the runner
``katib.sdk.pool.FunctionTrial`` handles instead of process groups.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import marshal
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable, cast

from katib.api.model import Experiment
from katib.errors import FieldError, NotFoundError, ValidationError
from katib.sdk.experiment import ExperimentArgs, Plan, Trainer, build_experiment, objective_options
from katib.sdk.pool import ENTRY_MODULE, FunctionTrial, WorkerPool
from katib.sdk.progress import TuneProgress
from katib.sdk.result import TuneResult

__all__ = ["run_local", "WithFixed", "objective_digest", "OBJECTIVE_DIGEST"]

log = logging.getLogger(__name__)

# The digest of the objective function an experiment was started with (see objective_digest).
OBJECTIVE_DIGEST = "katib.kubeflow.org/objective-digest"
_PLAIN = (int, float, str, bytes, bool, type(None))


def _plain(value: Any) -> Any:
    """``value`` if it is made of numbers, strings and tuples/lists of them, else its type
    name (an object's repr may hold its address, which differs on every run)."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, (tuple, list)):
        return tuple(_plain(v) for v in value)
    return type(value).__qualname__


def _code_doc(code: Any) -> Any:
    consts = tuple(_code_doc(c) if inspect.iscode(c) else _plain(c) for c in code.co_consts)
    return (code.co_code, consts, code.co_names, code.co_varnames, code.co_freevars)


def objective_digest(fn: Callable[..., Any]) -> str | None:
    """A digest of what the objective computes: its bytecode, constants and the names it
    uses, plus plain default and captured values; not where it is defined (moving it, or
    editing the line a lambda sits on, keeps the digest). None if it is not a function."""
    target = inspect.unwrap(fn)
    code = getattr(target, "__code__", None)
    if code is None:
        return None
    closure = tuple(_plain(c.cell_contents) for c in (getattr(target, "__closure__", None) or ())
                    if _cell_set(c))
    doc = (_code_doc(code), _plain(getattr(target, "__defaults__", None)), closure)
    return hashlib.sha256(marshal.dumps(doc)).hexdigest()[:16]


def _cell_set(cell: Any) -> bool:
    try:
        cell.cell_contents
    except ValueError:  # an empty cell
        return False
    return True


def _check_same_objective(store: Any, exp: Experiment, digest: str | None, fn: Any) -> None:
    """``tune(name=...)`` of a stored experiment must search for the same function: trials
    of another function would be mixed into its result."""
    try:
        stored = store.get_experiment(exp.name, exp.metadata.namespace or "default")
    except NotFoundError:
        return
    before = stored.metadata.annotations.get(OBJECTIVE_DIGEST)
    if digest is None or before is None or before == digest:
        return
    name = getattr(fn, "__name__", "objective")
    raise ValidationError([FieldError("objective", (
        f"experiment {exp.name!r} already exists and was run with a different objective function than "
        f"{name!r}; its trials would be mixed with this function's. Pass another name= to start a new "
        f"experiment, or delete it first (katib delete experiment {exp.name}), or pass the same function "
        "to resume it"))])


class WithFixed:
    """The objective with the parameters tune() does not search merged in. Locally these
    may be any Python objects (they travel with the pickled objective, not as JSON)."""

    def __init__(self, fn: Callable[[dict[str, Any]], Any], fixed: dict[str, Any]) -> None:
        self.fn = fn
        self.fixed = fixed

    def __call__(self, params: dict[str, Any]) -> Any:
        __tracebackhide__ = True  # noqa: F841 - read by katib.sdk.objective._user_frames
        return self.fn({**self.fixed, **params}) if self.fixed else self.fn(params)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def run_local(objective: Callable[[dict[str, Any]], Any], plan: Plan, args: ExperimentArgs, *,
              env: list[dict[str, Any]], trainer: Trainer | None, progress: bool, db_url: str | None,
              poll_interval: float = 0.2) -> TuneResult:
    from earlystop.inprocess import EarlyStoppingSession
    from katib.backends import local
    from katib.backends.local.runner import RunOptions, run_directory, trial_directory
    from katib.store import Store
    from suggestion.inprocess import InProcessSuggester

    home = local.katib_home()
    run_dir = run_directory(home, args.namespace, args.name)
    objective_file = run_dir / "objective.pkl"
    # The command a pod (or anyone) could run as is: the worker pool parses the same argv.
    command = ["python3", "-m", ENTRY_MODULE, *objective_options(args), "--objective-file", str(objective_file),
               *plan.trial_args()]
    exp = build_experiment(args, plan, command, image="local", env=env, trainer=trainer)
    digest = objective_digest(objective)
    if digest is not None:
        exp.metadata.annotations[OBJECTIVE_DIGEST] = digest
    local.prepare(exp)
    # Pickled before the experiment is stored: an objective that cannot travel leaves nothing behind.
    pool = WorkerPool(WithFixed(objective, plan.fixed))
    # The only runner of this experiment before it is resumed or its objective file replaced.
    with local.exclusive(exp):
        store = Store(db_url) if db_url else Store()
        _check_same_objective(store, exp, digest, objective)
        exp, resumed = local.open_experiment(store, exp)
        early_stopper = EarlyStoppingSession.for_experiment(exp.spec)
        parallel = exp.spec.parallel_trial_count or 1

        _write_atomic(objective_file, pool.payload)

        def log_path(trial: str) -> Path:
            return trial_directory(home, args.namespace, args.name, trial) / "stdout.log"

        bar = TuneProgress(exp.spec.max_trial_count, log_path=log_path) if progress else None
        holder: dict[str, Any] = {}

        def on_progress(e: Experiment, trials: list[Any]) -> None:
            if pool.load_error is not None and not holder.get("aborted"):
                holder["aborted"] = True
                holder["runner"].interrupt()
            if bar is not None:
                bar(e, trials)

        options = RunOptions(base_dir=home, workdir=os.getcwd(), poll_interval=poll_interval,
                             # FunctionTrial offers TrialProcess's interface (duck-typed)
                             process_factory=lambda d: cast(Any, FunctionTrial(d, pool)), wake=pool.wake)
        if progress:
            verb = "Resuming" if resumed else "Running"
            print(f"{verb} experiment {exp.name!r} ({exp.spec.algorithm.algorithm_name if exp.spec.algorithm else ''}, "
                  f"up to {exp.spec.max_trial_count or 'unlimited'} trials, {parallel} at a time)", flush=True,
                  file=sys.stderr)

        def on_signal(signum: int, frame: Any) -> None:
            if holder.get("interrupted"):
                raise KeyboardInterrupt
            holder["interrupted"] = True
            runner = holder.get("runner")
            if runner is not None:
                runner.interrupt()

        main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, on_signal) if main_thread else None
        try:
            pool.start(min(parallel, exp.spec.max_trial_count or parallel))  # warm while the first suggestions come
            exp = local.run(store, exp, InProcessSuggester(), early_stopper=early_stopper, on_progress=on_progress,
                            runner_hook=lambda r: holder.__setitem__("runner", r), options=options)
        finally:
            if main_thread:
                signal.signal(signal.SIGINT, previous)
            pool.close()
        if bar is not None:
            bar.close(exp)
        if pool.load_error is not None:
            raise RuntimeError(f"tune(): the objective could not be loaded in a worker process, so no trial could "
                               f"run:\n{pool.load_error}")
        if holder.get("interrupted"):
            print(f"\nInterrupted. tune(..., name={exp.name!r}) with the same arguments resumes experiment "
                  f"{exp.name!r}.", file=sys.stderr)
            raise KeyboardInterrupt
        runner = holder.get("runner")
        if runner is not None and runner.deleted:
            raise NotFoundError(f"experiment {exp.name!r} was deleted while tune() ran it; its trials were stopped")
        if progress and runner is not None and runner.stop_requested:
            print(f"\nStopped by a request. tune(..., name={exp.name!r}) with the same arguments resumes experiment "
                  f"{exp.name!r}.", file=sys.stderr)
        result = TuneResult.from_experiment(exp, store.list_trials(exp.name, args.namespace), log_path)
        result.db_url = store.url.render_as_string(hide_password=False)
        store.close()
        if progress:
            print(result.summary(), file=sys.stderr)
        return result
