"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager.

The binaries come from ``scripts/k8s-control-plane.sh`` (built once, cached).
Every start gets fresh ports, a fresh etcd data dir and fresh certificates, so
parallel sessions on one machine do not see each other.

Typical use (the pytest plugin does exactly this)::

    cp = ControlPlane(bin_dir)
    cp.start()
    api = cp.api_client()
    ns = cp.create_namespace("demo")
    ...
    cp.stop()
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, TypeVar

from kubernetes import client, config

from .api import ApiException, read_json, send
from .pki import CertPair, TestPKI

if TYPE_CHECKING:
    from .kubelet import LocalKubelet

__all__ = ["ControlPlane", "ControlPlaneError", "free_port", "wait_for"]

log = logging.getLogger(__name__)

T = TypeVar("T")

SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
# The controllers the tests rely on, listed instead of "*" so that e.g. the
# node-lifecycle controller does not taint our heartbeat-less test node.
CONTROLLERS = ",".join([
    "job", "cronjob", "garbagecollector", "namespace", "serviceaccount",
    "serviceaccount-token", "deployment", "replicaset", "statefulset",
    "endpoint", "endpointslice", "podgc", "resourcequota",
    "clusterrole-aggregation", "root-ca-cert-publisher", "ttl-after-finished",
])


class ControlPlaneError(RuntimeError):
    """The control plane could not start; the message names the log to read."""


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, probe: Callable[[], T | None], timeout: float,
             interval: float = 0.1) -> T:
    """Call ``probe`` until it returns something truthy; raise TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager as child processes."""

    def __init__(self, bin_dir: Path | str, *, workdir: Path | str | None = None) -> None:
        self.bin_dir = Path(bin_dir)
        self._own_workdir = workdir is None
        # /dev/shm keeps etcd's fsyncs cheap: the data is thrown away anyway.
        base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="katib-k8s-", dir=base))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.etcd_port = free_port()
        self.etcd_peer_port = free_port()
        self.apiserver_port = free_port()
        self.server = f"https://127.0.0.1:{self.apiserver_port}"
        self.kubeconfig_path = self.workdir / "admin.kubeconfig"
        self.pki = TestPKI(self.workdir / "pki")
        self.admin = self.pki.issue("admin", "katib-test-admin",
                                    organizations=("system:masters",), client=True)
        # The test kubelet serves container logs with this; the API server
        # checks it against the same CA (--kubelet-certificate-authority).
        self.kubelet_serving = self.pki.issue("kubelet", "katib-test-node",
                                              server_names=("localhost",),
                                              server_ips=("127.0.0.1",))
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._argv: dict[str, list[str]] = {}
        self._logs: dict[str, Path] = {}
        self.started = False
        # Set by whoever starts a test kubelet against this control plane
        # (the pytest plugin does).
        self.kubelet: Optional["LocalKubelet"] = None

    # ---- lifecycle -------------------------------------------------------------------

    def start(self, timeout: float = 90.0) -> None:
        """Start everything and return once the API server is ready and namespaces work."""
        t0 = time.monotonic()
        try:
            self._start_etcd()
            self._start_apiserver()
            wait_for("kube-apiserver /readyz", self._ready, timeout, interval=0.2)
            self._write_kubeconfig(self.kubeconfig_path, self.admin)
            self._start_controller_manager()
            # The default namespace's ServiceAccount proves the controller
            # manager runs: Pods are refused until it (and its token) exist.
            self.wait_for_default_service_account("default", timeout)
        except BaseException:
            self.stop()
            raise
        self.started = True
        log.info("control plane ready at %s in %.1fs", self.server, time.monotonic() - t0)

    def stop(self) -> None:
        """Stop the processes (controller-manager first, etcd last) and remove the workdir."""
        for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
            proc = self._procs.pop(name, None)
            if proc is not None:
                _terminate(proc, name)
        self.started = False
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def restart_apiserver(self, timeout: float = 60.0) -> None:
        """Stop and start kube-apiserver (same port, same etcd): clients must reconnect."""
        # Its open watches keep a graceful shutdown waiting; etcd holds the state.
        _terminate(self._procs.pop("kube-apiserver"), "kube-apiserver", grace=2.0)
        self._spawn("kube-apiserver", self._argv["kube-apiserver"])
        wait_for("kube-apiserver /readyz after restart", self._ready, timeout, interval=0.2)

    def __enter__(self) -> "ControlPlane":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- clients ---------------------------------------------------------------------

    def api_client(self) -> client.ApiClient:
        """A fresh ApiClient authenticated as cluster admin (system:masters)."""
        api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(self.kubeconfig_path))
        return api

    def log_path(self, component: str) -> Path:
        """Where a component's stdout/stderr goes (for debugging failed tests)."""
        return self._logs[component]

    def create_namespace(self, name: str, *, labels: dict[str, str] | None = None,
                         timeout: float = 30.0) -> str:
        """Create a namespace and wait until Pods can be created in it."""
        with self.api_client() as api:
            body = {"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": name, "labels": labels or {}}}
            send(client.CoreV1Api(api).create_namespace, body)
        self.wait_for_default_service_account(name, timeout)
        return name

    def delete_namespace(self, name: str, *, wait: bool = False, timeout: float = 60.0) -> None:
        with self.api_client() as api:
            core = client.CoreV1Api(api)
            try:
                send(core.delete_namespace, name, propagation_policy="Background")
            except ApiException as e:
                if e.status != 404:
                    raise
                return
            if wait:
                wait_for(f"namespace {name} to be deleted",
                         lambda: _gone(lambda: send(core.read_namespace, name)), timeout, 0.2)

    def wait_for_default_service_account(self, namespace: str, timeout: float = 30.0) -> None:
        """Wait for the ``default`` ServiceAccount and its token secret.

        The ServiceAccount admission plugin of v1.20 refuses Pods until the
        token controller has attached a token secret to the account.
        """
        with self.api_client() as api:
            core = client.CoreV1Api(api)

            def probe() -> bool:
                try:
                    account = read_json(core.read_namespaced_service_account,
                                        "default", namespace)
                except ApiException as e:
                    if e.status == 404:
                        return False
                    raise
                return bool(account.get("secrets"))

            wait_for(f"ServiceAccount {namespace}/default with a token", probe, timeout, 0.1)

    # ---- processes -------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> None:
        log_file = self.workdir / f"{name}.log"
        self._logs[name] = log_file
        self._argv[name] = argv
        with open(log_file, "ab") as out:
            # A new session: a Ctrl-C in the terminal reaches pytest, not
            # these, so teardown stops them in order.
            self._procs[name] = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, cwd=self.workdir)
        log.debug("started %s (pid %d): %s", name, self._procs[name].pid, " ".join(argv))

    def _check_alive(self) -> None:
        for name, proc in self._procs.items():
            if proc.poll() is not None:
                tail = self._logs[name].read_text(errors="replace")[-3000:]
                raise ControlPlaneError(
                    f"{name} exited with {proc.returncode}; log {self._logs[name]}:\n{tail}")

    def _start_etcd(self) -> None:
        etcd = (self.bin_dir / "etcd-path").read_text().strip()
        client_url = f"http://127.0.0.1:{self.etcd_port}"
        peer_url = f"http://127.0.0.1:{self.etcd_peer_port}"
        self._spawn("etcd", [
            etcd, "--name=katib-test", f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={client_url}", f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=katib-test={peer_url}", "--initial-cluster-state=new",
            "--log-level=warn", "--logger=zap",
        ])

    def _start_apiserver(self) -> None:
        p = self.pki
        sa_key = p.service_account_key()
        kubelet_client = p.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client",
                                 organizations=("system:masters",), client=True)
        serving = p.issue("apiserver", "kube-apiserver",
                          server_names=("localhost", "kubernetes", "kubernetes.default",
                                        "kubernetes.default.svc",
                                        "kubernetes.default.svc.cluster.local"),
                          server_ips=("127.0.0.1", "10.0.0.1"))
        self._sa_key = sa_key
        self._spawn("kube-apiserver", [
            str(self.bin_dir / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={self.apiserver_port}",
            "--insecure-port=0",  # v1.20 otherwise also listens on localhost:8080
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            f"--tls-cert-file={serving.cert}", f"--tls-private-key-file={serving.key}",
            f"--client-ca-file={p.ca_cert}",
            "--authorization-mode=Node,RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={sa_key}",
            f"--service-account-signing-key-file={sa_key}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            # Pod logs: the API server dials the Node's InternalIP at its
            # daemonEndpoints.kubeletEndpoint.port over verified HTTPS.
            f"--kubelet-client-certificate={kubelet_client.cert}",
            f"--kubelet-client-key={kubelet_client.key}",
            f"--kubelet-certificate-authority={p.ca_cert}",
            "--kubelet-preferred-address-types=InternalIP",
            "--allow-privileged=true",
            "--profiling=false",
            "--logtostderr=true", "--v=1",
        ])

    def _ready(self) -> bool:
        self._check_alive()
        ctx = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        ctx.load_cert_chain(str(self.admin.cert), str(self.admin.key))
        try:
            with urllib.request.urlopen(f"{self.server}/readyz", context=ctx, timeout=5) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def _write_kubeconfig(self, path: Path, user: CertPair, user_name: str = "admin") -> None:
        # JSON is YAML: no YAML writer needed, and kubectl reads it too.
        kubeconfig = {
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "katib-test", "cluster": {
                "server": self.server, "certificate-authority-data": _b64(self.pki.ca_cert)}}],
            "users": [{"name": user_name, "user": {
                "client-certificate-data": _b64(user.cert),
                "client-key-data": _b64(user.key)}}],
            "contexts": [{"name": "katib-test", "context": {
                "cluster": "katib-test", "user": user_name, "namespace": "default"}}],
            "current-context": "katib-test",
        }
        path.write_text(json.dumps(kubeconfig, indent=2))
        path.chmod(0o600)

    def _start_controller_manager(self) -> None:
        # Its own identity so audit/RBAC errors name it; system:masters because
        # --use-service-account-credentials would need the token controller
        # to bootstrap itself first, which only slows the start.
        cm = self.pki.issue("controller-manager", "system:kube-controller-manager",
                            organizations=("system:masters",), client=True)
        kubeconfig = self.workdir / "controller-manager.kubeconfig"
        self._write_kubeconfig(kubeconfig, cm, "controller-manager")
        self._spawn("kube-controller-manager", [
            str(self.bin_dir / "kube-controller-manager"),
            f"--kubeconfig={kubeconfig}",
            "--leader-elect=false",
            f"--controllers={CONTROLLERS}",
            f"--service-account-private-key-file={self._sa_key}",
            f"--root-ca-file={self.pki.ca_cert}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            # No serving ports: fixed defaults (10252/10257) would collide
            # between parallel sessions, and nothing here scrapes them.
            "--port=0", "--secure-port=0",
            "--logtostderr=true", "--v=1",
        ])


def _gone(read: Callable[[], object]) -> bool:
    try:
        read()
    except ApiException as e:
        if e.status == 404:
            return True
        raise
    return False


def _terminate(proc: subprocess.Popen[bytes], name: str, grace: float = 10.0) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0fs; killing it", name, grace)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
