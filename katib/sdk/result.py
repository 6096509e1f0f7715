"""``TuneResult``: what ``tune()`` returns (and ``tune(..., backend="kubernetes", wait=True)``).

Built from an Experiment and its Trials, wherever they live (the local store or the API
server), so both backends return the same object. Parameters come back typed, decoded with
the type codes the trial command carries (``katib.sdk.objective``); metric values are the
ones the objective's metric strategies pick (min / max / latest), as floats.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from katib.api.model import Experiment, ParameterAssignment, Trial, TrialCondition
from katib.api.space import SearchSpace
from katib.metrics.strategies import metric_value
from katib.metrics.values import finite_number, is_non_finite
from katib.sdk.objective import SEPARATOR, decode_value

__all__ = ["TuneResult", "TrialRecord", "codecs_of", "traceback_of", "tail_text"]

_TRACEBACK = "Traceback (most recent call last):"


@dataclass(frozen=True)
class TrialRecord:
    """One trial: its name, state, typed parameters, metrics and, for a trial that did not
    succeed, why (``error``: the objective's traceback for a failed trial)."""

    name: str
    state: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    error: str | None = None

    def as_row(self) -> dict[str, Any]:
        return {"trial": self.name, "state": self.state, **self.params, **self.metrics}


@dataclass
class TuneResult:
    """The outcome of a tuning run.

    ``best_trial``, ``best_parameters``, ``best_metrics`` and ``best_value`` are those of
    the best trial; when no trial reported a finite value of the objective there is none, and
    they raise ValueError (as Optuna's ``study.best_trial`` does) rather than return empty
    values that look like a result; ``best_trial_name`` is None then. ``trials`` holds every
    trial in creation order, with why each one that did not succeed did not;
    ``to_dataframe()`` (pandas) gives one row per trial. ``katib get trials
    <experiment_name>`` and ``katib describe experiment <experiment_name>`` show the same run.
    """

    experiment_name: str
    namespace: str
    state: str
    reason: str
    objective_metric_name: str
    objective_type: str
    best_trial_name: str | None
    trials: list[TrialRecord] = field(default_factory=list)
    best_params: dict[str, Any] = field(default_factory=dict, repr=False)
    best_observed: dict[str, Any] = field(default_factory=dict, repr=False)
    # Where the plots find what the records leave out (katib.visualization): the store holding
    # the observation rows (None: not a local store) and the objects the result was built from.
    db_url: str | None = field(default=None, repr=False)
    experiment: Experiment | None = field(default=None, repr=False, compare=False)
    trial_objects: list[Trial] = field(default_factory=list, repr=False, compare=False)

    def _no_best(self) -> ValueError:
        counts = ", ".join(f"{n} {s.lower()}" for s, n in sorted(self.counts().items())) or "no trials"
        return ValueError(
            f"no trial of experiment {self.experiment_name!r} reported a finite value of "
            f"{self.objective_metric_name!r} ({counts}), so there is no best trial; result.trials "
            "says what each trial did (state, error)")

    @property
    def best_trial(self) -> TrialRecord:
        """The best trial. Raises ValueError when no trial has a value of the objective."""
        if not self.best_trial_name:
            raise self._no_best()
        found = next((t for t in self.trials if t.name == self.best_trial_name), None)
        return found or TrialRecord(self.best_trial_name, TrialCondition.SUCCEEDED, dict(self.best_params),
                                    dict(self.best_observed))

    @property
    def best_parameters(self) -> dict[str, Any]:
        """The best trial's parameters, typed. Raises ValueError when there is no best trial."""
        if not self.best_trial_name:
            raise self._no_best()
        return self.best_params

    @property
    def best_metrics(self) -> dict[str, Any]:
        """The best trial's metrics by their strategies. Raises ValueError when there is no
        best trial."""
        if not self.best_trial_name:
            raise self._no_best()
        return self.best_observed

    @property
    def best_value(self) -> Any:
        """The best trial's objective value. Raises ValueError when there is no best trial."""
        return self.best_metrics.get(self.objective_metric_name)

    @property
    def failed_trials(self) -> list[TrialRecord]:
        return [t for t in self.trials if t.state == TrialCondition.FAILED]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.trials:
            out[t.state] = out.get(t.state, 0) + 1
        return out

    def to_dataframe(self) -> Any:
        """One row per trial (trial, state, parameters, metrics). Needs pandas."""
        try:
            import pandas as pd  # type: ignore[import-untyped]
        except ImportError as exc:
            raise ImportError("TuneResult.to_dataframe() needs pandas: pip install pandas "
                              "(result.trials holds the same records without it)") from exc
        return pd.DataFrame([t.as_row() for t in self.trials])

    @property
    def dataframe(self) -> Any:
        """``to_dataframe()``, or None without pandas."""
        try:
            return self.to_dataframe()
        except ImportError:
            return None

    def __repr__(self) -> str:
        counts = ", ".join(f"{n} {s.lower()}" for s, n in sorted(self.counts().items()))
        return (f"TuneResult(experiment_name={self.experiment_name!r}, state={self.state!r}, "
                f"trials={len(self.trials)} ({counts or 'none'}), best_trial_name={self.best_trial_name!r}, "
                f"best_parameters={self.best_params!r}, best_metrics={self.best_observed!r})")

    def summary(self) -> str:
        """A few lines for people: outcome, best trial, where to look next."""
        counts = ", ".join(f"{n} {s.lower()}" for s, n in sorted(self.counts().items()))
        lines = [f"Experiment {self.experiment_name} {self.state} ({self.reason}): {len(self.trials)} trials"
                 + (f" ({counts})" if counts else "")]
        if self.best_trial_name:
            metrics = ", ".join(f"{k}={_fmt(v)}" for k, v in self.best_observed.items())
            lines.append(f"Best trial {self.best_trial_name}: {metrics}")
            lines.append(f"Best parameters: {self.best_params!r}")
        else:
            lines.append(f"No trial reported a finite value of {self.objective_metric_name!r}: there is no "
                         "best trial.")
        ns = "" if self.namespace == "default" else f" -n {self.namespace}"
        lines.append(f"Details: katib describe experiment {self.experiment_name}{ns}")
        return "\n".join(lines)

    @classmethod
    def from_experiment(cls, exp: Experiment, trials: Sequence[Trial],
                        log_path: Callable[[str], Path] | None = None) -> "TuneResult":
        """``log_path(trial_name)``: where a local trial's output is, to show the traceback
        of a failed trial in full (the condition message holds its last lines only)."""
        decode = _decoder(exp)
        objective = exp.spec.objective
        names = objective.metric_names if objective else []
        records = []
        for t in trials:
            state = t.status.state
            error = None
            if state not in (TrialCondition.SUCCEEDED, TrialCondition.RUNNING, "Pending"):
                error = _reason(t, log_path)
            records.append(TrialRecord(t.name, state, decode(t.spec.parameter_assignments),
                                       _metrics(exp, t.status.observation, names), error))
        status = exp.status
        opt = status.current_optimal_trial if status else None
        best_name = opt.best_trial_name if opt and opt.best_trial_name else None
        true = [c for c in (status.conditions if status else []) if c.status == "True"]
        last = true[-1] if true else None
        return cls(
            experiment_name=exp.name, namespace=exp.metadata.namespace or "default",
            state=last.type if last else "Created", reason=(last.reason or "") if last else "",
            objective_metric_name=(objective.objective_metric_name or "") if objective else "",
            objective_type=(objective.type or "") if objective else "",
            best_trial_name=best_name,
            trials=records,
            best_params=decode(opt.parameter_assignments) if best_name and opt else {},
            best_observed=_metrics(exp, opt.observation, names) if best_name and opt else {},
            experiment=exp, trial_objects=list(trials),
        )


def _fmt(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _metrics(exp: Experiment, observation: Any, names: Sequence[str]) -> dict[str, Any]:
    objective = exp.spec.objective
    out: dict[str, Any] = {}
    for name in names:
        text = metric_value(observation, name, objective.strategy_for(name) if objective else "latest")
        if text is None:
            continue
        if is_non_finite(text):
            continue  # no value (katib.metrics.values), e.g. in a store from before the rule
        number = finite_number(text)
        out[name] = number if number is not None else text  # a string metric (DARTS genotypes) stays text
    return out


def codecs_of(exp: Experiment) -> dict[str, Any] | None:
    """The parameter type codes in a tune() experiment's trial command, or None for an
    experiment tune() did not make."""
    template = exp.spec.trial_template
    if template is None or template.trial_spec is None:
        return None
    from katib.controller.template import primary_container
    from katib.errors import TemplateError

    try:
        argv = primary_container(template.trial_spec, template.primary_container_name or "").argv
    except TemplateError:
        return None
    if SEPARATOR not in argv[1:]:
        return None
    i = argv.index(SEPARATOR, 1)
    try:
        codecs = json.loads(argv[i + 1])
    except (IndexError, ValueError):
        return None
    return codecs if isinstance(codecs, dict) else None


def _decoder(exp: Experiment) -> Callable[[list[ParameterAssignment]], dict[str, Any]]:
    codecs = codecs_of(exp) or {}
    try:
        space: SearchSpace | None = SearchSpace.from_experiment(exp.spec)
    except Exception:  # noqa: BLE001 - a space that does not parse still shows as text
        space = None

    def decode(assignments: list[ParameterAssignment]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for a in assignments:
            try:
                if a.name in codecs:
                    out[a.name] = decode_value(codecs[a.name], a.value)
                elif space is not None and a.name in space.names:
                    out[a.name] = space[a.name].parse(a.value)
                else:
                    out[a.name] = a.value
            except (ValueError, KeyError):
                out[a.name] = a.value
        return out

    return decode


def tail_text(path: Path, limit: int = 1 << 16) -> str:
    """The last ``limit`` bytes of a file as text ("" when unreadable): training logs can be
    large and a traceback sits at the end."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def traceback_of(text: str) -> str | None:
    """The last Python traceback in a trial's output, through the end of the output."""
    at = text.rfind(_TRACEBACK)
    return text[at:].rstrip() if at >= 0 else None


def _reason(trial: Trial, log_path: Callable[[str], Path] | None) -> str | None:
    if trial.status.state == TrialCondition.FAILED and log_path is not None:
        found = traceback_of(tail_text(log_path(trial.name)))
        if found:
            return found
    state = trial.status.state
    cond = next((c for c in trial.status.conditions if c.type == state and c.status == "True"), None)
    return cond.message if cond is not None else None
