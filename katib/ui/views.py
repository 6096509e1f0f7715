"""What each page shows, as JSON-ready dicts built from ``katib.api.model`` objects: the
experiments list, an experiment, a trial. Numbers are text as the CLI prints them
(``katib.terminal.number``); times are RFC 3339 as stored (the page shows ages).
"""

from __future__ import annotations

import logging
from collections import deque
from pathlib import Path
from typing import Any, Iterable, Sequence

from katib.api.loader import dump_yaml
from katib.api.model import Condition, Experiment, Trial, TrialCondition as TC
from katib.api.observation import MetricLog
from katib.display import duration, failure_output, optimum_text, state_condition, state_of, trial_reason
from katib.errors import KatibError, NotFoundError
from katib.metrics.strategies import metric_value, objective_text
from katib.sdk.result import tail_text, traceback_of
from katib.terminal import number
from katib.visualization.data import curves_from_logs

__all__ = ["experiment_row", "experiment_detail", "trial_detail", "LOG_LINES", "STEP_ROWS"]

log = logging.getLogger(__name__)

LOG_LINES = 400  # the end of a trial's log shown on its page
LARGE_LOG = 1 << 20  # bytes: a log larger than this is read from its end only
STEP_ROWS = 2000  # rows of the metrics-per-step table (the last ones when there are more)
_EXPERIMENT_LABEL = "katib.kubeflow.org/experiment"


def _conditions(conds: Iterable[Condition]) -> list[dict[str, Any]]:
    return [{"type": c.type, "status": c.status, "reason": c.reason or "", "message": c.message or "",
             "time": c.last_transition_time or c.last_update_time or ""} for c in conds]


def _counts(exp: Experiment) -> dict[str, int]:
    s = exp.status
    if s is None:
        return {k: 0 for k in ("trials", "done", "succeeded", "running", "pending", "failed", "killed",
                               "earlyStopped", "metricsUnavailable")}
    succeeded, failed, killed = s.trials_succeeded or 0, s.trials_failed or 0, s.trials_killed or 0
    early, unavailable = s.trials_early_stopped or 0, s.trial_metrics_unavailable or 0
    return {"trials": s.trials or 0, "done": succeeded + failed + killed + early + unavailable,
            "succeeded": succeeded, "running": s.trials_running or 0, "pending": s.trials_pending or 0,
            "failed": failed, "killed": killed, "earlyStopped": early, "metricsUnavailable": unavailable}


def _reason_of(exp: Experiment, state: str) -> str:
    conds = exp.status.conditions if exp.status else []
    if state == "Interrupted":
        found = next((c for c in reversed(conds) if c.type == "Running" and c.status == "False"), None)
    else:
        found = next((c for c in reversed(conds) if c.type == state and c.status == "True"), None)
    return (found.reason or "") if found else ""


def experiment_row(exp: Experiment) -> dict[str, Any]:
    """One line of the experiments list."""
    objective = exp.spec.objective
    opt = exp.status.current_optimal_trial if exp.status else None
    best = None
    if opt is not None and opt.best_trial_name and objective is not None:
        best = {"trial": opt.best_trial_name, "metric": objective.objective_metric_name or "",
                "value": number(objective_text(opt.observation, objective))}
    state = state_of(exp)
    return {
        "name": exp.name, "namespace": exp.metadata.namespace or "default", "status": state,
        "reason": _reason_of(exp, state),
        "algorithm": (exp.spec.algorithm.algorithm_name or "") if exp.spec.algorithm else "",
        "objective": {"type": (objective.type or "") if objective else "",
                      "metric": (objective.objective_metric_name or "") if objective else ""},
        "counts": _counts(exp), "maxTrialCount": exp.spec.max_trial_count, "best": best,
        "created": exp.metadata.creation_timestamp or "",
        "completed": (exp.status.completion_time or "") if exp.status else "",
    }


def _optimum(exp: Experiment) -> dict[str, Any] | None:
    opt = exp.status.current_optimal_trial if exp.status else None
    if opt is None or not opt.best_trial_name:
        return None
    objective = exp.spec.objective
    metrics = []
    for m in opt.observation.metrics if opt.observation else []:
        strategy = objective.strategy_for(m.name) if objective else "latest"
        metrics.append({"name": m.name, "value": number(metric_value(opt.observation, m.name, strategy) or m.latest),
                        "strategy": strategy})
    return {"trial": opt.best_trial_name, "metrics": metrics,
            "parameters": [{"name": a.name, "value": number(a.value)} for a in opt.parameter_assignments]}


def spec_yaml(exp: Experiment) -> str:
    """The experiment as one would write it (no status, no server fields)."""
    return dump_yaml({"apiVersion": exp.api_version, "kind": exp.kind,
                      "metadata": {"name": exp.name, "namespace": exp.metadata.namespace or "default"},
                      "spec": exp.spec.to_dict()})


def experiment_detail(exp: Experiment, *, running: bool | None) -> dict[str, Any]:
    s = exp.status
    spec = exp.spec
    row = experiment_row(exp)
    return {
        **row,
        "conditions": _conditions(s.conditions if s else []),
        "algorithmSettings": [{"name": k, "value": v} for k, v in
                              (spec.algorithm.settings if spec.algorithm else {}).items()],
        "earlyStopping": (spec.early_stopping.algorithm_name or "") if spec.early_stopping else "",
        "objective": {**row["objective"], "goal": number(spec.objective.goal) if spec.objective else "",
                      "additional": list(spec.objective.additional_metric_names) if spec.objective else []},
        "budget": {"maxTrialCount": spec.max_trial_count, "parallelTrialCount": spec.parallel_trial_count,
                   "maxFailedTrialCount": spec.max_failed_trial_count},
        "optimum": _optimum(exp), "optimumText": optimum_text(exp),
        "startTime": (s.start_time or "") if s else "", "completionTime": (s.completion_time or "") if s else "",
        "duration": duration(s.start_time, s.completion_time) if s and s.start_time else "",
        "yaml": spec_yaml(exp), "runner": running,
    }


# -- trials ------------------------------------------------------------------------------------
def experiment_of(trial: Trial) -> str:
    return str(trial.metadata.labels.get(_EXPERIMENT_LABEL, ""))


def _steps(rows: Sequence[MetricLog], names: Sequence[str]) -> dict[str, Any]:
    """The observation rows as a table: one row per step, a column per metric (each metric's
    reports numbered 1, 2, ... when the trial gave no step)."""
    by_step: dict[float, dict[str, str]] = {}
    seen: dict[str, int] = {}
    for r in rows:
        seen[r.metric_name] = seen.get(r.metric_name, 0) + 1
        step = float(r.step) if r.step is not None else float(seen[r.metric_name])
        by_step.setdefault(step, {})[r.metric_name] = number(r.value)
    metrics = list(dict.fromkeys([*[n for n in names if n in seen], *seen]))
    steps = sorted(by_step)
    shown = steps[-STEP_ROWS:]
    return {"metrics": metrics, "total": len(steps),
            "rows": [[number(int(s) if s.is_integer() else s)] + [by_step[s].get(m, "") for m in metrics]
                     for s in shown]}


def steps_figure(rows: Sequence[MetricLog], metrics: Sequence[str]) -> dict[str, Any]:
    """A line per metric over the steps (Plotly figure dict)."""
    data = []
    for m in metrics:
        curve = curves_from_logs({"t": rows}, m, max_points=1000).get("t", [])
        if curve:
            data.append({"type": "scatter", "mode": "lines+markers", "name": m,
                         "x": [p[0] for p in curve], "y": [p[1] for p in curve]})
    layout: dict[str, Any] = {"xaxis": {"title": {"text": "step"}}, "yaxis": {"title": {"text": "value"}},
                              "margin": {"t": 30}, "legend": {"orientation": "h"}}
    if not data:
        layout["annotations"] = [{"text": "No metric reported yet", "showarrow": False, "xref": "paper",
                                  "yref": "paper", "x": 0.5, "y": 0.5}]
    return {"data": data, "layout": layout}


def _failure(trial: Trial, log_text: str | None, log_source: str) -> dict[str, Any] | None:
    """Why a trial did not succeed, with the output that says it (its traceback when there is one)."""
    state = trial.status.state
    if state in (TC.SUCCEEDED, TC.RUNNING, "Pending"):
        return None
    cond = state_condition(trial)
    head, quoted = failure_output(cond.message if cond else None)
    output, source = "", ""
    if state in (TC.FAILED, TC.METRICS_UNAVAILABLE):
        found = traceback_of(log_text) if log_text else None
        if found:
            output, source = found, log_source
        elif quoted.strip():
            output, source = quoted.rstrip(), "the runner's record"
        elif log_text:
            output, source = "\n".join(log_text.rstrip().splitlines()[-20:]), log_source
    return {"state": state, "error": state in (TC.FAILED, TC.METRICS_UNAVAILABLE),
            "reason": (cond.reason or "") if cond else "", "summary": trial_reason(trial, None),
            "message": head, "output": output, "source": source}


def tail(lines: Iterable[str], keep: int = LOG_LINES) -> tuple[list[str], int]:
    """The last ``keep`` lines and how many there were in all."""
    window: deque[str] = deque(maxlen=keep)
    count = 0
    for line in lines:
        window.append(line)
        count += 1
    return list(window), count


def trial_detail(exp: Experiment, trial: Trial, rows: Sequence[MetricLog] | None, rows_error: str,
                 log_lines: list[str] | None, log_total: int | None, log_error: str, log_source: str) -> dict[str, Any]:
    st = trial.status
    objective = trial.spec.objective or exp.spec.objective
    names = objective.metric_names if objective else []
    metrics = []
    for m in st.observation.metrics if st.observation else []:
        strategy = objective.strategy_for(m.name) if objective else "latest"
        metrics.append({"name": m.name, "min": number(m.min), "max": number(m.max), "latest": number(m.latest),
                        "strategy": strategy, "value": number(metric_value(st.observation, m.name, strategy))})
    steps: dict[str, Any] = _steps(rows, names) if rows is not None else {"metrics": [], "total": 0, "rows": []}
    log_text = "\n".join(log_lines) if log_lines else None
    return {
        "name": trial.name, "experiment": exp.name, "namespace": trial.metadata.namespace or "default",
        "state": st.state, "objective": (objective.objective_metric_name or "") if objective else "",
        "parameters": [{"name": a.name, "value": number(a.value)} for a in trial.spec.parameter_assignments],
        "metrics": metrics, "steps": steps, "stepsError": rows_error,
        "chart": steps_figure(rows or [], steps["metrics"]),
        "conditions": _conditions(st.conditions),
        "failure": _failure(trial, log_text, log_source),
        "created": trial.metadata.creation_timestamp or "", "startTime": st.start_time or "",
        "completionTime": st.completion_time or "",
        "duration": duration(st.start_time, st.completion_time) if st.start_time and st.state != "Pending" else "",
        "log": {"lines": log_lines or [], "total": log_total, "source": log_source, "error": log_error},
    }


def read_log(client: Any, exp: str, trial: str, namespace: str,
             path: Path | None = None) -> tuple[list[str] | None, int | None, str]:
    """(last lines, line count, error) of a trial's output through ``KatibClient.get_job_logs``;
    a local log (``path``) past ``LARGE_LOG`` bytes is read from its end only (the count is then
    None): an open trial page reads it every second."""
    if path is not None:
        try:
            size = path.stat().st_size
        except OSError:
            size = 0
        if size > LARGE_LOG:
            text = tail_text(path, LARGE_LOG // 4)
            return text.splitlines()[1:][-LOG_LINES:], None, ""  # the first line may be cut
    try:
        lines, total = tail(client.get_job_logs(exp, trial, namespace=namespace))
    except NotFoundError as exc:
        return None, 0, str(exc)
    except KatibError as exc:
        return None, 0, f"the log cannot be read: {exc}"
    except Exception as exc:  # noqa: BLE001 - a log we cannot read still leaves the rest of the page
        log.info("reading the log of trial %s/%s failed", namespace, trial, exc_info=True)
        return None, 0, f"the log cannot be read: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r}"
    return lines, total, ""
