"""Hyperparameter importance: optuna's fANOVA over the finished trials.

The trials go into an in-memory optuna study (``optuna.trial.create_trial`` with
distributions built from the experiment's parameters), and
``FanovaImportanceEvaluator(seed=0)`` fits its random forest there. Two choices differ
from calling optuna on a study of its own:

- log-scaled parameters enter as log10 of their values over log10 of their bounds, so that
  the variance fANOVA attributes is measured over the space as it was searched (uniform in
  the exponent), not dominated by the top decade of a range like 1e-5..1e-1;
- at most ``MAX_TRIALS`` finished trials are used, sampled with a fixed seed, in a forest of
  ``N_TREES`` trees of depth ``MAX_DEPTH`` (see there why not optuna's defaults), so a
  20,000-trial experiment is evaluated in well under two seconds, the same way every time.
"""

from __future__ import annotations

import logging
import math
import random
import threading
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from katib.api.model import ParameterType
from katib.visualization._common import select_params
from katib.visualization.data import ExperimentData, Parameter, TrialPoint

__all__ = ["param_importances", "MAX_TRIALS", "EVALUATOR_NAME", "preload"]

log = logging.getLogger(__name__)

MAX_TRIALS = 1000
EVALUATOR_NAME = "fANOVA"
_SEED = 0
# optuna's defaults (64 trees, depth 64) take tens of seconds on 1,000 trials in its pure-Python
# marginalisation, whose cost grows with the leaves per tree. 16 trees of depth 7 take about
# half a second for five parameters and gave the same ranking and shares within 0.01 of the
# defaults on our test functions.
N_TREES = 16
MAX_DEPTH = 7
_CACHED = 8
_cache: dict[Any, dict[str, float]] = {}
_lock = threading.Lock()


def param_importances(data: ExperimentData, params: Sequence[str] | None = None) -> dict[str, float]:
    """Each parameter's share of the objective's variance (fANOVA), largest first, summing
    to 1; {} with fewer than two finished trials or when the objective never changed.
    Parameters that took one value only get 0.

    The last few answers are kept: a dashboard asking again while no trial finished gets
    them back at once."""
    chosen = select_params(data, params, "importance")
    trials = [t for t in data.finished() if all(_usable(p, t.params.get(p.name)) for p in chosen)]
    if len(trials) < 2 or not chosen:
        return {}
    key = (data.minimize, tuple(chosen), tuple((t.name, t.value, tuple(t.params.get(p.name) for p in chosen))
                                               for t in trials))
    with _lock:
        found = _cache.get(key)
    if found is not None:
        return dict(found)
    values = _evaluate(data, chosen, trials)
    with _lock:
        _cache[key] = values
        while len(_cache) > _CACHED:
            _cache.pop(next(iter(_cache)))
    return dict(values)


def _evaluate(data: ExperimentData, chosen: list[Parameter], trials: list[TrialPoint]) -> dict[str, float]:
    if len(trials) > MAX_TRIALS:
        trials = random.Random(_SEED).sample(trials, MAX_TRIALS)
    if len({t.value for t in trials}) < 2:
        return {}  # nothing to attribute (fANOVA raises on zero variance)
    import optuna
    from optuna.importance import FanovaImportanceEvaluator
    from optuna.trial import create_trial

    distributions = {p.name: _distribution(p, trials) for p in chosen}
    frozen = [create_trial(params={p.name: _encode(p, t.params[p.name]) for p in chosen},
                           distributions=distributions, value=t.value) for t in trials]
    evaluator = FanovaImportanceEvaluator(n_trees=N_TREES, max_depth=MAX_DEPTH, seed=_SEED)
    with _quiet_optuna():
        study = optuna.create_study(direction="minimize" if data.minimize else "maximize")
        study.add_trials(frozen)
        try:
            raw = evaluator.evaluate(study, params=[p.name for p in chosen])
        except RuntimeError as exc:  # "Encountered zero total variance in all trees."
            log.debug("importance of %s: %s", data.name, exc)
            return {}
    # Normalized here, not by optuna: it spreads a total of 0 (an objective that never
    # changed) evenly, which would read as "every parameter matters equally".
    values = {name: float(v) if math.isfinite(float(v)) and float(v) > 0 else 0.0 for name, v in raw.items()}
    total = sum(values.values())
    if total <= 0:
        return {}
    return {name: v / total for name, v in sorted(values.items(), key=lambda kv: -kv[1])}


def _is_log(p: Parameter) -> bool:
    return p.log and p.type in (ParameterType.DOUBLE, ParameterType.INT, ParameterType.DISCRETE)


def _usable(p: Parameter, value: Any) -> bool:
    if value is None:
        return False
    if p.type == ParameterType.CATEGORICAL:
        return True
    if isinstance(value, (bool, str)) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    return value > 0 if _is_log(p) else True


def _encode(p: Parameter, value: Any) -> Any:
    if p.type == ParameterType.CATEGORICAL:
        return str(value)
    return math.log10(value) if _is_log(p) else float(value)


def _distribution(p: Parameter, trials: Sequence[TrialPoint]) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    if p.type == ParameterType.CATEGORICAL:
        seen = dict.fromkeys([*p.choices, *(str(t.params[p.name]) for t in trials)])
        return CategoricalDistribution(list(seen))
    # Every value must lie inside the distribution: the spec's bounds widened to what was seen.
    coords = [_encode(p, t.params[p.name]) for t in trials]
    bounds = [b for b in (p.low, p.high) if b is not None and (not _is_log(p) or b > 0)]
    coords += [_encode(p, b) for b in bounds]
    return FloatDistribution(min(coords), max(coords))


@contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Without optuna's INFO lines ("A new study created in memory ...") on our users' stderr."""
    logger = logging.getLogger("optuna")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def preload() -> None:
    """Import what importance and contour figures compute with (optuna's fANOVA on
    scikit-learn's forests, scipy's interpolation): about 2 s on a small machine, better
    spent when a server starts than in the first request for one of those figures."""
    import optuna.importance  # noqa: F401
    import scipy.interpolate  # noqa: F401
    import sklearn.ensemble  # noqa: F401
