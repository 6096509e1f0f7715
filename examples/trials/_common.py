"""Shared bits of the example trials: the data set and the metrics output formats.

Trials print their metrics the way Katib's collectors read them:

* ``text``   ``epoch=3 loss=0.31 accuracy=0.91`` (StdOut/File collector default filter)
* ``json``   one JSON object per line, values as strings (upstream's JSON collector ignores
             numbers), with an RFC 3339 ``timestamp``
* ``custom`` ``{metricName: accuracy, metricValue: 0.91}`` for a custom filter regex

Only numpy and scikit-learn are used; the data set is scikit-learn's bundled digits (no
download).
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timezone
from typing import IO, Any

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

FORMATS = ("text", "json", "custom")

# Trials run side by side (parallelTrialCount); one BLAS/OpenMP thread each keeps them from
# fighting over the cores. KATIB_TRIAL_THREADS raises it for a trial that runs alone.
threadpool_limits(int(os.environ.get("KATIB_TRIAL_THREADS", "1")))


def digits(num_examples: str | int | None = None, seed: int = 0,
           binary: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Train/validation split of the 8x8 digits, pixels scaled to [0, 1].

    ``num_examples`` may arrive unresolved from a workflow step the local runner does not
    run (``{{inputs.parameters.n}}``); then all examples are used, with a note on stderr.
    """
    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    if binary:
        y = (y >= 5).astype(int)
    n = None
    if num_examples not in (None, ""):
        try:
            n = int(str(num_examples))
        except ValueError:
            print(f"note: --num-examples={num_examples!r} is not a number (a value from a workflow step that "
                  "did not run here?); using all examples", file=sys.stderr)
    if n is not None and 20 <= n < len(y):
        x, y = x[:n], y[:n]
    return tuple(train_test_split(x, y, test_size=0.3, random_state=seed, stratify=y))  # type: ignore[return-value]


class MetricsWriter:
    """Writes one line of metrics per report to stdout or to ``path`` (created, appended)."""

    def __init__(self, fmt: str = "text", path: str | None = None) -> None:
        if fmt not in FORMATS:
            raise SystemExit(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        self.fmt = fmt
        self.path = path
        self._out: IO[str] = sys.stdout
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            self._out = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def report(self, values: dict[str, Any], step: int | None = None) -> None:
        if self.fmt == "json":
            row: dict[str, str] = {"timestamp": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")}
            if step is not None:
                row["epoch"] = str(step)
            row.update({k: _text(v) for k, v in values.items()})
            lines = [json.dumps(row)]
        elif self.fmt == "custom":
            lines = [("" if step is None else f"epoch {step}: ") +
                     ", ".join(f"{{metricName: {k}, metricValue: {_text(v)}}}" for k, v in values.items())]
        else:
            head = [] if step is None else [f"epoch={step}"]
            lines = [" ".join(head + [f"{k}={_text(v)}" for k, v in values.items()])]
        for line in lines:
            self._out.write(line + "\n")
        self._out.flush()
        if self.path:  # keep a human-readable trace in the trial log as well
            print(lines[-1], flush=True)

    def close(self) -> None:
        if self._out is not sys.stdout:
            self._out.close()


def _text(value: Any) -> str:
    return f"{value:.6f}" if isinstance(value, float) else str(value)
