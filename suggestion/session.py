"""One algorithm instance per experiment, told only what is new.

Both the in-process path (``katib run``) and the gRPC service keep a ``Session`` per
experiment. ``suggest`` is handed the caller's full view of the trials (that is what
upstream's GetSuggestions request carries); the session forwards to the algorithm only the
trials it has not seen or whose state changed, so each call costs O(new trials) in the
algorithm. A fresh session (after a restart) simply tells everything once.
"""

from __future__ import annotations

import threading
from typing import Iterable, Mapping

from katib.api.model import ObjectiveSpec
from katib.api.space import SearchSpace
from suggestion import registry
from suggestion.base import Algorithm, Assignment, TrialResult

__all__ = ["Session"]


class Session:
    def __init__(
        self,
        algorithm_name: str,
        space: SearchSpace,
        objective: ObjectiveSpec,
        settings: Mapping[str, str],
        *,
        max_trial_count: int | None = None,
        parallel_trial_count: int | None = None,
        algorithm_class: type[Algorithm] | None = None,
    ) -> None:
        # ``algorithm_class`` lets a server offer algorithms that are not in the registry.
        cls = algorithm_class or registry.get(algorithm_name)
        cls.validate_settings(settings, space, objective, max_trial_count=max_trial_count,
                              parallel_trial_count=parallel_trial_count)
        self.algorithm: Algorithm = cls(space, objective, settings, max_trial_count=max_trial_count,
                                        parallel_trial_count=parallel_trial_count)
        self.algorithm_name = algorithm_name
        self._seen: dict[str, tuple[str, float | None]] = {}
        # gRPC calls for one experiment may overlap; an algorithm is not thread-safe.
        self.lock = threading.Lock()

    def knows(self, name: str, state: str, value: float | None) -> bool:
        """Whether the algorithm was already told trial ``name`` in this state with this
        value, so a caller can skip decoding the rest of that trial."""
        return self._seen.get(name) == (state, value)

    def new_trials(self, trials: Iterable[TrialResult]) -> list[TrialResult]:
        """The trials that are new or changed since the last call (and remember them)."""
        fresh = []
        for t in trials:
            key = (t.state, t.value)
            if self._seen.get(t.name) != key:
                self._seen[t.name] = key
                fresh.append(t)
        return fresh

    def suggest(self, trials: Iterable[TrialResult], n: int) -> list[Assignment]:
        with self.lock:
            fresh = self.new_trials(trials)
            if fresh:
                self.algorithm.tell(fresh)
            if n <= 0:
                return []
            return self.algorithm.ask(n)

    def tell(self, trials: Iterable[TrialResult]) -> None:
        with self.lock:
            fresh = self.new_trials(trials)
            if fresh:
                self.algorithm.tell(fresh)
