"""Random search: independent draws from each parameter's distribution.

Serves ``random`` (upstream routes it to hyperopt, and optuna accepts it too; both know only
``random_state``). Draws honour type, bounds, step and distribution (see ``_common``). Points
already suggested or told are not repeated, which only matters for finite spaces: there the
batch shrinks to what is left and the search ends with ``SearchSpaceExhausted``.

A fresh instance with the same ``random_state`` replays the same sequence, skipping the points
it is told about, so a restarted service continues where the old one stopped.
"""

from __future__ import annotations

import random
from typing import ClassVar, Mapping, Sequence

from katib.api.model import ObjectiveSpec
from katib.api.space import SearchSpace
from suggestion._common import (
    SeenPoints,
    SettingsParsed,
    SpaceCodec,
    parse_seed,
    to_assignments,
)
from suggestion.base import Assignment, TrialResult

__all__ = ["RandomSearch"]


class RandomSearch(SettingsParsed):
    name = "random"
    settings: ClassVar[Mapping[str, str | None]] = {"random_state": None}


    def __init__(self, space: SearchSpace, objective: ObjectiveSpec, settings: Mapping[str, str],
                 **counts: int | None) -> None:
        super().__init__(space, objective, settings, **counts)
        self._rng = random.Random(parse_seed(settings))
        self._codec = SpaceCodec(space)
        self._seen = SeenPoints(self._codec)

    def tell(self, trials: Sequence[TrialResult]) -> None:
        for t in trials:
            self._seen.add(t.assignments)

    def ask(self, n: int) -> list[Assignment]:
        self._seen.check_exhausted()
        return to_assignments(self._seen.fill([], n, self._rng))
