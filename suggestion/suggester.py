"""What a controller asks for suggestions through, wherever the algorithm runs.

Two implementations: ``suggestion.inprocess.InProcessSuggester`` (the algorithm runs in this
process; ``katib run``) and ``katib.rpc.suggestion_client.RemoteSuggester`` (any
upstream-compatible Suggestion service over gRPC). Test doubles only need these two methods.
"""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

from katib.api.model import Experiment, Trial
from suggestion.base import Assignment, TrialResult

__all__ = ["Suggester"]


@runtime_checkable
class Suggester(Protocol):
    def validate(self, experiment: Experiment) -> None:
        """Raise SettingsError / ValidationError naming what is wrong with the experiment's
        algorithm, settings or search space; return when the algorithm can run it."""

    def suggest(self, experiment: Experiment, trials: Sequence[Trial | TrialResult], n: int) -> list[Assignment]:
        """Up to ``n`` distinct new assignments, given every trial of the experiment so far
        (the implementation passes on only what changed). Raises SearchSpaceExhausted when
        nothing more will come; the controller then ends the experiment as
        SuggestionEndReached."""
