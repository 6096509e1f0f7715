"""Proof that the harness is a real control plane with a working kubelet.

Run: ``pytest -p tests.harness.pytest_plugin tests/harness``
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from typing import Any, Callable, Optional

import pytest
from kubernetes import client
from kubernetes.watch.watch import iter_resp_lines

from .api import JSON_MERGE_PATCH, ApiException, raw, read_json, send
from .controlplane import ControlPlane, wait_for

pytestmark = pytest.mark.k8s

PY = sys.executable  # the kubelet runs commands on this host


def _job(name: str, script: str, *, backoff_limit: int = 0,
         python: str = PY) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"backoffLimit": backoff_limit, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "python:3.11",
                            "command": [python, "-c", script]}]}}},
    }


def _job_condition(batch: client.BatchV1Api, ns: str, name: str) -> Optional[str]:
    job = read_json(batch.read_namespaced_job_status, name, ns)
    for cond in job.get("status", {}).get("conditions") or []:
        if cond["status"] == "True" and cond["type"] in ("Complete", "Failed"):
            return str(cond["type"])
    return None


def _pods(core: client.CoreV1Api, ns: str, selector: str) -> list[dict[str, Any]]:
    return list(read_json(core.list_namespaced_pod, ns, label_selector=selector)["items"])


def _eventually(what: str, probe: Callable[[], Any], timeout: float = 60) -> Any:
    return wait_for(what, probe, timeout, interval=0.2)


def test_version_is_the_built_one(k8s_api_client: client.ApiClient) -> None:
    assert client.VersionApi(k8s_api_client).get_code().git_version == "v1.20.2"


def test_crd_established_and_schema_enforced(k8s_api_client: client.ApiClient,
                                             k8s_namespace: str) -> None:
    ext = client.ApiextensionsV1Api(k8s_api_client)
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.harness.katib.test"},
        "spec": {"group": "harness.katib.test", "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "subresources": {"status": {}},
                               "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                                   "spec": {"type": "object", "required": ["size"],
                                            "properties": {"size": {"type": "integer",
                                                                    "minimum": 1}}},
                                   "status": {"type": "object", "properties": {
                                       "phase": {"type": "string"}}}}}}}]},
    }
    try:
        send(ext.create_custom_resource_definition, crd)
    except ApiException as e:
        if e.status != 409:
            raise

    def established() -> bool:
        got = read_json(ext.read_custom_resource_definition, "widgets.harness.katib.test")
        return any(c["type"] == "Established" and c["status"] == "True"
                   for c in got.get("status", {}).get("conditions") or [])

    _eventually("CRD Established", established, 30)
    custom = client.CustomObjectsApi(k8s_api_client)
    args: tuple[str, str, str, str] = ("harness.katib.test", "v1", k8s_namespace, "widgets")

    def create(body: dict[str, Any]) -> Any:
        # Discovery of a brand-new CRD can lag Established by a moment.
        return _eventually("widget create", lambda: _try_create(custom, args, body), 10)

    good = {"apiVersion": "harness.katib.test/v1", "kind": "Widget",
            "metadata": {"name": "ok"}, "spec": {"size": 3}}
    create(good)
    bad = {**good, "metadata": {"name": "bad"}, "spec": {"size": "big"}}
    with pytest.raises(ApiException) as refused:
        custom.create_namespaced_custom_object(*args, bad)
    assert refused.value.status == 422
    assert "spec.size" in (refused.value.body or "")
    # The status subresource: status is written there, not through the main resource.
    send(custom.patch_namespaced_custom_object_status, *args, "ok",
         {"status": {"phase": "Ready"}}, content_type=JSON_MERGE_PATCH)
    send(custom.patch_namespaced_custom_object, *args, "ok",
         {"spec": {"size": 4}, "status": {"phase": "Ignored"}}, content_type=JSON_MERGE_PATCH)
    got = read_json(custom.get_namespaced_custom_object, *args, "ok")
    assert (got["spec"]["size"], got["status"]["phase"]) == (4, "Ready")


def _try_create(custom: client.CustomObjectsApi, args: tuple[str, str, str, str],
                body: dict[str, Any]) -> Any:
    try:
        return custom.create_namespaced_custom_object(*args, body)
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def test_job_runs_to_complete_and_logs_are_readable(k8s_api_client: client.ApiClient,
                                                   k8s_namespace: str) -> None:
    batch, core = client.BatchV1Api(k8s_api_client), client.CoreV1Api(k8s_api_client)
    job = _job("hello", "print('hello-from-pod')", python="python3")
    send(batch.create_namespaced_job, k8s_namespace, job)
    assert _eventually("job Complete", lambda: _job_condition(batch, k8s_namespace, "hello")) \
        == "Complete"
    (pod,) = _pods(core, k8s_namespace, "job-name=hello")
    assert pod["spec"]["nodeName"] == "katib-test-node"
    assert pod["status"]["phase"] == "Succeeded"
    (cs,) = pod["status"]["containerStatuses"]
    assert cs["state"]["terminated"]["exitCode"] == 0
    text = core.read_namespaced_pod_log(pod["metadata"]["name"], k8s_namespace)
    assert text == "hello-from-pod\n"


def test_failing_command_fails_the_job(k8s_api_client: client.ApiClient,
                                       k8s_namespace: str) -> None:
    batch, core = client.BatchV1Api(k8s_api_client), client.CoreV1Api(k8s_api_client)
    send(batch.create_namespaced_job, k8s_namespace, _job("boom", "import sys; print('bad'); sys.exit(3)"))
    assert _eventually("job Failed", lambda: _job_condition(batch, k8s_namespace, "boom")) \
        == "Failed"
    (pod,) = _pods(core, k8s_namespace, "job-name=boom")
    assert pod["status"]["phase"] == "Failed"
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3


def test_env_from_downward_api_and_follow_logs(k8s_api_client: client.ApiClient,
                                               k8s_namespace: str, tmp_path: Any) -> None:
    core = client.CoreV1Api(k8s_api_client)
    go = tmp_path / "go"
    # The container waits for the test to have read its first line: proof
    # that follow=true streams live rather than returning at the end.
    script = ("import os, pathlib, time\n"
              "print(os.environ['POD'], os.environ['NS'], os.environ['TRIAL'], flush=True)\n"
              f"go = pathlib.Path({str(go)!r})\n"
              "deadline = time.time() + 30\n"
              "while not go.exists() and time.time() < deadline: time.sleep(0.05)\n"
              "for i in range(3):\n    print('line', i, flush=True); time.sleep(0.2)\n")
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "envy", "labels": {"trial": "t-7"}},
           "spec": {"restartPolicy": "Never", "containers": [{
               "name": "main", "image": "ignored", "command": [PY, "-c", script],
               "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                       {"name": "NS", "valueFrom": {
                           "fieldRef": {"fieldPath": "metadata.namespace"}}},
                       {"name": "TRIAL", "valueFrom": {
                           "fieldRef": {"fieldPath": "metadata.labels['trial']"}}}]}]}}
    send(core.create_namespaced_pod, k8s_namespace, pod)
    _eventually("pod running", lambda: _phase(core, k8s_namespace, "envy") != "Pending", 30)
    stream = raw(core.read_namespaced_pod_log, "envy", k8s_namespace, follow=True)
    try:
        lines = iter_resp_lines(stream)  # type: ignore[no-untyped-call]
        assert next(lines) == f"envy {k8s_namespace} t-7"
        assert _phase(core, k8s_namespace, "envy") == "Running"
        go.touch()
        # The stream ends by itself when the container exits.
        assert list(lines) == ["line 0", "line 1", "line 2"]
    finally:
        stream.close()
        stream.release_conn()
    assert core.read_namespaced_pod_log("envy", k8s_namespace, tail_lines=1) == "line 2\n"


def _phase(core: client.CoreV1Api, ns: str, name: str) -> str:
    return str(read_json(core.read_namespaced_pod_status, name, ns)["status"].get("phase"))


def test_deleting_a_running_pod_terminates_its_process(
        k8s_control_plane: ControlPlane, k8s_api_client: client.ApiClient,
        k8s_namespace: str, tmp_path: Any) -> None:
    core = client.CoreV1Api(k8s_api_client)
    marker = tmp_path / "pid"
    script = (f"import os, time\nopen({str(marker)!r}, 'w').write(str(os.getpid()))\n"
              "time.sleep(600)\n")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sleeper"},
           "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 5,
                    "containers": [{"name": "main", "image": "x", "command": [PY, "-c", script]}]}}
    send(core.create_namespaced_pod, k8s_namespace, pod)
    _eventually("process started", lambda: marker.exists() and marker.read_text(), 30)
    pid = int(marker.read_text())
    assert _alive(pid)
    t0 = time.monotonic()
    core.delete_namespaced_pod("sleeper", k8s_namespace)
    _eventually("pod gone", lambda: not _pod_exists(core, k8s_namespace, "sleeper"), 30)
    assert not _alive(pid)
    # SIGTERM ends python at once: no need to wait out the grace period.
    assert time.monotonic() - t0 < 5


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _pod_exists(core: client.CoreV1Api, ns: str, name: str) -> bool:
    try:
        send(core.read_namespaced_pod, name, ns)
    except ApiException as e:
        if e.status == 404:
            return False
        raise
    return True


@pytest.mark.parametrize("policy", ["Foreground", "Background"])
def test_deleting_a_job_garbage_collects_its_pods(k8s_api_client: client.ApiClient,
                                                  k8s_namespace: str, policy: str) -> None:
    batch, core = client.BatchV1Api(k8s_api_client), client.CoreV1Api(k8s_api_client)
    send(batch.create_namespaced_job, k8s_namespace, _job("long", "import time; time.sleep(600)"))
    _eventually("pod running", lambda: [p for p in _pods(core, k8s_namespace, "job-name=long")
                                        if p["status"].get("phase") == "Running"], 30)
    batch.delete_namespaced_job("long", k8s_namespace, propagation_policy=policy)
    _eventually("pods collected", lambda: not _pods(core, k8s_namespace, "job-name=long"), 60)
    _eventually("job gone",
                lambda: not read_json(batch.list_namespaced_job, k8s_namespace)["items"], 30)


def test_kubectl_logs(k8s_control_plane: ControlPlane, k8s_api_client: client.ApiClient,
                      k8s_namespace: str) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not on PATH")
    batch = client.BatchV1Api(k8s_api_client)
    send(batch.create_namespaced_job, k8s_namespace, _job("kc", "print('via-kubectl')"))
    _eventually("job Complete", lambda: _job_condition(batch, k8s_namespace, "kc"))
    out = subprocess.run(
        [kubectl, "--kubeconfig", str(k8s_control_plane.kubeconfig_path), "-n", k8s_namespace,
         "logs", "job/kc"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "via-kubectl\n"
