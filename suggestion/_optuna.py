"""Drive an optuna sampler through an in-memory study with ask/tell.

``OptunaStudy`` keeps one study per experiment in memory. Katib trials are matched to optuna
trials by name once known, and by their canonical assignment key when they first come back
from the controller (FIFO for equal keys, as upstream's optuna service does). Trials this
instance never created -- after a restart, or added by hand -- are added with
``study.add_trial`` in their current state, so a fresh instance told every trial continues
sensibly instead of failing as upstream does. Running trials stay RUNNING in the study, so a
sampler with ``constant_liar=True`` accounts for them.

Search space: parameters map to native optuna distributions where optuna has one (uniform
with or without step, logUniform without step, lists). Distributions optuna lacks (normal,
logNormal, log with step) are sampled as ``FloatDistribution(0, 1)`` and mapped through the
truncated inverse CDF of ``_common.Dim``, i.e. the sampler works in the space where the
prior is uniform. Values coming out of optuna are re-quantized so their text matches the
other algorithms exactly.
"""

from __future__ import annotations

import logging
import math
import random
import warnings
from collections import deque
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers import BaseSampler
from optuna.trial import TrialState as OptunaState
from optuna.trial import create_trial

from katib.api.space import SearchSpace, Value
from suggestion._common import Dim, SeenPoints, SpaceCodec
from suggestion.base import TrialResult

__all__ = ["OptunaStudy"]

log = logging.getLogger(__name__)

# optuna logs every finished trial at INFO; the service has its own trial logging.
optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

# How often a sampler may propose an already seen point before we take a random unseen one.
_RETRIES = 3


class _Param:
    """One parameter as optuna sees it, with conversions both ways."""

    def __init__(self, dim: Dim) -> None:
        self.dim = dim
        self.unit = False  # True when optuna samples u in [0, 1] and we map it
        self.distribution: BaseDistribution
        if dim.kind == "choice":
            self.distribution = CategoricalDistribution(dim.choices)
        elif not dim.normal and not dim.log:
            if dim.kind == "int":
                self.distribution = IntDistribution(int(dim.low), int(dim.grid_high), step=int(dim.step or 1))
            else:
                self.distribution = FloatDistribution(dim.low, float(dim.grid_high), step=dim.step)
        elif dim.log and not dim.normal and dim.kind == "int" and dim.step == 1:
            self.distribution = IntDistribution(int(dim.low_eff), int(dim.high), log=True)
        elif dim.log and not dim.normal and dim.kind == "double" and not dim.step:
            self.distribution = FloatDistribution(dim.low_eff, dim.high, log=True)
        else:
            self.unit = True
            self.distribution = FloatDistribution(0.0, 1.0)

    def to_optuna(self, value: Any) -> Any:
        if self.unit:
            return self.dim.to_unit(value)
        if self.dim.kind == "int":
            return int(value)
        if self.dim.kind == "double":
            return float(value)
        return value

    def from_optuna(self, param: Any) -> Value:
        if self.unit:
            return self.dim.from_unit(float(param))
        if self.dim.kind == "choice":
            return self.dim.choices[self.dim.choices.index(param)]
        return self.dim.quantize(float(param))


class OptunaStudy:
    """An optuna study fed Katib trials incrementally and asked for distinct points."""

    def __init__(self, space: SearchSpace, minimize: bool, sampler: BaseSampler,
                 seed: int | None = None) -> None:
        self.codec = SpaceCodec(space)
        self.seen = SeenPoints(self.codec)
        with warnings.catch_warnings():
            # optuna warns when it adjusts ``high`` to the step grid; ours is on the grid.
            warnings.simplefilter("ignore")
            self.params = {d.name: _Param(d) for d in self.codec.dims}
        self.distributions = {name: p.distribution for name, p in self.params.items()}
        self.study = optuna.create_study(direction="minimize" if minimize else "maximize", sampler=sampler)
        self._rng = random.Random(seed)
        self._numbers: dict[str, int] = {}  # Katib trial name -> optuna trial number
        self._finished: set[int] = set()  # optuna trial numbers no longer RUNNING
        self._pending: dict[tuple[str, ...], deque[int]] = {}  # asked, not yet seen by name
        self._next_number = 0

    # -- tell ---------------------------------------------------------------------------

    def tell(self, trials: list[TrialResult]) -> None:
        for t in trials:
            key = self.seen.add(t.assignments)
            number = self._numbers.get(t.name)
            if number is None and key is not None:
                queue = self._pending.get(key)
                if queue:
                    number = queue.popleft()
                    if not queue:
                        del self._pending[key]
            if number is None:
                number = self._add(t)
                if number is None:
                    continue
            else:
                self._update(number, t)
            self._numbers[t.name] = number

    def _add(self, t: TrialResult) -> int | None:
        """Add a trial this study did not create, in its current state."""
        try:
            params = {name: p.to_optuna(t.assignments[name]) for name, p in self.params.items()}
        except (KeyError, TypeError, ValueError):
            log.debug("trial %s lacks parameters of the search space; not told to optuna", t.name)
            return None
        state, value = self._state_of(t)
        try:
            frozen = create_trial(state=state, value=value, params=params, distributions=self.distributions)
            self.study.add_trial(frozen)
        except ValueError as exc:  # e.g. a value outside the (current) feasible space
            log.debug("trial %s not told to optuna: %s", t.name, exc)
            return None
        number = self._next_number
        self._next_number += 1
        if state != OptunaState.RUNNING:
            self._finished.add(number)
        return number

    def _update(self, number: int, t: TrialResult) -> None:
        if number in self._finished or not t.finished:
            return  # optuna cannot change a finished trial; running stays running
        state, value = self._state_of(t)
        self.study.tell(number, value if state == OptunaState.COMPLETE else None, state=state)
        self._finished.add(number)

    @staticmethod
    def _state_of(t: TrialResult) -> tuple[OptunaState, float | None]:
        if not t.finished:
            return OptunaState.RUNNING, None
        if t.has_value and t.value is not None and math.isfinite(t.value):
            # EarlyStopped trials with a value are real observations (upstream's common
            # plumbing treats them like succeeded ones).
            return OptunaState.COMPLETE, float(t.value)
        return OptunaState.FAIL, None

    # -- ask ----------------------------------------------------------------------------

    def ask(self, n: int) -> list[dict[str, Value]]:
        """Up to ``n`` distinct, unseen points; each stays RUNNING in the study."""
        self.seen.check_exhausted()
        batch: list[dict[str, Value]] = []
        for _ in range(n):
            if self.seen.remaining == 0:
                break
            values = self._ask_one()
            if values is None:
                break
            batch.append(values)
        return batch

    def _ask_one(self) -> dict[str, Value] | None:
        for _ in range(_RETRIES):
            trial = self.study.ask(self.distributions)
            self._next_number = trial.number + 1
            values = {name: p.from_optuna(trial.params[name]) for name, p in self.params.items()}
            key = self.codec.key(values)
            if key not in self.seen:
                self.seen.add_key(key, values)
                self._pending.setdefault(key, deque()).append(trial.number)
                return values
            # A repeat (small discrete spaces): discard it so the sampler ignores it.
            self.study.tell(trial.number, state=OptunaState.FAIL)
            self._finished.add(trial.number)
        fallback = self.seen.fill([], 1, self._rng)
        if not fallback:
            return None
        values = fallback[0]
        number = self._add(TrialResult(name="", assignments=values, state="Running"))
        if number is not None:
            self._pending.setdefault(self.codec.key(values), deque()).append(number)
        return values
