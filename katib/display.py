"""Tables and progress lines for people; upstream-shaped objects for scripts.

Numbers print with 6 significant digits here (``katib.terminal.number``); ``dump`` (-o json,
-o yaml) writes the stored values, every digit kept.
"""

from __future__ import annotations

import ast
import json
import re
import signal
import sys
from datetime import datetime, timezone
from typing import Any, Sequence, TextIO

import yaml

from katib.api.model import Condition, Experiment, Trial, TrialCondition as TC
from katib.api.nasvalue import parse_nas_value
from katib.metrics.parsers import parse_rfc3339
from katib.metrics.strategies import metric_value, objective_text
from katib.terminal import Part, fit, fit_parts, fit_named_value, number, terminal_width

__all__ = ["table", "experiment_rows", "trial_table", "optimum_text", "architecture_text", "genotype_text", "dump", "names",
           "Progress", "state_of", "trial_reason", "failure_output", "state_condition", "duration"]

_REASON_WIDTH = 60  # the REASON column of the normal (not -o wide) tables
_EXIT = re.compile(r"exited with status (-?\d+)")
_OUTPUT = "; last output:\n"  # the runner's message: "<what happened>; last output:\n<log tail>"
_FAILED_PREFIX = "Trial has failed. Job message: "
_TRACEBACK = "Traceback (most recent call last):"


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


_OP_NAMES = {"convolution": "conv", "separable_convolution": "sepconv", "depthwise_convolution": "dwconv"}


def architecture_text(assignments: dict[str, Any]) -> str | None:
    """ENAS's ``architecture`` + ``nn_config`` assignments as one short line, a layer each:
    ``conv3x3-48/s2 > maxpool2 +in > sepconv5x5-32x2 +L1`` (operation, kernel, filters,
    stride, depth multiplier; ``+in``/``+L1``: skip connections from the input or layer 1).
    None when they are not there or do not parse (callers show the raw values then)."""
    if "architecture" not in assignments or "nn_config" not in assignments:
        return None
    try:
        arch = parse_nas_value(str(assignments["architecture"]))
        config = parse_nas_value(str(assignments["nn_config"]))
        ops = {str(k): v for k, v in config["embedding"].items()}
        layers = []
        for entry in arch:
            op = ops[str(entry[0])]
            kind, p = op["opt_type"], op.get("opt_params", {})
            if kind == "reduction":
                text = f"{str(p.get('reduction_type', 'max_pooling')).split('_')[0]}pool{p.get('pool_size', 2)}"
            else:
                k = p.get("filter_size", 3)
                text = f"{_OP_NAMES.get(kind, kind)}{k}x{k}" + (f"-{p['num_filter']}" if "num_filter" in p else "")
                text += "".join(f"{mark}{p[name]}" for name, mark in (("stride", "/s"), ("depth_multiplier", "x"))
                                if str(p.get(name, 1)) != "1")
            text += "".join(f" +{'in' if i == 0 else f'L{i}'}" for i, flag in enumerate(entry[1:]) if flag)
            layers.append(text)
        return " > ".join(layers)
    except (ValueError, SyntaxError, TypeError, KeyError, IndexError, AttributeError):
        return None


_GENOTYPE = re.compile(r"(normal|reduce)=(\[.*?\]\])")
_PRIMITIVES = {"separable_convolution": "sepconv", "dilated_convolution": "dilconv", "max_pooling": "maxpool",
               "avg_pooling": "avgpool", "skip_connection": "skip", "convolution": "conv"}


def genotype_text(value: Any) -> str | None:
    """DARTS's ``Best-Genotype`` metric as one short line, a cell type each and a node per
    ``|``, each node's two inputs as ``op<input`` (input 0 and 1: the two previous cells,
    2 on: the cell's earlier nodes): ``normal: sepconv3x3<1 sepconv3x3<0 | sepconv3x3<0
    skip<2; reduce: ...``. None when ``value`` is not a genotype (callers show it as is)."""
    text = str(value)
    if not text.startswith("Genotype("):
        return None
    cells = []
    try:
        for kind, nodes in _GENOTYPE.findall(text):
            shown = []
            for node in ast.literal_eval(nodes):
                edges = []
                for op, source in node:
                    base, _, kernel = str(op).rpartition("_") if re.search(r"_\d+x\d+$", str(op)) else (op, "", "")
                    edges.append(f"{_PRIMITIVES.get(base, base)}{kernel}<{int(source)}")
                shown.append(" ".join(edges))
            cells.append(f"{kind}: " + " | ".join(shown))
    except (ValueError, SyntaxError, TypeError):
        return None
    return "; ".join(cells) if cells else None


def _assigned(assignments: Sequence[Any]) -> str:
    values = {a.name: a.value for a in assignments}
    arch = architecture_text(values)
    if arch is not None:  # nn_config is long and the same in every trial: the layers say it all
        return f"architecture={arch}"
    return ", ".join(f"{a.name}={number(a.value)}" for a in assignments)


def optimum_text(exp: Experiment, params: bool = True) -> str:
    opt = exp.status.current_optimal_trial if exp.status else None
    if opt is None or not opt.best_trial_name:
        metric = exp.spec.objective.objective_metric_name if exp.spec.objective else "the objective"
        done = any(c.type in ("Succeeded", "Failed") and c.status == "True"
                   for c in (exp.status.conditions if exp.status else []))
        # A finished experiment without one will never have a best: "yet" would promise one.
        return (f"none: no trial reported a finite value of {metric!r}" if done
                else f"no trial has reported a finite value of {metric!r} yet")
    metrics = ", ".join(f"{m.name}={number(m.latest) if exp.spec.objective is None else _metric_value(exp, m.name, opt.observation)}"
                        for m in (opt.observation.metrics if opt.observation else []))
    if not params:
        return f"{opt.best_trial_name}: {metrics}"
    return f"{opt.best_trial_name}: {metrics} | {_assigned(opt.parameter_assignments)}"


def _metric_value(exp: Experiment, name: str, observation: Any, compact: bool = False) -> str:
    """A metric's value as shown; ``compact`` (tables, live lines) shortens a DARTS genotype
    to its cells, where the best-trial line and ``describe`` keep it whole to copy."""
    m = observation.metric(name) if observation else None
    if m is None:
        return ""
    strategy = exp.spec.objective.strategy_for(name) if exp.spec.objective else "latest"
    # A string metric (DARTS' Best-Genotype) has no min or max: metric_value falls back to latest.
    value = metric_value(observation, name, strategy)
    shown = number(value) if value is not None else number(m.latest)
    return (genotype_text(shown) or shown) if compact else shown


# -- why a trial ended as it did --------------------------------------------------------------
def state_condition(trial: Trial) -> Condition | None:
    """The true condition that gives the trial its state (None while Pending)."""
    state = trial.status.state
    found = [c for c in trial.status.conditions if c.type == state and c.status == "True"]
    return found[-1] if found else None


def failure_output(message: str | None) -> tuple[str, str]:
    """A runner's condition message split into what happened and the output it quoted."""
    head, _, output = (message or "").partition(_OUTPUT)
    return head.strip(), output


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def trial_reason(trial: Trial, width: int | None = _REASON_WIDTH) -> str:
    """Why a trial ended other than Succeeded, in one line: ``exit status 3: ValueError: bad``,
    ``DeadlineExceeded: ...``, the early-stopping rule's message; "" for Succeeded, Running and
    Pending. A reason other than the state's usual one (a new reason a backend records) is
    named, so new reasons show without changes here."""
    state = trial.status.state
    if state in (TC.SUCCEEDED, TC.RUNNING, "Pending"):
        return ""
    cond = state_condition(trial)
    if cond is None:
        return ""
    head, output = failure_output(cond.message)
    head = head.splitlines()[0] if head else ""
    head = head.removeprefix(_FAILED_PREFIX).removeprefix(f"trial {trial.name}: ")
    code = _EXIT.search(head)
    if code is not None:
        status = int(code.group(1))
        head = f"exit status {status}" if status >= 0 else f"killed by {_signal_name(status)}"
        lines = [line for line in output.splitlines() if line.strip()]
        if lines and _TRACEBACK in output:
            head += f": {lines[-1].strip()}"  # the exception, e.g. "ValueError: bad value"
    reason = cond.reason or ""
    text = f"{reason}: {head}" if reason and reason != TC.REASONS.get(state) and head else (head or reason)
    return fit(text, width)


def duration(start: str | None, end: str | None = None) -> str:
    """``1h02m``, ``4m05s``, ``12s`` from RFC 3339 times (to now when ``end`` is None); whole
    seconds, as precise as the recorded times."""
    began = parse_rfc3339(start) if start else None
    if began is None:
        return ""
    ended = parse_rfc3339(end) if end else datetime.now(timezone.utc)
    if ended is None:
        return ""
    seconds = max(0.0, (ended - began).total_seconds())
    if seconds < 60:
        return f"{int(seconds)}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


# -- tables ---------------------------------------------------------------------------------
def experiment_rows(experiments: Sequence[Experiment], wide: bool = False) -> str:
    rows = []
    for e in experiments:
        s = e.status
        best = ""
        opt = s.current_optimal_trial if s else None
        if opt and opt.observation and e.spec.objective:
            v = objective_text(opt.observation, e.spec.objective)  # a string metric stays text
            best = f"{e.spec.objective.objective_metric_name}={number(v)}"
        row = [e.name, e.metadata.namespace, state_of(e), e.spec.algorithm.algorithm_name if e.spec.algorithm else "",
               f"{(s.trials_succeeded or 0) if s else 0}/{(s.trials or 0) if s else 0}", best,
               e.metadata.creation_timestamp or (s.start_time if s else "")]
        if wide:
            state = state_of(e)
            cond = next((c for c in reversed(s.conditions) if c.type == state and c.status == "True"), None) if s else None
            row += [str((s.trials_running or 0) if s else 0), str((s.trials_failed or 0) if s else 0),
                    (opt.best_trial_name or "") if opt else "", duration(s.start_time, s.completion_time) if s else "",
                    (cond.reason or "") if cond else ""]
        rows.append(row)
    headers = ["NAME", "NAMESPACE", "STATUS", "ALGORITHM", "SUCCEEDED/TRIALS", "BEST", "CREATED"]
    if wide:
        headers += ["RUNNING", "FAILED", "BEST TRIAL", "DURATION", "REASON"]
    return table(headers, rows)


def trial_table(exp: Experiment, trials: Sequence[Trial], wide: bool = False) -> str:
    """The trials with their parameters and metrics, and why those that did not succeed
    ended (a REASON column when any did); ``wide`` adds times and the reason uncut."""
    params = [p.name for p in exp.spec.parameters]
    metrics = exp.spec.objective.metric_names if exp.spec.objective else []
    reasons = [trial_reason(t, None if wide else _REASON_WIDTH) for t in trials]
    # An ENAS trial's parameters are its architecture: one readable column instead of none.
    nas = bool(exp.spec.nas_config) and any(architecture_text(t.spec.assignments) for t in trials)
    rows = []
    for t, reason in zip(trials, reasons):
        a = t.spec.assignments
        arch = [architecture_text(a) or a.get("architecture", "")] if nas else []
        row = [t.name, t.status.state, *[number(a.get(p, "")) for p in params], *arch,
               *[_metric_value(exp, m, t.status.observation, compact=True) for m in metrics]]
        if wide:
            row += [t.status.start_time or "", duration(t.status.start_time, t.status.completion_time)
                    if t.status.start_time and t.status.state != "Pending" else ""]
        if wide or any(reasons):
            row.append(reason)
        rows.append(row)
    headers = ["TRIAL", "STATUS", *params, *(["ARCHITECTURE"] if nas else []), *metrics]
    if wide:
        headers += ["STARTED", "DURATION"]
    if wide or any(reasons):
        headers.append("REASON")
    return table(headers, rows)


def names(kind: str, objects: Sequence[Experiment | Trial]) -> str:
    """``-o name``: ``experiment.kubeflow.org/NAME`` lines, as kubectl prints them."""
    return "\n".join(f"{kind}.kubeflow.org/{o.name}" for o in objects)


def dump(obj: Any, fmt: str, out: TextIO | None = None) -> None:
    out = out or sys.stdout  # looked up per call: callers (and tests) may redirect it
    if fmt == "json":
        out.write(json.dumps(obj, indent=2) + "\n")
    else:
        out.write(yaml.safe_dump(obj, sort_keys=False))


class Progress:
    """``katib run``'s live lines: one whenever the counts or the best trial change, cut to
    the terminal's width (a line that wraps leaves a row behind on every redraw of a
    status line, and is hard to read in a log viewer sized to the terminal). Written to a
    file or a pipe, lines are kept whole."""

    def __init__(self, out: TextIO | None = None, width: int | None = None) -> None:
        self.out = out or sys.stderr
        self.width = width
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
        # Cut to the terminal's width, least telling first: the best trial's parameters (`katib
        # describe` has them), no failures, the rarer counts, the best value, the failures; what
        # is left is cut.
        parts: list[Part] = [(f"[{clock}] {exp.name}: {s.trials_running or 0} running", 9),
                             (f"{s.trials_succeeded or 0} succeeded", 9, ", "),
                             (f"{s.trials_failed or 0} failed", 8 if s.trials_failed else 4, ", ")]
        for count, label, keep in ((s.trials_early_stopped, "early-stopped", 3), (s.trials_killed, "killed", 2),
                                   (s.trial_metrics_unavailable, "metrics-unavailable", 3)):
            if count:
                parts.append((f"{count} {label}", keep, ", "))
        opt = s.current_optimal_trial
        first: str | None = None
        value, others, assigned = "", [], ""
        if opt and opt.best_trial_name:
            # The objective's value first: it is what a cut line should still show; the other
            # metrics and the trial's name go before it is cut.
            objective = exp.spec.objective.objective_metric_name if exp.spec.objective else None
            names = [m.name for m in (opt.observation.metrics if opt.observation else [])]
            first = objective if objective in names else (names[0] if names else None)
            value = _metric_value(exp, first, opt.observation, compact=True) if first else ""
            others = [f"{n}={_metric_value(exp, n, opt.observation, compact=True)}" for n in names if n != first]
            assigned = _assigned(opt.parameter_assignments)
        width = self.width if self.width is not None else terminal_width(self.out)
        # One column spare: a line that fills the last column wraps early on some terminals.
        room = None if width is None else max(1, width - 1)
        if opt is None or not opt.best_trial_name or first is None:
            self.out.write(fit_parts([*parts, ("best: -", 6, " | ")], room) + "\n")
            self.out.flush()
            return

        def line_with(name: str) -> list[Part]:
            best: list[Part] = [(f"best: {name}={value}", 6, " | ")]
            if others:
                best.append((", ".join(others), 2, ", "))
            best.append((f"({opt.best_trial_name})", 3, " "))
            if assigned:
                best.append((assigned, 1, " | "))
            return [*parts, *best]

        self.out.write(fit_named_value(line_with, first, value, room) + "\n")
        self.out.flush()
