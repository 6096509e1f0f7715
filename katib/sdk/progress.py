"""tune()'s progress display: one redrawn line on a terminal, occasional plain lines otherwise.

Called by the runner on every loop iteration, so it only reads the counts the reconcile core
already computed (``Experiment.status``) and redraws at most ``tty_interval`` apart. A trial
that fails prints its traceback once, above the bar, so a broken objective is visible at
once instead of after the run.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence, TextIO

from katib.api.model import Experiment, Trial
from katib.metrics.strategies import objective_value
from katib.sdk.result import tail_text, traceback_of

__all__ = ["TuneProgress"]

_BAR = 24
_FULL_TRACEBACKS = 1  # later failures print their last line only: one broken objective, many trials


class TuneProgress:
    def __init__(self, total: int | None, *, out: TextIO | None = None,
                 log_path: Callable[[str], Path] | None = None, tty: bool | None = None,
                 tty_interval: float = 0.1, line_interval: float = 10.0) -> None:
        self.out = out or sys.stderr
        self.total = total
        self.log_path = log_path
        self.tty = self.out.isatty() if tty is None else tty
        self.interval = tty_interval if self.tty else line_interval
        self.started = time.monotonic()
        self._last_draw = 0.0
        self._last_key: Any = None
        self._failed: set[str] = set()
        self._drawn = False

    def __call__(self, exp: Experiment, trials: Sequence[Trial]) -> None:
        s = exp.status
        if s is None:
            return
        if len(s.failed_trial_list) > len(self._failed):
            # The list is in trial order, not failure order: compare names, not lengths.
            for name in s.failed_trial_list:
                if name not in self._failed:
                    self._failure(name, trials)
                    self._failed.add(name)
        now = time.monotonic()
        key = (s.trials_succeeded, s.trials_failed, s.trials_running, s.trials_early_stopped, s.trials_killed)
        if now - self._last_draw < self.interval or (not self.tty and key == self._last_key):
            return
        self._draw(exp, now)
        self._last_key = key

    def close(self, exp: Experiment) -> None:
        """The final state, and the cursor on a new line."""
        self._draw(exp, time.monotonic(), final=True)

    # -- drawing ---------------------------------------------------------------------------
    def _line(self, exp: Experiment, now: float) -> str:
        s = exp.status
        assert s is not None
        done = sum(n or 0 for n in (s.trials_succeeded, s.trials_failed, s.trials_killed, s.trials_early_stopped,
                                    s.trial_metrics_unavailable))
        parts = []
        if self.total:
            filled = min(_BAR, round(_BAR * done / self.total))
            parts.append(f"[{'#' * filled}{'.' * (_BAR - filled)}] {done}/{self.total} trials")
        else:
            parts.append(f"{done} trials")
        parts.append(f"{s.trials_running or 0} running")
        for count, label in ((s.trials_failed, "failed"), (s.trials_early_stopped, "early-stopped"),
                             (s.trial_metrics_unavailable, "no metric"), (s.trials_killed, "killed")):
            if count:
                parts.append(f"{count} {label}")
        best = self._best(exp)
        if best:
            parts.append(best)
        parts.append(f"{now - self.started:.1f}s")
        return " | ".join(parts)

    @staticmethod
    def _best(exp: Experiment) -> str:
        s = exp.status
        opt = s.current_optimal_trial if s else None
        objective = exp.spec.objective
        if opt is None or not opt.best_trial_name or objective is None:
            return ""
        value = objective_value(opt.observation, objective)
        return f"best {objective.objective_metric_name}={value:.6g}" if value is not None else ""

    def _draw(self, exp: Experiment, now: float, final: bool = False) -> None:
        if exp.status is None:
            return
        line = self._line(exp, now)
        if self.tty:
            self.out.write("\r\x1b[2K" + line + ("\n" if final else ""))
            self._drawn = not final
        else:
            self.out.write(f"[{exp.name}] {line}\n")
        self.out.flush()
        self._last_draw = now

    def _failure(self, name: str, trials: Sequence[Trial]) -> None:
        """Print why a trial failed: its traceback (the first in full, later ones their last
        line) or the runner's message."""
        text: str | None = None
        if self.log_path is not None:
            text = traceback_of(tail_text(self.log_path(name)))
        if text is None:
            trial = next((t for t in trials if t.name == name), None)
            cond = next((c for c in trial.status.conditions if c.type == "Failed"), None) if trial else None
            text = (cond.message if cond is not None else None) or "no message"
        if len(self._failed) >= _FULL_TRACEBACKS:
            text = text.strip().splitlines()[-1] if text.strip() else text
        if self.tty and self._drawn:
            self.out.write("\r\x1b[2K")
            self._drawn = False
        body = text.strip().replace("\n", "\n  ")
        self.out.write(f"Trial {name} failed:\n  {body}\n")
        self.out.flush()
        self._last_draw = 0.0  # redraw the bar right away
