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
    step). ``value`` is text, as upstream stores it; numeric values parse with float()."""

    metric_name: str
    value: str
    timestamp: datetime
    step: int | None = None

    @property
    def number(self) -> float | None:
        try:
            return float(self.value)
        except ValueError:
            return None
