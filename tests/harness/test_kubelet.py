"""The test kubelet's Pod semantics: restarts, init containers, env sources, odd specs.

The first tests need no cluster; the ``k8s`` ones run against the real one.
"""

from __future__ import annotations

import io
import os
import sys
import time
from typing import Any

import pytest
from kubernetes import client

from .api import read_json, send
from .controlplane import ControlPlane, wait_for
from .kubelet import LocalKubelet
from .kubelet_logs import _tail_offset
from .kubelet_runtime import expand

PY = sys.executable


@pytest.mark.parametrize(("text", "expected"), [
    ("$(A)-$(B)", "1-$(B)"), ("$$(A)", "$(A)"), ("$A $", "$A $"), ("x$(A", "x$(A"),
])
def test_expand_follows_kubernetes_rules(text: str, expected: str) -> None:
    assert expand(text, {"A": "1"}) == expected


@pytest.mark.parametrize(("data", "lines", "expected"), [
    (b"a\nb\nc\n", 2, b"b\nc\n"), (b"a\nb\nc", 2, b"b\nc"), (b"a\n", 5, b"a\n"),
    (b"a\nb\n", 0, b""), (b"", 3, b""), (b"x" * 20000 + b"\nlast\n", 1, b"last\n"),
])
def test_tail_offset(data: bytes, lines: int, expected: bytes) -> None:
    f = io.BytesIO(data)
    assert data[_tail_offset(f, lines):] == expected


def _pod(name: str, containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": "Never", "containers": containers, **spec}}


def _status(core: client.CoreV1Api, ns: str, name: str) -> dict[str, Any]:
    pod = read_json(core.read_namespaced_pod, name, ns)
    return dict(pod.get("status") or {})


def _done(core: client.CoreV1Api, ns: str, name: str) -> str | None:
    phase = _status(core, ns, name).get("phase")
    return phase if phase in ("Succeeded", "Failed") else None


@pytest.mark.k8s
def test_init_containers_then_env_sources(k8s_api_client: client.ApiClient,
                                          k8s_namespace: str, tmp_path: Any) -> None:
    core = client.CoreV1Api(k8s_api_client)
    send(core.create_namespaced_config_map, k8s_namespace, {
        "metadata": {"name": "cfg"}, "data": {"LR": "0.1", "OPT": "sgd"}})
    send(core.create_namespaced_secret, k8s_namespace, {
        "metadata": {"name": "db"}, "stringData": {"password": "s3cret"}})
    order = tmp_path / "order"
    init = [{"name": f"init{i}", "image": "x",
             "command": [PY, "-c", f"open({str(order)!r}, 'a').write('init{i} ')"]}
            for i in range(2)]
    main = {"name": "main", "image": "x", "workingDir": str(tmp_path),
            "command": ["sh", "-c"],
            "args": ["echo $(GREETING) $P_LR $P_OPT $PASSWORD $(pwd) >> order"],
            "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "P_"}],
            "env": [{"name": "WHO", "value": "world"},
                    {"name": "GREETING", "value": "hello-$(WHO)"},
                    {"name": "PASSWORD", "valueFrom": {
                        "secretKeyRef": {"name": "db", "key": "password"}}}]}
    send(core.create_namespaced_pod, k8s_namespace, _pod("ordered", [main], initContainers=init))
    assert wait_for("pod done", lambda: _done(core, k8s_namespace, "ordered"), 30) \
        == "Succeeded"
    assert order.read_text() == f"init0 init1 hello-world 0.1 sgd s3cret {tmp_path}\n"
    status = _status(core, k8s_namespace, "ordered")
    assert [s["state"]["terminated"]["exitCode"]
            for s in status["initContainerStatuses"]] == [0, 0]


@pytest.mark.k8s
def test_on_failure_restarts_in_place_and_keeps_previous_log(
        k8s_api_client: client.ApiClient, k8s_namespace: str, tmp_path: Any) -> None:
    core = client.CoreV1Api(k8s_api_client)
    counter = tmp_path / "runs"
    # Fails twice, then succeeds: the pod must restart in place and end Succeeded.
    script = (f"import pathlib, sys\np = pathlib.Path({str(counter)!r})\n"
              "n = int(p.read_text()) if p.exists() else 0\np.write_text(str(n + 1))\n"
              "print('run', n)\nsys.exit(0 if n >= 2 else 1)\n")
    send(core.create_namespaced_pod, k8s_namespace, _pod(
        "flaky", [{"name": "main", "image": "x", "command": [PY, "-c", script]}],
        restartPolicy="OnFailure"))
    assert wait_for("pod done", lambda: _done(core, k8s_namespace, "flaky"), 60) == "Succeeded"
    (cs,) = _status(core, k8s_namespace, "flaky")["containerStatuses"]
    assert cs["restartCount"] == 2
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    assert core.read_namespaced_pod_log("flaky", k8s_namespace) == "run 2\n"
    assert core.read_namespaced_pod_log("flaky", k8s_namespace, previous=True) == "run 1\n"


@pytest.mark.k8s
def test_container_without_command_fails_clearly(k8s_api_client: client.ApiClient,
                                                 k8s_namespace: str) -> None:
    core = client.CoreV1Api(k8s_api_client)
    send(core.create_namespaced_pod, k8s_namespace, _pod(
        "imageonly", [{"name": "main", "image": "busybox"}]))
    assert wait_for("pod done", lambda: _done(core, k8s_namespace, "imageonly"), 30) == "Failed"
    (cs,) = _status(core, k8s_namespace, "imageonly")["containerStatuses"]
    assert cs["state"]["terminated"]["reason"] == "ContainerCannotRun"
    assert "explicit `command`" in core.read_namespaced_pod_log("imageonly", k8s_namespace)


@pytest.mark.k8s
def test_pods_of_other_nodes_are_left_alone(k8s_control_plane: ControlPlane,
                                            k8s_api_client: client.ApiClient,
                                            k8s_namespace: str) -> None:
    core = client.CoreV1Api(k8s_api_client)
    send(core.create_namespaced_pod, k8s_namespace, _pod(
        "elsewhere", [{"name": "main", "image": "x", "command": ["true"]}],
        nodeName="some-other-node"))
    # A pod created after it is run: by then the kubelet has seen (and skipped) the first.
    send(core.create_namespaced_pod, k8s_namespace, _pod(
        "here", [{"name": "main", "image": "x", "command": ["true"]}]))
    wait_for("pod done", lambda: _done(core, k8s_namespace, "here"), 30)
    assert _status(core, k8s_namespace, "elsewhere").get("phase") == "Pending"
    # No kubelet owns that node, so no one would finish a graceful delete.
    send(core.delete_namespaced_pod, "elsewhere", k8s_namespace, grace_period_seconds=0)


@pytest.mark.k8s
def test_sigterm_ignored_means_sigkill_after_grace(k8s_api_client: client.ApiClient,
                                                   k8s_namespace: str, tmp_path: Any) -> None:
    core = client.CoreV1Api(k8s_api_client)
    marker = tmp_path / "pid"
    script = (f"import os, signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
              f"open({str(marker)!r}, 'w').write(str(os.getpid()))\ntime.sleep(600)\n")
    send(core.create_namespaced_pod, k8s_namespace, _pod(
        "stubborn", [{"name": "main", "image": "x", "command": [PY, "-c", script]}],
        terminationGracePeriodSeconds=2))
    wait_for("process started", lambda: marker.exists() and marker.read_text(), 30)
    pid = int(marker.read_text())
    t0 = time.monotonic()
    core.delete_namespaced_pod("stubborn", k8s_namespace)
    time.sleep(1)
    assert os.path.exists(f"/proc/{pid}"), "SIGTERM is ignored: still alive within the grace"
    wait_for("pod gone", lambda: not _exists(core, k8s_namespace, "stubborn"), 30)
    assert 2 <= time.monotonic() - t0 < 10
    assert not os.path.exists(f"/proc/{pid}")


def _exists(core: client.CoreV1Api, ns: str, name: str) -> bool:
    return any(p["metadata"]["name"] == name
               for p in read_json(core.list_namespaced_pod, ns)["items"])


@pytest.mark.k8s
def test_job_on_failure_exceeds_backoff_limit(k8s_api_client: client.ApiClient,
                                              k8s_namespace: str) -> None:
    """The Job controller counts in-place restarts of OnFailure pods against backoffLimit."""
    batch = client.BatchV1Api(k8s_api_client)
    send(batch.create_namespaced_job, k8s_namespace, {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "crashy"},
        "spec": {"backoffLimit": 1, "template": {"spec": {
            "restartPolicy": "OnFailure",
            "containers": [{"name": "main", "image": "x", "command": ["false"]}]}}}})

    def failed() -> str | None:
        job = read_json(batch.read_namespaced_job_status, "crashy", k8s_namespace)
        for cond in job["status"].get("conditions") or []:
            if cond["type"] == "Failed" and cond["status"] == "True":
                return str(cond["reason"])
        return None

    assert wait_for("job Failed", failed, 60) == "BackoffLimitExceeded"


@pytest.mark.k8s
@pytest.mark.slow
def test_kubelet_survives_an_apiserver_restart(k8s_control_plane: ControlPlane,
                                               tmp_path: Any) -> None:
    """Its watch reconnects and relists. A private control plane: the shared one stays up."""
    with ControlPlane(k8s_control_plane.bin_dir) as cp:
        kubelet = LocalKubelet(cp.kubeconfig_path, cp.kubelet_serving, cp.pki.ca_cert,
                               workdir=tmp_path / "kubelet")
        kubelet.start()
        try:
            with cp.api_client() as api:
                core = client.CoreV1Api(api)
                cp.create_namespace("restart")
                cp.restart_apiserver()
                send(core.create_namespaced_pod, "restart", _pod(
                    "after", [{"name": "main", "image": "x", "command": ["echo", "back"]}]))
                assert wait_for("pod done", lambda: _done(core, "restart", "after"), 30) \
                    == "Succeeded"
                assert core.read_namespaced_pod_log("after", "restart") == "back\n"
        finally:
            kubelet.stop()
