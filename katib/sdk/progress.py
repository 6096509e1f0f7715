"""tune()'s progress display: one redrawn line on a terminal, occasional plain lines otherwise.

Called by the runner on every loop iteration, so it only reads the counts the reconcile core
already computed (``Experiment.status``) and redraws at most ``tty_interval`` apart. The line
fits the terminal's width: a line that wraps cannot be redrawn in place (every redraw would
leave a row behind). A trial that fails prints its traceback once, above the bar, so a
broken objective is visible at once instead of after the run.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence, TextIO

from katib.api.model import Experiment, Trial
from katib.metrics.strategies import objective_value
from katib.sdk.result import tail_text, traceback_of
from katib.terminal import display_width, fit_named_value, fit_parts, number, terminal_width

__all__ = ["TuneProgress"]

_BAR = 24
_FULL_TRACEBACKS = 1  # later failures print their last line only: one broken objective, many trials


class TuneProgress:
    def __init__(self, total: int | None, *, out: TextIO | None = None,
                 log_path: Callable[[str], Path] | None = None, tty: bool | None = None,
                 tty_interval: float = 0.1, line_interval: float = 10.0, width: int | None = None) -> None:
        self.out = out or sys.stderr
        self.width = width  # columns; by default the terminal's, asked on every redraw (it may be resized)
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
    def _line(self, exp: Experiment, now: float, width: int | None = None) -> str:
        """The status line in ``width`` columns: the bar narrows, then goes; then the
        elapsed time, the rarer counts, the running count and the failures go, in that
        order; the trial count and the best value stay longest."""
        s = exp.status
        assert s is not None
        done = sum(n or 0 for n in (s.trials_succeeded, s.trials_failed, s.trials_killed, s.trials_early_stopped,
                                    s.trial_metrics_unavailable))
        parts: list[tuple[str, int]] = [(f"{done}/{self.total} trials" if self.total else f"{done} trials", 9),
                                        (f"{s.trials_running or 0} running", 3)]
        for count, label, keep in ((s.trials_failed, "failed", 4), (s.trials_early_stopped, "early-stopped", 2),
                                   (s.trial_metrics_unavailable, "no metric", 2), (s.trials_killed, "killed", 2)):
            if count:
                parts.append((f"{count} {label}", keep))
        best = self._best(exp)
        elapsed = (f"{now - self.started:.1f}s", 1)
        total = self.total or 0
        for bar in (_BAR, _BAR // 2) if total else ():
            filled = min(bar, round(bar * done / total))
            texts = [t for t, _ in parts[1:]] + ([f"best {best[0]}={best[1]}"] if best else []) + [elapsed[0]]
            line = " | ".join([f"[{'#' * filled}{'.' * (bar - filled)}] {parts[0][0]}", *texts])
            if width is None or display_width(line) <= width:
                return line
        if best is None:
            return fit_parts([*parts, elapsed], width)
        name, value = best
        return fit_named_value(lambda shown: [*parts, (f"best {shown}={value}", 5), elapsed], name, value, width)

    @staticmethod
    def _best(exp: Experiment) -> tuple[str, str] | None:
        """The objective's name and best value, as shown."""
        s = exp.status
        opt = s.current_optimal_trial if s else None
        objective = exp.spec.objective
        if opt is None or not opt.best_trial_name or objective is None:
            return None
        value = objective_value(opt.observation, objective)
        name = objective.objective_metric_name or ""
        return (name, number(value)) if value is not None else None

    def _draw(self, exp: Experiment, now: float, final: bool = False) -> None:
        if exp.status is None:
            return
        if self.tty:
            width = self.width if self.width is not None else terminal_width(self.out, tty=True)
            # One column spare: writing the last column leaves the cursor waiting to wrap, and
            # some terminals wrap at once, so the next "\r" would clear the wrong row.
            line = self._line(exp, now, None if width is None else max(1, width - 1))
            self.out.write("\r\x1b[2K" + line + ("\n" if final else ""))
            self._drawn = not final
        else:
            self.out.write(f"[{exp.name}] {self._line(exp, now)}\n")
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
