"""Tree-structured Parzen Estimator (optuna's TPESampler, constant liar on).

Serves ``tpe`` (independent TPE; upstream routes it to hyperopt) and ``multivariate-tpe``
(optuna's multivariate TPE). Both accept the settings of both upstream services:

* optuna: ``n_startup_trials`` (int >= 0, default 10), ``n_ei_candidates`` (int >= 1,
  default 24), ``random_state`` (int >= 0);
* hyperopt: ``gamma`` (float in (0, 1): the below-group is the best
  ``ceil(gamma * sqrt(n))`` trials, at most 25, hyperopt's rule), ``prior_weight``
  (float > 0, default optuna's 1.0), ``n_EI_candidates`` (hyperopt's spelling of n_ei_candidates).

Upstream accepts ``n_ei_candidates = 0``, which makes optuna fail on the first model-based
suggestion; we reject it at validation instead. ``constant_liar=True`` makes running trials
count as bad observations, so a batch of n holds n different points (upstream's hyperopt
returned n identical ones).

Speed: optuna's TPE redoes the O(n) part of its work (splitting all trials into good and
bad, converting every trial's parameters) for every parameter of every ask; at 1000 trials
and four parameters that is more than half of a ~70 ms batch. ``_CachingTPESampler`` splits
once per ask (reusing the ranking of complete trials until another completes) and converts
each trial's parameters once per study, then runs optuna's own estimator code, so its
suggestions are identical to TPESampler's (a test checks this). Should a future optuna
change those private methods, the stock sampler is used instead.
"""

from __future__ import annotations

import inspect
import logging
import math
import warnings
from functools import partial
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np
from optuna.samplers import TPESampler
from optuna.study import StudyDirection
from optuna.trial import TrialState as OptunaState

from katib.api.model import ObjectiveSpec
from katib.api.space import SearchSpace
from katib.errors import SettingsError
from suggestion._common import SettingsParsed, parse_seed, to_assignments
from suggestion._optuna import OptunaStudy
from suggestion.base import (
    Assignment,
    TrialResult,
    parse_float,
    parse_int,
)

__all__ = ["TPE", "MultivariateTPE"]

log = logging.getLogger(__name__)


def _hyperopt_gamma(gamma: float, n: int) -> int:
    return min(int(math.ceil(gamma * math.sqrt(n))), 25)


def _fast_path_available() -> bool:
    try:
        from optuna.samplers._tpe.sampler import _split_trials, default_gamma  # noqa: F401
    except ImportError:
        return False
    expected = {"_sample": ["self", "study", "trial", "search_space"],
                "_get_internal_repr": ["self", "trials", "search_space", "study"],
                "_build_parzen_estimator": ["self", "study", "search_space", "trials", "handle_below"],
                "_compute_acquisition_func": ["self", "samples", "mpe_below", "mpe_above"]}
    for name, params in expected.items():
        method = getattr(TPESampler, name, None)
        if method is None or list(inspect.signature(method).parameters) != params:
            return False
    return all(hasattr(TPESampler, name) for name in ("_compare", "_get_params"))


_FAST = _fast_path_available()
_LIAR_STATES = (OptunaState.COMPLETE, OptunaState.PRUNED, OptunaState.RUNNING)


class _CachingTPESampler(TPESampler):  # type: ignore[misc]
    """TPESampler with the per-ask O(n) work memoised (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._split_memo: tuple[tuple[int, int], Any] | None = None
        self._ids_memo: dict[int, tuple[list[Any], np.ndarray]] = {}
        self._sorted_memo: tuple[tuple[int, ...], list[Any]] | None = None
        self._filled = np.zeros(0, dtype=bool)  # trial id -> parameters converted
        self._columns: dict[str, np.ndarray] = {}  # parameter -> internal value by trial id

    def _sample(self, study: Any, trial: Any, search_space: dict[str, Any]) -> dict[str, Any]:
        if not self._constant_liar or study._is_multi_objective() or self._constraints_func is not None:
            return super()._sample(study, trial, search_space)  # type: ignore[no-any-return]
        from optuna.samplers._tpe.sampler import _split_trials, default_gamma

        memo_key = (id(study), trial.number)
        if self._split_memo is None or self._split_memo[0] != memo_key:
            # Nothing in the study changes while one trial is being sampled, so the split
            # optuna computes per parameter is the same for all of them.
            trials = study._get_trials(deepcopy=False, states=_LIAR_STATES, use_cache=False)
            trials = [t for t in trials if t.number != trial.number]
            if self._gamma is None:
                self._gamma = default_gamma
            n = sum(t.state != OptunaState.RUNNING for t in trials)
            split = self._split_plain(study, trials, self._gamma(n))
            if split is None:
                split = _split_trials(study, trials, self._gamma(n))
            self._split_memo = (memo_key, split)
            self._ids_memo = {}
        below, above = self._split_memo[1]
        mpe_below = self._build_parzen_estimator(study, search_space, below, handle_below=True)
        mpe_above = self._build_parzen_estimator(study, search_space, above, handle_below=False)
        samples = mpe_below.sample(self._rng.rng, self._n_ei_candidates)
        acquisition = self._compute_acquisition_func(samples, mpe_below, mpe_above)
        ret = TPESampler._compare(samples, acquisition)
        for name, dist in search_space.items():
            ret[name] = dist.to_external_repr(ret[name])
        return ret  # type: ignore[no-any-return]

    def _split_plain(self, study: Any, trials: list[Any], n_below: int) -> tuple[list[Any], list[Any]] | None:
        """optuna's ``_split_trials`` for what our studies hold -- complete and running trials,
        one objective, no constraints (we never set any) -- without its per-trial constraint
        lookups, and with the sort of the complete trials reused until one more completes.
        None when the study holds anything else (pruned trials), so optuna's own split runs."""
        complete, running = [], []
        for t in trials:
            if t.state == OptunaState.COMPLETE:
                complete.append(t)
            elif t.state == OptunaState.RUNNING:
                running.append(t)
            else:
                return None
        key = tuple(t.number for t in complete)
        if self._sorted_memo is None or self._sorted_memo[0] != key:
            maximize = study.direction == StudyDirection.MAXIMIZE
            self._sorted_memo = (key, sorted(complete, key=lambda t: t.value, reverse=maximize))
        ranked = self._sorted_memo[1]
        n_below = min(n_below, len(ranked))
        below = sorted(ranked[:n_below], key=lambda t: t.number)
        above = sorted(ranked[n_below:] + running, key=lambda t: t.number)
        return below, above

    def _get_internal_repr(self, trials: list[Any], search_space: dict[str, Any], study: Any) -> dict[str, Any]:
        # A trial's parameters never change once it has been asked (the trial being sampled
        # is excluded by the caller), so each is converted once into a per-parameter array
        # indexed by trial id; a call is then one gather instead of a Python loop.
        memo = self._ids_memo.get(id(trials))
        if memo is not None and memo[0] is trials:
            ids = memo[1]  # the below/above lists of this ask, once per parameter
        else:
            ids = np.fromiter((t._trial_id for t in trials), dtype=np.int64, count=len(trials))
            self._ids_memo[id(trials)] = (trials, ids)
        if len(ids) and ids.max() >= len(self._filled):
            self._grow(int(ids.max()) + 1)
        for i in np.flatnonzero(~self._filled[ids]):
            t = trials[i]
            params = self._get_params(t, study)
            for name, value in params.items():
                dist = t.distributions.get(name) or search_space.get(name)
                column = self._columns.get(name)
                if column is None:
                    column = self._columns[name] = np.full(len(self._filled), np.nan)
                column[t._trial_id] = dist.to_internal_repr(value) if dist is not None else np.nan
            self._filled[t._trial_id] = True
        mask = np.ones(len(ids), dtype=bool)
        gathered = {}
        for name in search_space:
            column = self._columns.get(name)
            values = column[ids] if column is not None else np.full(len(ids), np.nan)
            mask &= ~np.isnan(values)
            gathered[name] = values
        return {name: values[mask] for name, values in gathered.items()}

    def _grow(self, size: int) -> None:
        size = max(size, 2 * len(self._filled), 1024)
        filled = np.zeros(size, dtype=bool)
        filled[: len(self._filled)] = self._filled
        self._filled = filled
        for name, column in self._columns.items():
            grown = np.full(size, np.nan)
            grown[: len(column)] = column
            self._columns[name] = grown


class TPE(SettingsParsed):
    name = "tpe"
    multivariate = False
    settings: ClassVar[Mapping[str, str | None]] = {
        "n_startup_trials": "10",
        "n_ei_candidates": "24",
        "n_EI_candidates": None,
        "random_state": None,
        "gamma": None,
        "prior_weight": "1.0",
    }

    @classmethod
    def parse_settings(cls, settings: Mapping[str, str]) -> dict[str, Any]:
        n_ei = parse_int(settings, "n_ei_candidates", 24, min_value=1)
        if settings.get("n_EI_candidates"):
            alias = parse_int(settings, "n_EI_candidates", None, min_value=1)
            if settings.get("n_ei_candidates") and alias != n_ei:
                raise SettingsError("n_EI_candidates", f"conflicts with n_ei_candidates ({n_ei}); "
                                                       "set only one of them")
            n_ei = alias
        gamma = parse_float(settings, "gamma", None, min_value=0.0, max_value=1.0,
                            min_exclusive=True, max_exclusive=True)
        return {
            "n_startup_trials": parse_int(settings, "n_startup_trials", 10, min_value=0),
            "n_ei_candidates": n_ei,
            "seed": parse_seed(settings),
            "gamma": partial(_hyperopt_gamma, gamma) if gamma is not None else None,
            # None keeps optuna's default (1.0) without touching its deprecated argument.
            "prior_weight": parse_float(settings, "prior_weight", None, min_value=0.0, min_exclusive=True),
        }


    def __init__(self, space: SearchSpace, objective: ObjectiveSpec, settings: Mapping[str, str],
                 **counts: int | None) -> None:
        super().__init__(space, objective, settings, **counts)
        options = self.parse_settings(settings)
        seed = options["seed"]
        if options["prior_weight"] is None:
            del options["prior_weight"]
        cls = _CachingTPESampler if _FAST else TPESampler
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # prior_weight is deprecated in optuna >= 4.9
            try:
                sampler = cls(constant_liar=True, multivariate=self.multivariate, **options)
            except TypeError:  # an optuna that no longer knows prior_weight
                log.warning("this optuna ignores the prior_weight setting")
                options.pop("prior_weight", None)
                sampler = cls(constant_liar=True, multivariate=self.multivariate, **options)
        self._study = OptunaStudy(space, self.minimize, sampler, seed=seed)  # type: ignore[arg-type]

    def tell(self, trials: Sequence[TrialResult]) -> None:
        self._study.tell(list(trials))

    def ask(self, n: int) -> list[Assignment]:
        return to_assignments(self._study.ask(n))


class MultivariateTPE(TPE):
    name = "multivariate-tpe"
    multivariate = True
