"""List-then-watch loops that turn API events into work-queue keys.

Each ``Watcher`` lists its collection, hands every object to ``on_object``, then watches
from the list's resourceVersion; when the server says the version is too old (410) or the
connection drops, it lists again. Nothing is cached: the controller reads what it needs
fresh from the API server when it reconciles, so a missed event costs latency (the periodic
resync catches it), never correctness.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from katib.backends.kubernetes.client import ApiError, Kube, Resource

__all__ = ["Watcher"]

log = logging.getLogger(__name__)


class Watcher(threading.Thread):
    def __init__(self, kube: Kube, res: Resource, namespace: str | None,
                 on_object: Callable[[str, dict[str, Any]], None], stop: threading.Event, *,
                 label_selector: str | None = None, timeout_seconds: int = 60, backoff: float = 1.0) -> None:
        super().__init__(name=f"watch-{res.plural}.{res.group or 'core'}", daemon=True)
        self.kube = kube
        self.res = res
        self.namespace = namespace
        self.on_object = on_object
        self.stop_event = stop
        self.label_selector = label_selector
        self.timeout_seconds = timeout_seconds
        self.backoff = backoff

    def run(self) -> None:
        rv = ""
        failures = 0
        while not self.stop_event.is_set():
            try:
                if not rv:
                    items, rv = self.kube.list(self.res, self.namespace, label_selector=self.label_selector)
                    for obj in items:
                        self.on_object("SYNC", obj)
                for event in self.kube.watch(self.res, self.namespace, rv, label_selector=self.label_selector,
                                             timeout_seconds=self.timeout_seconds):
                    if self.stop_event.is_set():
                        return
                    obj = event.get("object") or {}
                    rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                    if event.get("type") != "BOOKMARK":
                        self.on_object(str(event.get("type")), obj)
                failures = 0
            except ApiError as exc:
                if exc.status == 410:
                    log.debug("watch %s: resourceVersion too old; listing again", self.res.plural)
                    rv = ""
                    continue
                failures += 1
                if exc.status == 404:
                    # The CRD is not installed (yet, or any more): keep trying, it may come.
                    if failures == 1:
                        log.warning("watch %s: the API server does not serve it; install the CRD (retrying)",
                                    self.res.plural)
                    rv = ""
                    self.stop_event.wait(min(self.backoff * failures, 30.0))
                    continue
                rv = ""
                log.warning("watch %s failed (%s); retrying", self.res.plural, exc)
                self.stop_event.wait(min(self.backoff * failures, 10.0))
            except Exception:  # noqa: BLE001 - a watch thread must survive anything
                failures += 1
                rv = ""
                log.exception("watch %s failed; retrying", self.res.plural)
                self.stop_event.wait(min(self.backoff * failures, 10.0))
