"""Helpers for the controller tests on the real test control plane."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from katib.backends.kubernetes.client import Kube
from katib.backends.kubernetes.controller import Controller, ControllerOptions
from katib.backends.kubernetes.resources import EXPERIMENT_LABEL, EXPERIMENTS, TRIALS
from katib.backends.kubernetes.services import Services

PY = sys.executable  # the test kubelet runs container commands on this host


@contextmanager
def running_controller(kube: Kube, namespace: str, services: Services | None = None,
                       **options: Any) -> Iterator[Controller]:
    """A controller on threads of this process, watching one namespace."""
    opts = ControllerOptions(namespace=namespace, poll_interval=0.3, resync_period=3.0, **options)
    controller = Controller(kube, services or Services(), opts)
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 120.0, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return c  # type: ignore[no-any-return]
    return None


def finished(kube: Kube, namespace: str, name: str) -> Callable[[], dict[str, Any] | None]:
    def probe() -> dict[str, Any] | None:
        exp = kube.get(EXPERIMENTS, namespace, name)
        for type_ in ("Succeeded", "Failed"):
            c = condition(exp, type_)
            if c is not None and c.get("status") == "True":
                return exp
        return None
    return probe


def trials_of(kube: Kube, namespace: str, name: str) -> list[dict[str, Any]]:
    items, _ = kube.list(TRIALS, namespace, label_selector=f"{EXPERIMENT_LABEL}={name}")
    return items


def trial_state(trial: dict[str, Any]) -> str:
    true = {c["type"] for c in (trial.get("status") or {}).get("conditions") or [] if c.get("status") == "True"}
    for t in ("Killed", "Failed", "Succeeded", "EarlyStopped", "Running", "MetricsUnavailable"):
        if t in true:
            return t
    return "Pending"


def metric(trial: dict[str, Any], name: str) -> dict[str, Any] | None:
    for m in ((trial.get("status") or {}).get("observation") or {}).get("metrics") or []:
        if m["name"] == name:
            return m  # type: ignore[no-any-return]
    return None

