"""What the plots and the dashboard read about an experiment, in plain typed Python.

``ExperimentData`` is one experiment's search space, objective and trials with typed
parameter values and float metric values; the figure builders (``katib.visualization.figures``)
take nothing else, so the dashboard and the Python plotting API draw the same thing from the
local store, the API server or a ``tune()`` result.

Conversion is one pass over the trials with the parsing decided once per parameter: a
20,000-trial experiment converts in a small fraction of a second.
"""

from __future__ import annotations

import gc
import logging
import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Sequence

from katib.api import space as _space
from katib.api.model import (Condition, Distribution, Experiment, Metric, ObjectiveType, ObjectMeta, Observation,
                             ParameterAssignment, ParameterSpec, ParameterType, Trial, TrialSpec, TrialStatus)
from katib.api.observation import MetricLog
from katib.metrics.parsers import parse_rfc3339
from katib.metrics.strategies import metric_value
from katib.metrics.values import finite_number

if TYPE_CHECKING:
    from katib.sdk.result import TuneResult

__all__ = ["Parameter", "TrialPoint", "ExperimentData", "Curves", "FINISHED_STATES", "curves_from_logs", "curve_trials",
           "load_experiment", "load_curves", "gc_paused"]

log = logging.getLogger(__name__)

Curves = dict[str, list[tuple[float, float]]]
"""Trial name -> ``[(step, value)]`` of one metric, in step order."""

_LOG = (Distribution.LOG_UNIFORM, Distribution.LOG_NORMAL)
# States in which a trial is still under way: its duration runs to now.
_ACTIVE = ("Running",)
# Trials that ended with a value worth plotting: a failed or killed trial's last report, or a
# running trial's latest, is not a result of its parameters.
FINISHED_STATES = ("Succeeded", "EarlyStopped")


@dataclass(frozen=True)
class Parameter:
    """One searched parameter as the plots need it. ``low``/``high``: the bounds of a double
    or int, the smallest and largest value of a discrete list; ``choices``: the values of a
    categorical or discrete list as written in the spec."""

    name: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[str, ...] = ()

    @property
    def is_categorical(self) -> bool:
        return self.type == ParameterType.CATEGORICAL

    @classmethod
    def from_spec(cls, spec: ParameterSpec) -> "Parameter":
        log_scale = (spec.feasible_space.distribution or "") in _LOG
        try:
            typed = _space.Parameter.from_spec(spec)
        except Exception:  # noqa: BLE001 - a spec that does not parse still names its parameter
            return cls(spec.name, spec.parameter_type, None, None, log_scale, tuple(spec.feasible_space.list or ()))
        if typed.type == ParameterType.DISCRETE:
            numbers = [float(v) for v in typed.values if isinstance(v, (int, float))]
            return cls(spec.name, typed.type, min(numbers, default=None), max(numbers, default=None), log_scale,
                       typed.texts)
        if typed.type == ParameterType.CATEGORICAL:
            return cls(spec.name, typed.type, None, None, False, typed.texts)
        low = float(typed.low) if typed.low is not None else None
        high = float(typed.high) if typed.high is not None else None
        return cls(spec.name, typed.type, low, high, log_scale, ())


@dataclass(slots=True)  # 20,000 of them: no per-object dict
class TrialPoint:
    """One trial: ``number`` is its 0-based creation order; ``params`` are typed (float for
    double and discrete, int for int, the listed text for categorical); ``value`` is the
    objective by its metric strategy (None when the trial has no finite value); ``metrics``
    every final metric with a finite value; ``reason``/``message`` those of the condition that
    gives the trial its state."""

    number: int
    name: str
    state: str
    params: dict[str, Any]
    value: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    created: datetime | None = None
    started: datetime | None = None
    completed: datetime | None = None
    reason: str = ""
    message: str = ""

    @property
    def duration(self) -> float | None:
        """Seconds from start to completion (to now while running); None before it started."""
        if self.started is None:
            return None
        end = self.completed
        if end is None:
            if self.state not in _ACTIVE:
                return None
            end = datetime.now(timezone.utc)
        return max(0.0, (end - self.started).total_seconds())


@dataclass
class ExperimentData:
    """An experiment as the plots see it: ``metric_names`` lists the objective first, then
    the additional metrics; ``trials`` are in creation order; ``db_url``: the local store it
    was read from, if any (where ``load_curves`` reads by default)."""

    name: str
    namespace: str
    objective_metric: str
    direction: str
    goal: float | None
    algorithm: str
    parameters: list[Parameter]
    metric_names: list[str]
    trials: list[TrialPoint]
    # The local store it was read from (None: elsewhere), where its learning curves are.
    db_url: str | None = field(default=None, repr=False, compare=False)

    @property
    def minimize(self) -> bool:
        return self.direction != ObjectiveType.MAXIMIZE

    def parameter(self, name: str) -> Parameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)

    def finished(self) -> list[TrialPoint]:
        """The trials that succeeded or were stopped early with a value of the objective, in
        creation order: the ones the plots draw."""
        return [t for t in self.trials if t.value is not None and t.state in FINISHED_STATES]

    def best_trial(self) -> TrialPoint | None:
        """The finished trial with the best objective value (the first of equals), or None."""
        best: TrialPoint | None = None
        for t in self.finished():
            if best is None or (t.value < best.value if self.minimize else t.value > best.value):  # type: ignore[operator]
                best = t
        return best

    @classmethod
    def from_experiment(cls, exp: Experiment, trials: Iterable[Trial]) -> "ExperimentData":
        objective = exp.spec.objective
        metric = (objective.objective_metric_name or "") if objective else ""
        names = objective.metric_names if objective else []
        strategies = {n: objective.strategy_for(n) if objective else "latest" for n in names}
        parameters = [Parameter.from_spec(s) for s in exp.spec.parameters]
        parsers = {p.name: _parser(p) for p in parameters}
        with gc_paused():
            points = [_point(number, t, parsers, strategies, metric) for number, t in enumerate(trials)]
        return cls(
            name=exp.name, namespace=exp.metadata.namespace or "default", objective_metric=metric,
            direction=_direction(objective.type if objective else None),
            goal=objective.goal if objective else None,
            algorithm=(exp.spec.algorithm.algorithm_name or "") if exp.spec.algorithm else "",
            parameters=parameters, metric_names=list(names), trials=points)

    @classmethod
    def from_trial_documents(cls, exp: Experiment, docs: Iterable[Mapping[str, Any]]) -> "ExperimentData":
        """``from_experiment`` for trials in upstream's wire form (``{"metadata", "spec",
        "status"}`` with camelCase names: what the store keeps, what the API server returns),
        reading only the fields the plots use. Several times faster than decoding whole
        Trials first (``Store.list_trials``), which is most of the time of loading 20,000."""
        with gc_paused():
            return cls.from_experiment(exp, [_light_trial(d) for d in docs])

    @classmethod
    def from_result(cls, result: "TuneResult") -> "ExperimentData":
        """The data of a ``tune()`` result: exact when the result still holds the experiment
        it was built from (every result ``tune()`` returns does); otherwise inferred from its
        trial records (no times; parameter types from the values)."""
        source = getattr(result, "experiment", None)
        if source is not None:
            data = cls.from_experiment(source, getattr(result, "trial_objects", None) or [])
        else:
            data = _from_records(result)
        data.db_url = getattr(result, "db_url", None)
        return data


def _point(number: int, t: Trial, parsers: Mapping[str, Callable[[str], Any]], strategies: Mapping[str, str],
           metric: str) -> TrialPoint:
    params: dict[str, Any] = {}
    for a in t.spec.parameter_assignments:
        parse = parsers.get(a.name)
        try:
            params[a.name] = parse(a.value) if parse is not None else a.value
        except (TypeError, ValueError):
            params[a.name] = a.value  # shown as text; numeric plots skip it
    status = t.status
    observation = status.observation
    metrics: dict[str, float] = {}
    if observation is not None:
        for m in observation.metrics:
            strategy = strategies.get(m.name) or "latest"
            value = finite_number(metric_value(observation, m.name, strategy))
            if value is not None:
                metrics[m.name] = value
    state = status.state
    cond = _state_condition(t, state)
    return TrialPoint(
        number=number, name=t.name, state=state, params=params,
        value=metrics.get(metric) if metric else None, metrics=metrics,
        created=_time(t.metadata.creation_timestamp), started=_time(status.start_time),
        completed=_time(status.completion_time),
        reason=(cond.reason or "") if cond is not None else "",
        message=(cond.message or "") if cond is not None else "")


def _light_trial(doc: Mapping[str, Any]) -> Trial:
    """A Trial with only what the plots read, built straight from its wire form; an unusual
    shape goes through the full decoder (and its field errors) instead."""
    try:
        meta = doc.get("metadata") or {}
        spec = doc.get("spec") or {}
        status = doc.get("status") or {}
        obs = status.get("observation")
        observation = Observation([Metric(m.get("name") or "", m.get("min"), m.get("max"), m.get("latest"))
                                   for m in obs.get("metrics") or ()]) if obs else None
        return Trial(
            metadata=ObjectMeta(name=meta.get("name"), namespace=meta.get("namespace"),
                                creation_timestamp=meta.get("creationTimestamp")),
            spec=TrialSpec(parameter_assignments=[ParameterAssignment(a["name"], _text(a.get("value")))
                                                  for a in spec.get("parameterAssignments") or ()]),
            status=TrialStatus(start_time=status.get("startTime"), completion_time=status.get("completionTime"),
                               conditions=[Condition(c.get("type") or "", c.get("status") or "True", c.get("reason"),
                                                     c.get("message")) for c in status.get("conditions") or ()],
                               observation=observation))
    except (AttributeError, KeyError, TypeError):
        return Trial.from_dict(dict(doc))  # type: ignore[no-any-return]


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _direction(kind: str | None) -> str:
    return ObjectiveType.MAXIMIZE if kind == ObjectiveType.MAXIMIZE else ObjectiveType.MINIMIZE


def _int(text: str) -> int:
    return int(float(text)) if not text.lstrip("-").isdigit() else int(text)


def _parser(p: Parameter) -> Callable[[str], Any]:
    if p.type == ParameterType.INT:
        return _int
    if p.type in (ParameterType.DOUBLE, ParameterType.DISCRETE):
        return float
    return str


def _state_condition(t: Trial, state: str) -> Any:
    """The true condition that gives the trial its state, else its last condition."""
    conds = t.status.conditions
    for c in reversed(conds):
        if c.type == state and c.status == "True":
            return c
    return conds[-1] if conds else None


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:  # the C parser takes what the store writes ("...Z"); Go's nanoseconds need ours
        ts = datetime.fromisoformat(text)
    except ValueError:
        return parse_rfc3339(text)
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts


def _from_records(result: "TuneResult") -> ExperimentData:
    seen: dict[str, list[Any]] = {}
    for r in result.trials:
        for k, v in r.params.items():
            seen.setdefault(k, []).append(v)
    parameters = []
    for name, values in seen.items():
        numeric = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if len(numeric) < len(values):
            texts = tuple(dict.fromkeys(_space.format_value(v) if isinstance(v, (bool, int, float, str)) else str(v)
                                        for v in values))
            parameters.append(Parameter(name, ParameterType.CATEGORICAL, choices=texts))
        else:
            kind = ParameterType.INT if all(isinstance(v, int) for v in numeric) else ParameterType.DOUBLE
            parameters.append(Parameter(name, kind, float(min(numeric)), float(max(numeric))))
    kinds = {p.name: p for p in parameters}
    metric = result.objective_metric_name
    points = []
    for number, r in enumerate(result.trials):
        params = {}
        for k, v in r.params.items():
            cat = kinds[k].is_categorical
            params[k] = (_space.format_value(v) if isinstance(v, (bool, int, float, str)) else str(v)) if cat else v
        metrics = {k: float(v) for k, v in r.metrics.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
        points.append(TrialPoint(number, r.name, r.state, params, metrics.get(metric), metrics,
                                 message=r.error or ""))
    names = [metric] + sorted({k for r in result.trials for k in r.metrics} - {metric})
    return ExperimentData(result.experiment_name, result.namespace, metric, _direction(result.objective_type),
                          None, "", parameters, names, points)


# -- intermediate values -----------------------------------------------------------------------
def curves_from_logs(logs_by_trial: Mapping[str, Sequence[MetricLog]], metric: str,
                     max_points: int = 200) -> Curves:
    """Each trial's reports of ``metric`` as ``[(step, value)]``: the step the trial gave,
    else the report's number (1, 2, ...); values that are not finite numbers are left out.
    A trial with more than ``max_points`` reports keeps ``max_points`` of them, evenly spread,
    the first and the last among them. Trials without a report of ``metric`` are absent."""
    out: Curves = {}
    for trial, rows in logs_by_trial.items():
        points: list[tuple[float, float]] = []
        index = 0
        for row in rows:
            if row.metric_name != metric:
                continue
            index += 1
            value = finite_number(row.value)
            if value is not None:
                points.append((float(row.step) if row.step is not None else float(index), value))
        if not points:
            continue
        points.sort(key=lambda p: p[0])  # stable: equal steps keep the order they came in
        out[trial] = _thin(points, max_points)
    return out


def _thin(points: list[tuple[float, float]], limit: int) -> list[tuple[float, float]]:
    if limit < 2 or len(points) <= limit:
        return points if limit >= 2 or not points else points[-1:]
    last = len(points) - 1
    picks = sorted({round(i * last / (limit - 1)) for i in range(limit)})
    return [points[i] for i in picks]


def curve_trials(data: ExperimentData, recent: int = 200, best: int = 50) -> list[str]:
    """The trials whose learning curves are worth drawing, in creation order: the ``recent``
    most recent plus the ``best`` best by objective (thousands of lines are unreadable and
    slow to draw)."""
    chosen = {t.name for t in data.trials[-recent:]} if recent > 0 else set()
    sign = 1.0 if data.minimize else -1.0
    finished = sorted(data.finished(), key=lambda t: sign * (t.value or 0.0))
    chosen.update(t.name for t in finished[:max(0, best)])
    return [t.name for t in data.trials if t.name in chosen]


# -- loading -----------------------------------------------------------------------------------
@contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cycle collector held off while thousands of trials are read: each of its
    full passes walks every object built so far (none of which is garbage yet), which took
    half the time of loading 20,000 trials."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def load_experiment(name: str, namespace: str = "default", *, db_url: str | None = None) -> ExperimentData:
    """An experiment of the local store (``db_url``, default ``$KATIB_DB_URL`` or
    ``~/.katib/katib.db``). Raises ``katib.errors.NotFoundError`` when there is none."""
    from katib.store import Store
    from katib.store.engine import default_url

    store = Store(db_url) if db_url else Store()
    try:
        exp = store.get_experiment(name, namespace)
        with gc_paused():
            data = ExperimentData.from_trial_documents(exp, store.list_trial_documents(name, namespace))
    finally:
        store.close()
    data.db_url = db_url or default_url()  # where it was read from, even if the environment changes
    return data


def load_curves(data: ExperimentData, metric: str | None = None, *, db_url: str | None = None,
                client: Any = None, trials: Sequence[str] | None = None, max_points: int = 200) -> Curves:
    """Learning curves of ``metric`` (default the objective) for ``trials`` (default
    ``curve_trials(data)``), read with ``client.get_trial_metrics`` (a ``KatibClient`` of
    either backend) or from the local store at ``db_url`` (default the one ``data`` was read
    from, else ``$KATIB_DB_URL``)."""
    names = list(trials) if trials is not None else curve_trials(data)
    own = client is None
    if own:
        from katib.sdk.client import KatibClient

        client = KatibClient(backend="local", db_url=db_url or data.db_url)
    try:
        logs = {n: client.get_trial_metrics(n, data.namespace) for n in names}
    finally:
        if own:
            client.close()
    return curves_from_logs(logs, metric or data.objective_metric, max_points)
