"""Tables and progress lines for people; upstream-shaped objects for scripts."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from typing import Any, Sequence, TextIO

import yaml

from katib.api.model import Experiment, Trial
from katib.metrics.strategies import objective_value

__all__ = ["table", "experiment_rows", "trial_table", "optimum_text", "dump", "Progress", "state_of"]


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells)


def state_of(exp: Experiment) -> str:
    """The last true condition's type, as upstream's printer column shows it."""
    conds = exp.status.conditions if exp.status else []
    true = [c for c in conds if c.status == "True"]
    if any(c.type == "Running" and c.status == "False" and c.reason == "ExperimentInterrupted" for c in conds) \
            and not any(c.type in ("Succeeded", "Failed") for c in true):
        return "Interrupted"  # its runner stopped before the end; running it again resumes it
    return true[-1].type if true else "Created"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)


def optimum_text(exp: Experiment) -> str:
    opt = exp.status.current_optimal_trial if exp.status else None
    if opt is None or not opt.best_trial_name:
        return "no trial has reported the objective yet"
    metrics = ", ".join(f"{m.name}={m.latest if exp.spec.objective is None else _metric_value(exp, m.name, opt.observation)}"
                        for m in (opt.observation.metrics if opt.observation else []))
    params = ", ".join(f"{a.name}={a.value}" for a in opt.parameter_assignments)
    return f"{opt.best_trial_name}: {metrics} | {params}"


def _metric_value(exp: Experiment, name: str, observation: Any) -> str:
    m = observation.metric(name) if observation else None
    if m is None:
        return ""
    strategy = exp.spec.objective.strategy_for(name) if exp.spec.objective else "latest"
    value = getattr(m, strategy, None) or m.latest
    try:
        return _fmt(float(value))
    except (TypeError, ValueError):
        return str(value)


def experiment_rows(experiments: Sequence[Experiment]) -> str:
    rows = []
    for e in experiments:
        s = e.status
        best = ""
        if s and s.current_optimal_trial and s.current_optimal_trial.observation and e.spec.objective:
            v = objective_value(s.current_optimal_trial.observation, e.spec.objective)
            best = f"{e.spec.objective.objective_metric_name}={_fmt(v)}"
        rows.append([e.name, e.metadata.namespace, state_of(e),
                     e.spec.algorithm.algorithm_name if e.spec.algorithm else "",
                     f"{(s.trials_succeeded or 0) if s else 0}/{(s.trials or 0) if s else 0}", best,
                     e.metadata.creation_timestamp or (s.start_time if s else "")])
    return table(["NAME", "NAMESPACE", "STATUS", "ALGORITHM", "SUCCEEDED/TRIALS", "BEST", "CREATED"], rows)


def trial_table(exp: Experiment, trials: Sequence[Trial]) -> str:
    params = [p.name for p in exp.spec.parameters]
    metrics = exp.spec.objective.metric_names if exp.spec.objective else []
    rows = []
    for t in trials:
        a = t.spec.assignments
        rows.append([t.name, t.status.state, *[a.get(p, "") for p in params],
                     *[_metric_value(exp, m, t.status.observation) for m in metrics]])
    return table(["TRIAL", "STATUS", *params, *metrics], rows)


def dump(obj: Any, fmt: str, out: TextIO | None = None) -> None:
    out = out or sys.stdout  # looked up per call: callers (and tests) may redirect it
    if fmt == "json":
        out.write(json.dumps(obj, indent=2) + "\n")
    else:
        out.write(yaml.safe_dump(obj, sort_keys=False))


class Progress:
    """One line whenever the counts or the best trial change."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stderr
        self._last: tuple[Any, ...] | None = None

    def __call__(self, exp: Experiment, trials: Sequence[Trial]) -> None:
        s = exp.status
        if s is None:
            return
        best = optimum_text(exp) if s.current_optimal_trial else "-"
        key = (s.trials_running, s.trials_succeeded, s.trials_failed, s.trials_killed, s.trials_early_stopped,
               s.trial_metrics_unavailable, best)
        if key == self._last:
            return
        self._last = key
        clock = datetime.now(timezone.utc).astimezone().strftime("%H:%M:%S")
        parts = [f"{s.trials_running or 0} running", f"{s.trials_succeeded or 0} succeeded",
                 f"{s.trials_failed or 0} failed"]
        if s.trials_early_stopped:
            parts.append(f"{s.trials_early_stopped} early-stopped")
        if s.trials_killed:
            parts.append(f"{s.trials_killed} killed")
        if s.trial_metrics_unavailable:
            parts.append(f"{s.trial_metrics_unavailable} metrics-unavailable")
        self.out.write(f"[{clock}] {exp.name}: {', '.join(parts)} | best: {best}\n")
        self.out.flush()
