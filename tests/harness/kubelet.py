"""A test kubelet: one Node whose Pods run as local processes.

It plays scheduler and kubelet at once: Pods that no one has scheduled (and
Pods bound to its Node) are bound to the Node through the Binding subresource,
their containers run as local processes (``command`` + ``args``; images are
ignored), and Pod status is reported as a kubelet would, so controllers (Job,
garbage collector, Katib's) see real phases, exit codes and logs. Containers
that mount volumes run in mount namespaces of their own (see ``pod_worker``);
``volumes_unavailable`` says why they cannot, when they cannot.

Threads: one watches Pods (list, then watch from the list's resourceVersion;
relist on 410 Gone; back off on errors), one per Pod (see ``pod_worker``),
one per running container, and the HTTPS log server's.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Optional

from kubernetes import client, config
from kubernetes.watch.watch import iter_resp_lines

from .kubelet_logs import LogServer
from .pki import CertPair
from .api import MERGE_PATCH, ApiException, raw, read_json, send
from .kubelet_runtime import mount_namespace_problem
from .kubelet_volumes import decode_data
from .pod_worker import PodWorker

__all__ = ["LocalKubelet"]

log = logging.getLogger(__name__)

Pod = dict[str, Any]
_WATCH_SECONDS = 300  # server-side watch timeout (per instance: watch_seconds)


class _Expired(Exception):
    """The watch's resourceVersion is too old (410 Gone): list again."""


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class LocalKubelet:
    """Registers ``node_name`` and runs the Pods that land on it.

    ``schedule=False``: leave unscheduled Pods alone (another kubelet binds
    them) and run only the Pods bound to ``node_name``. ``volumes=False``:
    behave as on a machine where mount namespaces cannot be created.
    """

    def __init__(self, kubeconfig: Path | str, serving: CertPair, client_ca: Path, *,
                 node_name: str = "katib-test-node", workdir: Path | str | None = None,
                 extra_env: Optional[dict[str, str]] = None, schedule: bool = True,
                 volumes: bool = True) -> None:
        self.node_name = node_name
        self.schedule = schedule
        self._volumes = volumes
        # Why containers cannot mount volumes here (None: they can); set by start().
        self.volumes_unavailable: Optional[str] = None
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="katib-kubelet-"))
        self.extra_env = dict(extra_env or {})
        cfg = client.Configuration()
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig), client_configuration=cfg)
        # Every Pod worker talks to the API server; the default pool (a few
        # connections) would log "pool is full" and reconnect constantly.
        cfg.connection_pool_maxsize = 64
        self.api = client.ApiClient(cfg)
        self.core = client.CoreV1Api(self.api)
        self.log_server = LogServer(serving.cert, serving.key, client_ca)
        self._stop = threading.Event()
        self._workers: dict[str, PodWorker] = {}  # by Pod uid, until the Pod is deleted
        self._lock = threading.Lock()
        self._resp: Any = None
        # How long one watch request lasts before it is renewed; stop()
        # interrupts it sooner. Tests shorten it to exercise reconnects.
        self.watch_seconds = _WATCH_SECONDS
        self._thread = threading.Thread(target=self._watch_loop, name="test-kubelet-watch",
                                        daemon=True)

    # ---- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.volumes_unavailable = (mount_namespace_problem(self.workdir) if self._volumes
                                    else "volumes are turned off for this test kubelet")
        if self.volumes_unavailable:
            log.warning("test kubelet %s cannot mount volumes: %s", self.node_name,
                        self.volumes_unavailable)
        self.log_server.start()
        self._register_node()
        self._thread.start()
        log.info("test kubelet %s running pods from %s", self.node_name, self.workdir)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop watching, kill every container still running, stop serving logs."""
        self._stop.set()
        resp = self._resp
        if resp is not None:
            # Unblocks the watch thread's read (urllib3 >= 2.3); otherwise the
            # read ends when the server's watch timeout or shutdown ends it.
            getattr(resp, "shutdown", resp.close)()
        with self._lock:
            workers = list(self._workers.values())
        for worker in workers:
            worker.kill(report=False)
        for worker in workers:
            worker.join(timeout)
        self._thread.join(timeout)
        self.log_server.stop()
        self.api.close()  # type: ignore[no-untyped-call]
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # ---- API helpers used by the workers ---------------------------------------------

    def patch_pod_status(self, namespace: str, name: str, status: dict[str, Any]) -> bool:
        """Strategic-merge-patch a Pod's status; False if the Pod is gone."""
        try:
            send(self.core.patch_namespaced_pod_status, name, namespace,
                 {"status": status}, content_type=MERGE_PATCH)
        except ApiException as e:
            if e.status == 404:
                return False
            raise
        return True

    def lookup(self, kind: str, namespace: str, name: str) -> Optional[dict[str, str]]:
        """Data of a ConfigMap or Secret (decoded), None if it does not exist."""
        data = self.volume_data(kind, namespace, name)
        return None if data is None else {k: v.decode() for k, v in data.items()}

    def volume_data(self, kind: str, namespace: str, name: str) -> Optional[dict[str, bytes]]:
        """Data of a ConfigMap or Secret as bytes, None if it does not exist."""
        read = (self.core.read_namespaced_config_map if kind == "configmap"
                else self.core.read_namespaced_secret)
        try:
            obj = read_json(read, name, namespace)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return decode_data(kind, obj)

    def base_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.extra_env)
        return env

    def forget(self, uid: str) -> None:
        with self._lock:
            self._workers.pop(uid, None)

    # ---- node ------------------------------------------------------------------------

    def _register_node(self) -> None:
        memory_kib = _meminfo_kib()
        resources = {"cpu": str(os.cpu_count() or 1), "memory": f"{memory_kib}Ki",
                     "pods": "110", "ephemeral-storage": "100Gi"}
        status = {
            "capacity": resources, "allocatable": resources,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "test kubelet is posting ready status",
                            "lastHeartbeatTime": now(), "lastTransitionTime": now()}],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                          {"type": "Hostname", "address": self.node_name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.log_server.port}},
            "nodeInfo": {"machineID": "", "systemUUID": "", "bootID": "",
                         "kernelVersion": os.uname().release, "osImage": "test kubelet",
                         "containerRuntimeVersion": "local-process://0",
                         "kubeletVersion": "v1.20.2", "kubeProxyVersion": "v1.20.2",
                         "operatingSystem": "linux", "architecture": "amd64"},
        }
        body = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": self.node_name,
                             "labels": {"kubernetes.io/hostname": self.node_name,
                                        "kubernetes.io/os": "linux",
                                        "kubernetes.io/arch": "amd64"}}}
        try:
            send(self.core.create_node, body)
        except ApiException as e:
            if e.status != 409:  # re-registering after a restart is fine
                raise
        # The TaintNodesByCondition admission plugin adds a not-ready taint
        # that only the node-lifecycle controller (not run here) would remove.
        send(self.core.patch_node, self.node_name, {"spec": {"taints": None}},
             content_type=MERGE_PATCH)
        send(self.core.patch_node_status, self.node_name, {"status": status},
             content_type=MERGE_PATCH)

    # ---- watching Pods ---------------------------------------------------------------

    def _watch_loop(self) -> None:
        rv: Optional[str] = None
        backoff = 0.5
        while not self._stop.is_set():
            try:
                if rv is None:
                    rv = self._list()
                rv = self._watch(rv)
                backoff = 0.5
            except _Expired:
                log.debug("pod watch expired at %s; listing again", rv)
                rv = None
            except ApiException as e:
                if self._stop.is_set():
                    break
                if e.status != 410:  # 410 Gone (old resourceVersion) just means: list again
                    log.warning("pod watch refused (%s %s); retrying in %.1fs",
                                e.status, e.reason, backoff)
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 5.0)
                rv = None
            except Exception as e:  # noqa: BLE001 - keep the kubelet alive, but say why
                if self._stop.is_set():
                    break
                log.warning("pod watch failed (%s); retrying in %.1fs", e, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                rv = None  # events may have been missed: list again

    def _list(self) -> str:
        pods = read_json(self.core.list_pod_for_all_namespaces)
        seen = set()
        for pod in pods.get("items") or []:
            seen.add(pod["metadata"]["uid"])
            self._observe("ADDED", pod)
        with self._lock:
            vanished = [w for uid, w in self._workers.items() if uid not in seen]
        for worker in vanished:  # deleted while we were not watching
            worker.on_deleted()
        return str(pods["metadata"]["resourceVersion"])

    def _watch(self, rv: str) -> str:
        resp = raw(
            self.core.list_pod_for_all_namespaces, watch=True, resource_version=rv, allow_watch_bookmarks=True,
            timeout_seconds=self.watch_seconds,
            _request_timeout=(10, self.watch_seconds + 30))
        self._resp = resp
        try:
            if self._stop.is_set():
                return rv
            for line in iter_resp_lines(resp):  # type: ignore[no-untyped-call]
                if not line:
                    continue
                event = json.loads(line)
                kind, obj = event["type"], event["object"]
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise _Expired()
                    raise RuntimeError(f"watch error: {obj.get('message')}")
                rv = obj["metadata"]["resourceVersion"]
                if kind != "BOOKMARK":
                    self._observe(kind, obj)
                if self._stop.is_set():
                    break
        finally:
            self._resp = None
            # Closed, not pooled: a watch cut short has unread events in flight.
            resp.close()
            resp.release_conn()
        return rv

    def _observe(self, kind: str, pod: Pod) -> None:
        uid = pod["metadata"]["uid"]
        with self._lock:
            worker = self._workers.get(uid)
        if kind == "DELETED":
            if worker is not None:
                worker.on_deleted()
                self.forget(uid)
            return
        if worker is not None:
            worker.update(pod)
            return
        node = (pod.get("spec") or {}).get("nodeName")
        if (node and node != self.node_name) or (not node and not self.schedule):
            return
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return
        if pod["metadata"].get("deletionTimestamp"):
            if node == self.node_name:
                # Its worker is gone (kubelet restart): nothing runs, finish the deletion.
                self.delete_pod_now(pod)
            return
        if self._stop.is_set():
            return
        worker = PodWorker(self, pod, self.workdir / "pods" / uid)
        with self._lock:
            self._workers[uid] = worker
        worker.start()

    def delete_pod_now(self, pod: Pod) -> None:
        """What a kubelet does once a deleted Pod's containers are gone: delete with grace 0."""
        meta = pod["metadata"]
        body = {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}}
        try:
            send(self.core.delete_namespaced_pod, meta["name"], meta["namespace"], body=body,
                 grace_period_seconds=0)
        except ApiException as e:
            if e.status not in (404, 409):  # gone already, or a new Pod of that name
                raise


def _meminfo_kib() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 8 * 1024 * 1024
