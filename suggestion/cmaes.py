"""CMA-ES on the unit cube, driven directly with the ``cmaes`` package.

Serves ``cmaes`` with the settings of both upstream services: ``restart_strategy``
(``none``/``None`` or empty = no restart, ``ipop``, ``bipop``), ``sigma`` (float > 0, the
initial step size relative to each parameter's normalised range, optuna's convention;
default 1/6) and ``random_state``. At least two int/double parameters are required.

Why not optuna's CmaEsSampler: since optuna 4.4 it silently ignores ``restart_strategy``,
and it cannot resume after a restart because its state lives in trials it created. Here:

* every int/double parameter is one CMA-ES coordinate in [0, 1], mapped to a value by the
  per-distribution mapping of ``_common`` (log scale for logUniform, truncated normal for
  normal, ...; steps and ints are rounded afterwards). Categorical and discrete parameters
  are drawn uniformly at random, as optuna and goptuna do for CMA-ES.
* a generation is complete once ``popsize`` of its points have a value; failed trials do not
  count and more points of the same generation are asked instead. Results arriving for an
  older generation are dropped, as in optuna.
* trials this instance did not create (a restart, trials added by hand) are fed to CMA-ES in
  creation order, ``popsize`` at a time, as if they were generations. A restarted service so
  replays the search it had done and continues from a comparable distribution.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass
from typing import ClassVar, Mapping, Sequence

import numpy as np
from cmaes import CMA  # type: ignore[import-untyped]

from katib.api.model import ObjectiveSpec, ParameterType
from katib.api.space import SearchSpace, Value
from katib.errors import SettingsError
from suggestion._common import SeenPoints, SpaceCodec, check_space, parse_seed, to_assignments
from suggestion.base import Algorithm, Assignment, TrialResult, check_known, parse_choice, parse_float

__all__ = ["CMAES"]

_RESTART = {"": "none", "none": "none", "None": "none", "ipop": "ipop", "bipop": "bipop"}
_INC_POPSIZE = 2
_RETRIES = 10


@dataclass
class _Asked:
    generation: int
    x: np.ndarray


class CMAES(Algorithm):
    name = "cmaes"
    settings: ClassVar[Mapping[str, str | None]] = {"restart_strategy": "none", "sigma": None, "random_state": None}

    @classmethod
    def validate_settings(cls, settings: Mapping[str, str], space: SearchSpace,
                          objective: ObjectiveSpec, *, max_trial_count: int | None = None,
                          parallel_trial_count: int | None = None) -> None:
        check_known(cls.name, settings, cls.settings)
        parse_choice(settings, "restart_strategy", "none", list(_RESTART))
        parse_float(settings, "sigma", None, min_value=0.0, min_exclusive=True)
        parse_seed(settings)
        check_space(space, cls.name)
        numeric = [p for p in space if p.type in (ParameterType.INT, ParameterType.DOUBLE)]
        if len(numeric) < 2:
            raise SettingsError("spec.parameters", f"cmaes needs at least 2 int or double parameters; "
                                                   f"this experiment has {len(numeric)}")

    def __init__(self, space: SearchSpace, objective: ObjectiveSpec, settings: Mapping[str, str],
                 **counts: int | None) -> None:
        super().__init__(space, objective, settings, **counts)
        self._restart = _RESTART[parse_choice(settings, "restart_strategy", "none", list(_RESTART)) or "none"]
        self._sigma0 = parse_float(settings, "sigma", None) or 1 / 6
        seed = parse_seed(settings)
        self._rng = random.Random(seed)
        self._np_rng = np.random.default_rng(seed)
        self._codec = SpaceCodec(space)
        self._seen = SeenPoints(self._codec)
        self._numeric = [d for d in self._codec.dims if d.kind != "choice"]
        self._choices = [d for d in self._codec.dims if d.kind == "choice"]
        d = len(self._numeric)
        self._bounds = np.array([[0.0, 1.0]] * d)
        self._popsize0 = 4 + math.floor(3 * math.log(d))
        self._cma = self._new_cma(np.full(d, 0.5), self._popsize0, seed)
        # BIPOP bookkeeping (Hansen 2009, as in the cmaes package's example).
        self._n_restarts = 0
        self._poptype = "small"
        self._small_evals = 0
        self._large_evals = 0
        self._generation = 0
        self._solutions: list[tuple[np.ndarray, float]] = []  # results of the current generation
        self._outstanding = 0  # points of the current generation asked and not yet finished
        self._pending: dict[tuple[str, ...], deque[_Asked]] = {}
        self._by_name: dict[str, _Asked | None] = {}  # None: a trial we did not create
        self._done: set[str] = set()
        self._foreign: list[tuple[float, np.ndarray, float]] = []  # (order, x, loss)

    def _new_cma(self, mean: np.ndarray, popsize: int, seed: int | None) -> CMA:
        return CMA(mean=mean, sigma=self._sigma0, bounds=self._bounds, seed=seed, population_size=popsize)

    def _loss(self, t: TrialResult) -> float | None:
        if not (t.finished and t.has_value and t.value is not None and math.isfinite(t.value)):
            return None
        return float(t.value) if self.minimize else -float(t.value)

    def tell(self, trials: Sequence[TrialResult]) -> None:
        for t in trials:
            key = self._seen.add(t.assignments)
            if t.name not in self._by_name:
                queue = self._pending.get(key) if key is not None else None
                self._by_name[t.name] = queue.popleft() if queue else None
                if queue is not None and not queue:
                    del self._pending[key]  # type: ignore[arg-type]
            if not t.finished or t.name in self._done:
                continue
            self._done.add(t.name)
            asked = self._by_name[t.name]
            loss = self._loss(t)
            if asked is None:
                if loss is not None and key is not None:
                    x = np.array([d.to_unit(t.assignments.get(d.name)) for d in self._numeric])
                    self._foreign.append((t.order, x, loss))
                continue
            if asked.generation != self._generation:
                continue  # a straggler of an older generation
            self._outstanding -= 1
            if loss is not None:
                self._solutions.append((asked.x, loss))
        if len(self._solutions) >= self._cma.population_size:
            self._tell_generation(self._solutions[: self._cma.population_size])

    def _tell_generation(self, solutions: list[tuple[np.ndarray, float]]) -> None:
        self._cma.tell(solutions)
        self._generation += 1
        self._solutions = []
        self._outstanding = 0
        if self._restart != "none" and self._cma.should_stop():
            self._restart_cma()

    def _restart_cma(self) -> None:
        self._n_restarts += 1
        popsize = self._popsize0 * _INC_POPSIZE ** self._n_restarts
        if self._restart == "bipop":
            evals = self._cma.population_size * self._cma.generation
            if self._poptype == "small":
                self._small_evals += evals
            else:
                self._large_evals += evals
            if self._small_evals < self._large_evals:
                self._poptype = "small"
                multiplier = _INC_POPSIZE ** self._n_restarts
                popsize = math.floor(self._popsize0 * multiplier ** (self._rng.random() ** 2))
            else:
                self._poptype = "large"
        mean = self._np_rng.uniform(0.0, 1.0, len(self._numeric))
        self._cma = self._new_cma(mean, max(popsize, 2), self._rng.randrange(2**31))

    def _feed_foreign(self) -> None:
        """Replay trials we did not create, but only between generations, so points we
        asked for are not orphaned."""
        popsize = self._cma.population_size
        if self._outstanding or self._solutions or len(self._foreign) < popsize:
            return
        self._foreign.sort(key=lambda item: item[0])
        while len(self._foreign) >= popsize:
            chunk, self._foreign = self._foreign[:popsize], self._foreign[popsize:]
            self._tell_generation([(x, loss) for _, x, loss in chunk])
            popsize = self._cma.population_size

    def _point(self, x: np.ndarray) -> dict[str, Value]:
        values: dict[str, Value] = {d.name: d.from_unit(float(u)) for d, u in zip(self._numeric, x)}
        for d in self._choices:
            values[d.name] = d.from_unit(self._rng.random())
        return {name: values[name] for name in self._codec.names}

    def ask(self, n: int) -> list[Assignment]:
        self._seen.check_exhausted()
        self._feed_foreign()
        batch: list[dict[str, Value]] = []
        for _ in range(n):
            for _ in range(_RETRIES):
                x = self._cma.ask()
                values = self._point(x)
                key = self._codec.key(values)
                if key not in self._seen:
                    break
            else:
                # CMA-ES keeps landing on seen grid points (converged on a discrete space):
                # take a random unseen point, mapped back so CMA-ES still learns from it.
                fallback = self._seen.fill([], 1, self._rng)
                if not fallback:
                    break
                values = fallback[0]
                key = self._codec.key(values)
                x = np.array([d.to_unit(values[d.name]) for d in self._numeric])
            self._seen.add_key(key, values)
            self._pending.setdefault(key, deque()).append(_Asked(self._generation, x))
            self._outstanding += 1
            batch.append(values)
        return to_assignments(batch)
