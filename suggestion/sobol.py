"""Sobol quasi-random search (scipy.stats.qmc).

Serves ``sobol`` (upstream: goptuna's Sobol sampler, which takes no settings). We accept
``random_state`` in addition: with it the sequence is Owen-scrambled with that seed; without
it the plain (deterministic) Sobol sequence is used, as upstream does. Each point of the unit
cube is mapped to a legal assignment by the documented per-distribution mapping in
``_common``, so distributions, steps and types are honoured.

The sequence is a pure function of the seed, so a fresh instance simply replays it and skips
the points it has been told about: restart continues the same low-discrepancy sequence.
Points are drawn in chunks whose running total is a power of two, which keeps Sobol's
balance properties and avoids scipy's warning about it.
"""

from __future__ import annotations

import random
from typing import ClassVar, Mapping, Sequence

import numpy as np
from scipy.stats import qmc  # type: ignore[import-untyped]

from katib.api.model import ObjectiveSpec
from katib.api.space import SearchSpace, Value
from suggestion._common import (
    SeenPoints,
    SettingsParsed,
    SpaceCodec,
    parse_seed,
    to_assignments,
)
from suggestion.base import Assignment, TrialResult

__all__ = ["Sobol"]

_FIRST_CHUNK = 32


class Sobol(SettingsParsed):
    name = "sobol"
    settings: ClassVar[Mapping[str, str | None]] = {"random_state": None}


    def __init__(self, space: SearchSpace, objective: ObjectiveSpec, settings: Mapping[str, str],
                 **counts: int | None) -> None:
        super().__init__(space, objective, settings, **counts)
        seed = parse_seed(settings)
        self._codec = SpaceCodec(space)
        self._seen = SeenPoints(self._codec)
        self._engine = qmc.Sobol(d=max(len(self._codec.dims), 1), scramble=seed is not None, seed=seed)
        self._buffer: np.ndarray = np.empty((0, self._engine.d))
        self._pos = 0
        # Fallback for finite spaces whose Sobol points keep colliding near exhaustion.
        self._rng = random.Random(seed)

    def _next_unit(self) -> np.ndarray:
        if self._pos >= len(self._buffer):
            chunk = max(_FIRST_CHUNK, self._engine.num_generated)
            self._buffer = self._engine.random(chunk)
            self._pos = 0
        row = self._buffer[self._pos]
        self._pos += 1
        return row

    def tell(self, trials: Sequence[TrialResult]) -> None:
        for t in trials:
            self._seen.add(t.assignments)

    def ask(self, n: int) -> list[Assignment]:
        self._seen.check_exhausted()
        batch: list[dict[str, Value]] = []
        # Told points are skipped, not counted, so the budget grows with what was seen.
        budget = 64 * n + len(self._seen)
        while len(batch) < n and budget > 0:
            budget -= 1
            values = self._codec.decode([float(u) for u in self._next_unit()])
            key = self._codec.key(values)
            if key not in self._seen:
                self._seen.add_key(key, values)
                batch.append(values)
        return to_assignments(self._seen.fill(batch, n, self._rng))
