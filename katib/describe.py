"""``katib describe``: an experiment or a trial in detail, for people.

Failed trials say why: the condition's reason and message as the backend recorded them
(exit status, deadline, early stop, or any reason a backend adds later) and the last lines
of the trial's output, read from its log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from katib.api.model import Experiment, Trial, TrialCondition as TC
from katib.display import (
    duration,
    failure_output,
    optimum_text,
    state_condition,
    state_of,
    table,
    trial_reason,
    trial_table,
)
from katib.sdk.result import tail_text, traceback_of
from katib.terminal import number

__all__ = ["experiment_text", "trial_text", "log_tail"]

LogPath = Callable[[Trial], Path]
_FAILED_SHOWN = 5  # failed trials described in full under an experiment; the rest are named


def log_tail(path: Path, lines: int = 10, traceback_lines: int = 60) -> str | None:
    """The last ``lines`` lines of a trial's log or, when a Python traceback ends it, the
    whole traceback (its last lines rarely reach the user's own frame); None when the log
    cannot be read."""
    if not path.is_file():
        return None
    text = tail_text(path)
    found = traceback_of(text)
    if found is not None and len(found.splitlines()) <= traceback_lines:
        return found
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _indent(text: str, by: str = "  ") -> str:
    return by + text.replace("\n", "\n" + by)


def _reason_lines(trial: Trial) -> list[str]:
    """The reason and message of the condition that gives the trial its state."""
    cond = state_condition(trial)
    if cond is None or trial.status.state in (TC.SUCCEEDED, TC.RUNNING):
        return []
    head, _ = failure_output(cond.message)
    out = [f"Reason:       {cond.reason or ''}"]
    if head:
        out.append(("Message:      " + head).replace("\n", "\n              "))
    return out


def _output_lines(trial: Trial, log_path: LogPath | None, lines: int) -> list[str]:
    """The last lines of a failed trial's output: from its log, else the runner's quote."""
    if trial.status.state not in (TC.FAILED, TC.METRICS_UNAVAILABLE):
        return []
    path = log_path(trial) if log_path is not None else None
    tail = log_tail(path, lines) if path is not None else None
    if tail is None:
        cond = state_condition(trial)
        quoted = failure_output(cond.message if cond else None)[1].rstrip()
        if not quoted:
            return []
        tail, path = quoted, None  # the log is gone (or never was here): the runner's quote of it
    source = f" ({path})" if path is not None else ""
    if not tail.strip():
        return [f"Last output{source}: none, the trial printed nothing"]
    return [f"Last output{source}:", _indent(tail)]


def experiment_text(exp: Experiment, trials: Sequence[Trial], log_path: LogPath | None = None) -> str:
    s = exp.status
    spec = exp.spec
    out = [f"Name:         {exp.name}", f"Namespace:    {exp.metadata.namespace}",
           f"Status:       {state_of(exp)}",
           f"Algorithm:    {spec.algorithm.algorithm_name if spec.algorithm else ''} "
           f"{spec.algorithm.settings if spec.algorithm and spec.algorithm.settings else ''}".rstrip()]
    if spec.objective:
        out.append(f"Objective:    {spec.objective.type} {spec.objective.objective_metric_name}"
                   + (f" (goal {number(spec.objective.goal)})" if spec.objective.goal is not None else ""))
    out.append(f"Budget:       max {spec.max_trial_count}, parallel {spec.parallel_trial_count}, "
               f"max failed {spec.max_failed_trial_count}")
    if s:
        out.append(f"Started:      {s.start_time}")
        out.append(f"Completed:    {s.completion_time or '-'}")
        if s.start_time:
            out.append(f"Duration:     {duration(s.start_time, s.completion_time)}")
        out.append("Conditions:")
        out.append(_indent(table(["TYPE", "STATUS", "REASON", "MESSAGE"],
                                 [[c.type, c.status, c.reason, (c.message or "").split("\n")[0]]
                                  for c in s.conditions])))
    out.append(f"Best trial:   {optimum_text(exp)}")
    out.append("Trials:")
    out.append(_indent(trial_table(exp, trials)))
    failed = [t for t in trials if t.status.state in (TC.FAILED, TC.METRICS_UNAVAILABLE)]
    if failed:
        out.append(f"Failed trials ({len(failed)}):")
        for t in failed[-_FAILED_SHOWN:]:
            out.append(f"  {t.name}: {trial_reason(t, None)}")
            out.extend(_indent(line, "    ") for line in _output_lines(t, log_path, lines=5))
        if len(failed) > _FAILED_SHOWN:
            out.append(f"  ... and {len(failed) - _FAILED_SHOWN} earlier; `katib describe trial NAME` shows one")
    return "\n".join(out)


def trial_text(trial: Trial, exp: Experiment | None, directory: Path | None = None,
               log_path: LogPath | None = None) -> str:
    st = trial.status
    out = [f"Name:         {trial.name}", f"Namespace:    {trial.metadata.namespace}",
           f"Experiment:   {exp.name if exp else trial.metadata.labels.get('katib.kubeflow.org/experiment', '')}",
           f"Status:       {st.state}"]
    out += _reason_lines(trial)
    out.append("Parameters:")
    out.append(_indent(table(["NAME", "VALUE"], [[a.name, number(a.value)] for a in trial.spec.parameter_assignments])))
    metrics = st.observation.metrics if st.observation else []
    if metrics:
        objective = trial.spec.objective
        out.append("Metrics:")
        out.append(_indent(table(["NAME", "MIN", "MAX", "LATEST", "STRATEGY"],
                                 [[m.name, number(m.min), number(m.max), number(m.latest),
                                   objective.strategy_for(m.name) if objective else ""] for m in metrics])))
    else:
        out.append("Metrics:      none reported")
    out.append(f"Started:      {st.start_time or '-'}")
    out.append(f"Completed:    {st.completion_time or '-'}")
    if st.start_time and st.state != "Pending":
        out.append(f"Duration:     {duration(st.start_time, st.completion_time)}"
                   + ("" if st.completion_time else " (running)"))
    if directory is not None:
        out.append(f"Directory:    {directory}")
    out += _output_lines(trial, log_path, lines=20)
    return "\n".join(out)
