"""Grid search over every combination of the parameters' legal values.

Serves ``grid`` (upstream: optuna's GridSampler). Every double needs a ``step``; ints use
their step (default 1); lists are taken as given, so the grid is exactly upstream's
``convert_to_combinations``. ``max_trial_count`` must not exceed the number of combinations.

Order: with ``random_state`` the grid is visited in a seeded random order (as optuna's
GridSampler does, so stopping early still covers the space evenly); without it, in
lexicographic order (last parameter fastest), which is predictable for users. Points already
suggested or told are skipped, so a fresh instance told the existing trials continues
without repeats; when every point is taken, ``ask`` raises ``SearchSpaceExhausted``.

Combinations are never materialised: an index is decoded into a point on demand, so a grid
of 10^9 points costs no memory.
"""

from __future__ import annotations

import math
import random
from typing import Callable, ClassVar, Mapping, Sequence

import numpy as np

from katib.api.model import ObjectiveSpec, ParameterType
from katib.api.space import SearchSpace, Value
from katib.errors import SearchSpaceExhausted, SettingsError
from suggestion._common import SeenPoints, SpaceCodec, check_space, param_path, parse_seed, to_assignments
from suggestion.base import Algorithm, Assignment, TrialResult, check_known

__all__ = ["GridSearch"]

# Up to this many points a seeded order is a true permutation; beyond, an affine bijection
# i -> (a*i + c) mod N, which needs no memory and still spreads consecutive trials out.
_MAX_SHUFFLE = 1_000_000


class GridSearch(Algorithm):
    name = "grid"
    settings: ClassVar[Mapping[str, str | None]] = {"random_state": None}

    @classmethod
    def validate_settings(cls, settings: Mapping[str, str], space: SearchSpace,
                          objective: ObjectiveSpec, *, max_trial_count: int | None = None,
                          parallel_trial_count: int | None = None) -> None:
        check_known(cls.name, settings, cls.settings)
        parse_seed(settings)
        for p in space:
            if p.type == ParameterType.DOUBLE and not p.step:
                raise SettingsError(param_path(space, p.name, ".feasibleSpace.step"),
                                    f"parameter {p.name!r} is a double without a step; grid "
                                    "needs feasibleSpace.step for every double parameter")
        check_space(space, cls.name)
        size = SpaceCodec(space).finite_size
        assert size is not None
        if max_trial_count is not None and max_trial_count > size:
            raise SettingsError("spec.maxTrialCount",
                                f"{max_trial_count} exceeds the {size} combinations of the grid; "
                                f"set maxTrialCount <= {size} or widen the search space")

    def __init__(self, space: SearchSpace, objective: ObjectiveSpec, settings: Mapping[str, str],
                 **counts: int | None) -> None:
        super().__init__(space, objective, settings, **counts)
        self._seed = parse_seed(settings)
        self._codec = SpaceCodec(space)
        self._seen = SeenPoints(self._codec)
        size = self._codec.finite_size
        if size is None:
            raise SettingsError("spec.parameters", "grid needs a finite search space")
        self._size: int = size
        self._next = 0  # position in the visiting order
        self._order: Callable[[int], int] | None = None

    def _build_order(self) -> Callable[[int], int]:
        if self._seed is None:
            return lambda i: i
        if self._size <= _MAX_SHUFFLE:
            perm = np.random.default_rng(self._seed).permutation(self._size)
            return lambda i: int(perm[i])
        rng = random.Random(self._seed)
        a = rng.randrange(1, self._size)
        while math.gcd(a, self._size) != 1:
            a = rng.randrange(1, self._size)
        c = rng.randrange(self._size)
        return lambda i: (a * i + c) % self._size

    def tell(self, trials: Sequence[TrialResult]) -> None:
        for t in trials:
            self._seen.add(t.assignments)

    def ask(self, n: int) -> list[Assignment]:
        if self._order is None:
            self._order = self._build_order()
        batch: list[dict[str, Value]] = []
        while len(batch) < n and self._next < self._size and self._seen.remaining:
            values = self._codec.point_at(self._order(self._next))
            self._next += 1
            key = self._codec.key(values)
            if key not in self._seen:
                self._seen.add_key(key, values)
                batch.append(values)
        if not batch and n > 0:
            raise SearchSpaceExhausted(f"grid search: all {self._size} combinations have been suggested")
        return to_assignments(batch)
