"""The tune() objective of the visualization tests (module level: workers import it by name)."""

from __future__ import annotations

import math
import time
from typing import Any

import katib


def final_loss(p: dict[str, Any]) -> float:
    return (math.log10(p["lr"]) + 2) ** 2 + 0.1 * p["layers"]


def curve(p: dict[str, Any]) -> None:
    """Ten reports of a loss falling to ``final_loss``; ``bad`` stays high (early stopping
    cuts it short), ``crash`` raises after its first report."""
    for step in range(1, 11):
        if p["opt"] == "bad":
            katib.report_metrics({"loss": 10.0 + step * 0.01}, step=step)
            time.sleep(0.1)
            continue
        katib.report_metrics({"loss": final_loss(p) + (10 - step) * 0.1}, step=step)
        if p["opt"] == "crash":
            raise RuntimeError("crash on purpose")
        time.sleep(0.005)
