"""Plain-JSON calls through the ``kubernetes`` client's generated methods.

The harness sends and reads dicts, not models: a newer client's models may
reject what a v1.20 server returns, and generated stubs type bodies as models.
Each helper takes a bound API method and its arguments, e.g.
``read_json(core.read_namespaced_pod, name, namespace)``.

Two traps these helpers avoid:
- PATCH bodies go out as JSON Patch unless ``_content_type`` says otherwise
  (recent clients no longer look at the body); pass ``content_type=MERGE_PATCH``.
- An unread ``_preload_content=False`` response must be drained before its
  connection goes back to the pool, or the next request on that connection
  reads the old body as its status line.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Optional, cast

from kubernetes.client.exceptions import ApiException
from urllib3 import HTTPResponse

__all__ = ["ApiException", "JSON_MERGE_PATCH", "MERGE_PATCH", "discard", "raw",
           "read_json", "send"]

MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_MERGE_PATCH = "application/merge-patch+json"


def raw(call: Callable[..., object], *args: Any, content_type: Optional[str] = None,
        **kwargs: Any) -> HTTPResponse:
    """The unread HTTP response of ``call``; the caller must read or ``discard`` it."""
    if content_type is not None:
        kwargs["_content_type"] = content_type
    return cast(HTTPResponse, call(*args, _preload_content=False, **kwargs))


def discard(resp: HTTPResponse) -> None:
    """Drain and release a response whose body is not needed."""
    resp.drain_conn()
    resp.release_conn()


def read_json(call: Callable[..., object], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """The decoded JSON body of ``call``."""
    resp = raw(call, *args, **kwargs)
    try:
        return cast(dict[str, Any], json.loads(resp.data))
    finally:
        resp.release_conn()


def send(call: Callable[..., object], *args: Any, **kwargs: Any) -> None:
    """Make a call whose answer is not needed (errors still raise ApiException)."""
    discard(raw(call, *args, **kwargs))
