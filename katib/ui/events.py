"""Live updates: Server-sent events that carry a page's data whenever it changed.

A page opens ``/api/events?watch=...`` with the browser's ``EventSource`` (which reconnects
on its own). Every ``interval`` the stream builds the watched payload in a worker thread,
exactly as the GET endpoint does, and sends it as an ``update`` event when its token
differs from the last one sent (``token`` in the query: the one the page has already);
while it cannot be read a ``problem`` event says why. A comment line every
``keepalive`` seconds lets proxies and the browser see that the stream is alive.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, AsyncIterator, Callable

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import StreamingResponse

from katib.errors import KatibError
from katib.ui.api import Reader

__all__ = ["stream"]

log = logging.getLogger(__name__)


def _source(reader: Reader, request: Request) -> Callable[[], dict[str, Any]]:
    q = request.query_params
    watch = q.get("watch", "")
    namespace = q.get("namespace") or reader.dashboard.namespace
    if watch == "experiments":
        return lambda: reader.experiments(namespace, q.get("status", ""), q.get("q", ""))
    name = q.get("name", "")
    if not name:
        raise ValueError("name: watching an experiment or a trial needs the experiment's name")
    if watch == "experiment":
        return lambda: reader.experiment(namespace, name)
    if watch == "trial":
        trial = q.get("trial", "")
        if not trial:
            raise ValueError("trial: watching a trial needs its name")
        return lambda: reader.trial(namespace, name, trial)
    raise ValueError(f"watch: expected experiments, experiment or trial, got {watch!r}")


def _event(kind: str, data: Any) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, default=str)}\n\n"


def stream(reader: Reader, request: Request, *, interval: float = 1.0, keepalive: float = 15.0) -> StreamingResponse:
    build = _source(reader, request)  # ValueError here: a 400 before the stream starts
    last = request.query_params.get("token", "")

    async def events() -> AsyncIterator[str]:
        nonlocal last
        sent_at = time.monotonic()
        problem = ""
        yield "retry: 2000\n\n"  # reconnect after 2 s when the connection drops
        while True:
            try:
                payload = await run_in_threadpool(build)
            except KatibError as exc:  # gone, unreachable: say so, and keep watching
                if str(exc) != problem:
                    problem = str(exc)
                    yield _event("problem", {"message": problem, "kind": type(exc).__name__})
                    sent_at = time.monotonic()
            except Exception:  # noqa: BLE001 - a bug must not end the page's updates silently
                log.exception("live update of %s failed", request.url.query)
                yield _event("problem", {"message": "the server could not build this update (see its log)"})
                sent_at = time.monotonic()
            else:
                token = payload.get("token", "")
                if token != last or problem:  # after a problem: the page clears its message
                    problem = ""
                    last = token
                    yield _event("update", payload)
                    sent_at = time.monotonic()
            if time.monotonic() - sent_at >= keepalive:
                yield ": keep-alive\n\n"
                sent_at = time.monotonic()
            await anyio.sleep(interval)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
