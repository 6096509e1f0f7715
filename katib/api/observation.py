"""Observation rows: one reported value of one metric of one trial at one time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

__all__ = ["MetricLog", "utcnow", "UNAVAILABLE"]

# Upstream's marker for "the objective metric never appeared".
UNAVAILABLE = "unavailable"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class MetricLog:
    """``timestamp`` is timezone-aware UTC with microsecond resolution. ``step`` is the
    training step the trial gave with the value, or None (then the order of reports is the
    step). ``value`` is text, as upstream stores it; numeric values parse with float().

    ``position`` says which report of the metric this row is, in the source it was read
    from, so that reading or sending it again stores nothing twice: the store keeps one row
    per (trial, metric, position) and ignores the repeats. Collectors of text output number
    a metric's values in order of appearance (1, 2, ...), event files and pushed metrics use
    the step. None (rows sent over upstream's gRPC API) is never a repeat."""

    metric_name: str
    value: str
    timestamp: datetime
    step: int | None = None
    position: int | None = None

    @property
    def number(self) -> float | None:
        try:
            return float(self.value)
        except ValueError:
            return None
