"""A trial's active deadline, read from its workload as Kubernetes would enforce it.

A batch ``Job`` (and an Argo ``Workflow``, a Trainer ``TrainJob`` that sets it) carries
``spec.activeDeadlineSeconds``; the training-operator kinds (``PyTorchJob``, ``TFJob``,
``XGBoostJob``, ``MPIJob``, ...) carry ``spec.runPolicy.activeDeadlineSeconds``. Kubernetes
counts it from the workload's start and, once passed, stops its pods and marks it failed
with reason ``DeadlineExceeded``. The local runner does the same with the trial's process.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from katib.metrics.parsers import parse_rfc3339

__all__ = ["REASON", "active_deadline", "seconds_since", "message"]

REASON = "DeadlineExceeded"  # the Job condition's reason upstream's trials carry over


def _positive(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds > 0 and math.isfinite(seconds) else None


def active_deadline(run_spec: Mapping[str, Any] | None) -> float | None:
    """The workload's active deadline in seconds, or None when it has none."""
    spec = run_spec.get("spec") if isinstance(run_spec, Mapping) else None
    if not isinstance(spec, Mapping):
        return None
    found = _positive(spec.get("activeDeadlineSeconds"))
    policy = spec.get("runPolicy")
    if found is None and isinstance(policy, Mapping):
        found = _positive(policy.get("activeDeadlineSeconds"))
    return found


def seconds_since(start_time: str | None, now: float) -> float | None:
    """Seconds from an RFC 3339 start time to ``now`` (epoch seconds), or None."""
    start = parse_rfc3339(start_time) if start_time else None
    return None if start is None else now - start.timestamp()


def message(deadline: float) -> str:
    return f"Trial exceeded its active deadline of {deadline:g} s"
