"""Shared helpers: synthetic learning curves, log builders and a naive median-rule oracle."""

from __future__ import annotations

import math
import random
import statistics
from datetime import datetime, timedelta, timezone
from typing import Sequence

from katib.api.model import ObjectiveSpec
from katib.api.observation import MetricLog

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def objective(kind: str = "maximize", metric: str = "accuracy") -> ObjectiveSpec:
    return ObjectiveSpec(type=kind, objective_metric_name=metric)


def logs(metric: str, values: Sequence[float | str], steps: Sequence[int | None] | None = None,
         other: str | None = "loss") -> list[MetricLog]:
    """One log per value (interleaved with a log of another metric the rule must ignore)."""
    out: list[MetricLog] = []
    for i, v in enumerate(values):
        ts = T0 + timedelta(seconds=i)
        step = steps[i] if steps is not None else None
        if other:
            out.append(MetricLog(other, "123.0", ts, step))
        out.append(MetricLog(metric, v if isinstance(v, str) else repr(float(v)), ts, step))
    return out


def saturating(level: float, steps: int, rng: random.Random, *, tau: float = 3.0,
               noise: float = 0.002) -> list[float]:
    """A typical accuracy curve: rises towards ``level`` with a little seeded noise."""
    return [level * (1 - math.exp(-t / tau)) + rng.gauss(0, noise) for t in range(1, steps + 1)]


def naive_stop_step(running: Sequence[tuple[int, float]], completed: Sequence[Sequence[tuple[int, float]]],
                    *, maximize: bool, start_step: int, min_trials: int) -> int | None:
    """The median rule written the slow, obvious way: rescans every observation per check.

    ``running`` and each completed curve are (step, value) pairs in report order.
    """
    better = max if maximize else min

    def best_up_to(curve: Sequence[tuple[int, float]], s: int) -> float | None:
        vals = [v for st, v in curve if st <= s and math.isfinite(v)]
        return better(vals) if vals else None

    for step, _ in running:
        if step < start_step or len(completed) < min_trials:
            continue
        refs = [b for b in (best_up_to(c, step) for c in completed) if b is not None]
        if len(refs) < min_trials:
            continue
        median = statistics.median(refs)
        mine = best_up_to(running, step)
        if mine is None:
            continue
        if (mine < median) if maximize else (mine > median):
            return step
    return None


def upstream_threshold(completed: Sequence[Sequence[float]], start_step: int) -> float:
    """What upstream's medianstop sends: the mean over trials of the mean of their first
    ``start_step`` values (reference §8)."""
    return statistics.fmean(statistics.fmean(c[:start_step]) for c in completed)
