"""Objectives for the tune() tests, one per way of reporting metrics.

Module level, so that worker processes import them by reference (cloudpickle ships
functions of ``__main__``, lambdas and closures by value; the tests cover those too).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import katib


def loss_of(x: float) -> float:
    return (x - 0.5) ** 2


def returns_float(p: dict[str, Any]) -> float:
    return loss_of(p["x"])


def returns_dict(p: dict[str, Any]) -> dict[str, float]:
    return {"loss": loss_of(p["x"]), "accuracy": 1 - loss_of(p["x"])}


def prints_lines(p: dict[str, Any]) -> None:
    print(f"epoch 1: loss={loss_of(p['x']) + 1:.6f}")
    print(f"epoch 2: loss={loss_of(p['x']):.6f} accuracy={1 - loss_of(p['x']):.6f}")


def reports_steps(p: dict[str, Any]) -> None:
    for step in range(1, 4):
        katib.report_metrics({"loss": loss_of(p["x"]) + (3 - step), "accuracy": 1 - loss_of(p["x"])})


def check_types(p: dict[str, Any]) -> float:
    """Fails the trial (and so the test) unless every value arrives with its type."""
    expected = {"lr": float, "log_lr": float, "normal": float, "log_normal": float, "stepped": float,
                "layers": int, "log_units": int, "batch": int, "ratio": float, "optimizer": str,
                "flag": bool, "mixed": (int, str), "fixed": dict}
    for name, kind in expected.items():
        if not isinstance(p[name], kind) or (kind is int and isinstance(p[name], bool)):
            raise TypeError(f"{name}={p[name]!r} is {type(p[name]).__name__}, expected {kind}")
    assert 1e-4 <= p["log_lr"] <= 1e-1 and 0 <= p["normal"] <= 1 and p["batch"] in (16, 32, 64)
    assert p["stepped"] in (0.0, 0.25, 0.5, 0.75, 1.0) and p["layers"] in (1, 3, 5)
    assert p["fixed"] == {"epochs": 3} and p["mixed"] in (1, "two")
    return p["lr"]


def fails_on_bad(p: dict[str, Any]) -> float:
    if p["x"] == "bad":
        raise ValueError(f"bad value {p['x']!r}")
    return 1.0


def crashes_on_bad(p: dict[str, Any]) -> float:
    if p["x"] == "bad":
        os._exit(3)  # the worker process dies mid-trial
    return 1.0


def slow_curve(p: dict[str, Any]) -> None:
    """The ``bad`` trial's loss stays high: early stopping must cut it short."""
    bad = p["x"] == "bad"
    for step in range(1, 11):
        katib.report_metrics({"loss": 10.0 if bad else 1.0 / step}, step=step)
        time.sleep(0.15 if bad else 0.01)


def sleeps(p: dict[str, Any]) -> float:
    start = time.time()
    time.sleep(0.4)
    print(f"pid {os.getpid()} from {start:.3f} to {time.time():.3f}")
    return p["x"]


def echoes_environment(p: dict[str, Any]) -> float:
    print(f"trial {os.environ['KATIB_TRIAL_NAME']} custom {os.environ.get('CUSTOM', '')} "
          f"python {sys.version_info[0]}.{sys.version_info[1]}")
    return 1.0


def sleeps_long(p: dict[str, Any]) -> float:
    time.sleep(60)
    return p["x"]


def returns_as_named(p: dict[str, Any]) -> Any:
    """Returns what its parameter names: a number, nan, inf, a string or None."""
    return {"nan": float("nan"), "-inf": -float("inf"), "half": 0.5, "str": "0.3", "none": None}[p["v"]]


def sleeps_long_unless_released(p: dict[str, Any]) -> float:
    """Sleeps like ``sleeps_long`` until the environment says otherwise, so the same function
    can be interrupted first and then resumed quickly."""
    if os.environ.get("KATIB_TEST_RELEASED") != "1":
        time.sleep(60)
    return p["x"]


def returns_float_too(p: dict[str, Any]) -> float:
    return loss_of(p["x"]) + 1
