"""The one place that talks HTTP to the API server: plain JSON in, plain JSON out.

The ``kubernetes`` package is used for what it does well (reading a kubeconfig or the
in-cluster service account, TLS, token refresh, a thread-safe connection pool) and nothing
else: its model classes lag the server they talk to and every object the controller handles
is either a custom resource or a workload of a kind it cannot know in advance, so requests
go out as dicts through ``ApiClient.param_serialize`` and the client's urllib3 pool.

``Resource`` names a REST collection; ``Discovery`` finds the collection of an
``apiVersion``/``kind`` (Trial templates may hold any kind). ``ApiError`` carries the HTTP
status so callers can tell "not there" (404), "someone else wrote first" (409) and
"gone, relist" (410) apart.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator

import urllib3
from kubernetes import client as k8s_client, config as k8s_config

__all__ = ["ApiError", "Resource", "Kube", "Discovery", "load_client", "MERGE_PATCH"]

log = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
_DEFAULT_TIMEOUT = 30.0


class ApiError(Exception):
    """A non-2xx answer. ``status`` is the HTTP code (0: no answer at all)."""

    def __init__(self, status: int, reason: str, message: str = "") -> None:
        self.status = status
        self.reason = reason
        self.message = message
        super().__init__(f"{status} {reason}: {message}" if message else f"{status} {reason}")

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409


@dataclass(frozen=True)
class Resource:
    """A REST collection: ``/apis/<group>/<version>/namespaces/<ns>/<plural>``."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
            if sub:
                base += f"/{sub}"
        return base


def load_client(kubeconfig: str | None = None, context: str | None = None,
                pool_size: int = 32) -> k8s_client.ApiClient:
    """An ApiClient from ``kubeconfig`` (or $KUBECONFIG / ~/.kube/config), or from the pod's
    service account when running in a cluster and no kubeconfig is given."""
    cfg = k8s_client.Configuration()
    if kubeconfig:
        k8s_config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=cfg)
    else:
        try:
            k8s_config.load_incluster_config(client_configuration=cfg)
        except k8s_config.ConfigException:
            k8s_config.load_kube_config(context=context, client_configuration=cfg)
    # Watches hold a connection each; the rest share what is left.
    cfg.connection_pool_maxsize = pool_size
    return k8s_client.ApiClient(cfg)


class Kube:
    """JSON requests over an ApiClient. Thread-safe (the pool is)."""

    def __init__(self, api_client: k8s_client.ApiClient, timeout: float = _DEFAULT_TIMEOUT) -> None:
        self.api_client = api_client
        self.timeout = timeout
        self._no_status_subresource: set[Resource] = set()

    def close(self) -> None:
        self.api_client.close()  # type: ignore[no-untyped-call]

    # -- raw ---------------------------------------------------------------------------
    def _open(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None,
              content_type: str | None = None, timeout: float | tuple[float, float] | None = None,
              accept: str = "application/json") -> Any:
        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        params = [(k, v) for k, v in (query or {}).items() if v is not None]
        _, url, headers, _, _ = self.api_client.param_serialize(
            method, path, query_params=params, header_params=headers, auth_settings=["BearerToken"])
        data = json.dumps(body).encode() if body is not None else None

        t = timeout if timeout is not None else self.timeout
        to = urllib3.Timeout(connect=t[0], read=t[1]) if isinstance(t, tuple) else urllib3.Timeout(total=t)
        try:
            resp = self.api_client.rest_client.pool_manager.request(
                method, url, body=data, headers=headers, preload_content=False, timeout=to, retries=False)
        except urllib3.exceptions.HTTPError as exc:
            raise ApiError(0, "ConnectionError", str(exc)) from None
        if not 200 <= resp.status < 300:
            raw = resp.data
            resp.release_conn()
            message = raw.decode("utf-8", "replace")
            reason = resp.reason or ""
            try:
                status = json.loads(raw)
                message = status.get("message", message)
                reason = status.get("reason", reason)
            except ValueError:
                pass
            raise ApiError(resp.status, reason, message)
        return resp

    def request(self, method: str, path: str, *, query: dict[str, Any] | None = None, body: Any = None,
                content_type: str | None = None, timeout: float | None = None) -> Any:
        """The decoded JSON answer (None for an empty body); ApiError on non-2xx."""
        resp = self._open(method, path, query, body, content_type, timeout)
        try:
            raw = resp.data
        finally:
            resp.release_conn()
        return json.loads(raw) if raw else None

    def read_bytes(self, path: str, query: dict[str, Any] | None = None, timeout: float | None = None) -> bytes:
        resp = self._open("GET", path, query, timeout=timeout, accept="*/*")
        try:
            return bytes(resp.data)
        finally:
            resp.release_conn()

    # -- objects -----------------------------------------------------------------------
    def get(self, res: Resource, namespace: str | None, name: str) -> dict[str, Any]:
        return self.request("GET", res.path(namespace, name))  # type: ignore[no-any-return]

    def get_or_none(self, res: Resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        try:
            return self.get(res, namespace, name)
        except ApiError as exc:
            if exc.not_found:
                return None
            raise

    def list(self, res: Resource, namespace: str | None = None, *, label_selector: str | None = None,
             field_selector: str | None = None) -> tuple[list[dict[str, Any]], str]:
        """Every item (following ``continue`` pages) and the list's resourceVersion."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = self.request("GET", res.path(namespace), query={
                "labelSelector": label_selector, "fieldSelector": field_selector, "limit": 500, "continue": token})
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                return items, str(meta.get("resourceVersion") or "")

    def create(self, res: Resource, namespace: str | None, body: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", res.path(namespace), body=body)  # type: ignore[no-any-return]

    def replace(self, res: Resource, obj: dict[str, Any], sub: str | None = None) -> dict[str, Any]:
        """PUT the object (or its ``status`` subresource); the object's resourceVersion makes
        it conditional, so a concurrent writer gets a 409 instead of a lost update."""
        meta = obj["metadata"]
        return self.request("PUT", res.path(meta.get("namespace"), meta["name"], sub),  # type: ignore[no-any-return]
                            body=obj)

    def replace_status(self, res: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        """PUT ``obj`` (with its new status) to the status subresource; where the CRD has none
        (status is then part of the object) to the object itself. Conditional on the
        object's resourceVersion either way: a 409 means "read it again"."""
        if res not in self._no_status_subresource:
            try:
                return self.replace(res, obj, "status")
            except ApiError as exc:
                if not exc.not_found or self.get_or_none(res, obj["metadata"].get("namespace"),
                                                         obj["metadata"]["name"]) is None:
                    raise
                self._no_status_subresource.add(res)
        return self.replace(res, obj)

    def merge_patch(self, res: Resource, namespace: str | None, name: str, patch: dict[str, Any],
                    sub: str | None = None) -> dict[str, Any]:
        return self.request("PATCH", res.path(namespace, name, sub), body=patch,  # type: ignore[no-any-return]
                            content_type=MERGE_PATCH)

    def delete(self, res: Resource, namespace: str | None, name: str, *, propagation: str = "Background",
               grace_seconds: int | None = None) -> bool:
        """Delete; False when it was already gone. Background propagation, because Jobs
        default to orphaning their pods, which would leave a stopped trial training."""
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation}
        if grace_seconds is not None:
            body["gracePeriodSeconds"] = grace_seconds
        try:
            self.request("DELETE", res.path(namespace, name), body=body)
            return True
        except ApiError as exc:
            if exc.not_found:
                return False
            raise

    def watch(self, res: Resource, namespace: str | None, resource_version: str, *,
              label_selector: str | None = None, timeout_seconds: int = 300) -> Iterator[dict[str, Any]]:
        """Events (``{"type", "object"}``) after ``resource_version`` until the server ends
        the watch. An ERROR event is raised as ApiError (410: the version is too old)."""
        resp = self._open("GET", res.path(namespace), {
            "watch": "true", "resourceVersion": resource_version, "labelSelector": label_selector,
            "timeoutSeconds": timeout_seconds, "allowWatchBookmarks": "true"},
            timeout=(self.timeout, timeout_seconds + 30))
        try:
            buffer = b""
            for chunk in self._chunks(resp):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        status = event.get("object") or {}
                        raise ApiError(int(status.get("code") or 500), str(status.get("reason") or ""),
                                       str(status.get("message") or ""))
                    yield event
        finally:
            resp.release_conn()

    @staticmethod
    def _chunks(resp: Any) -> Iterator[bytes]:
        # A watch that goes quiet past the read timeout, or a dropped connection, just ends
        # the watch: the caller watches again from the last resourceVersion it saw.
        try:
            yield from resp.stream(4096, decode_content=True)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            log.debug("watch stream ended: %s", exc)


class Discovery:
    """``apiVersion`` + ``kind`` -> Resource, from the API server's discovery documents.

    Found kinds are cached for good; a group/version the server does not serve is asked
    again after ``retry_after`` seconds, because a CRD may be installed while we run.
    """

    def __init__(self, kube: Kube, retry_after: float = 10.0) -> None:
        self.kube = kube
        self.retry_after = retry_after
        self._found: dict[tuple[str, str], Resource] = {}
        self._missing: dict[str, float] = {}
        self._lock = threading.Lock()

    def resolve(self, api_version: str, kind: str) -> Resource | None:
        with self._lock:
            found = self._found.get((api_version, kind))
            if found is not None:
                return found
            if time.monotonic() < self._missing.get(api_version, 0.0):
                return None
        group, _, version = api_version.rpartition("/")
        path = f"/apis/{api_version}" if group else f"/api/{version}"
        try:
            doc = self.kube.request("GET", path)
        except ApiError as exc:
            if exc.status in (404, 503):
                with self._lock:
                    self._missing[api_version] = time.monotonic() + self.retry_after
                return None
            raise
        with self._lock:
            for r in doc.get("resources") or []:
                if "/" in r.get("name", ""):
                    continue  # subresources
                res = Resource(group, version, r["name"], r["kind"], bool(r.get("namespaced")))
                self._found[(api_version, r["kind"])] = res
            found = self._found.get((api_version, kind))
            if found is None:
                self._missing[api_version] = time.monotonic() + self.retry_after
            return found

    def require(self, api_version: str, kind: str) -> Resource:
        res = self.resolve(api_version, kind)
        if res is None:
            raise ApiError(404, "NotFound", f"the API server does not serve {kind} in {api_version}; "
                                            "install its CRD (or the operator that provides it)")
        return res
