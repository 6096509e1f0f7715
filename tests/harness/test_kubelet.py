"""The test kubelet's Pod semantics: restarts, init containers, env sources, odd specs.

The first tests need no cluster; the ``k8s`` ones run against the real one.
"""

from __future__ import annotations

import base64
import io
import os
import secrets
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


# ---- volumes -----------------------------------------------------------------------------
# Pods that mount volumes run in mount namespaces of their own. Mount paths are
# made unique per run and asserted never to appear on this host.


def _unique_path(top: str) -> str:
    return f"{top}/katib-kubelet-test-{secrets.token_hex(4)}"


def _log(core: client.CoreV1Api, ns: str, pod: str, container: str | None = None) -> str:
    return str(core.read_namespaced_pod_log(pod, ns, container=container))


def _succeeded(core: client.CoreV1Api, ns: str, name: str, timeout: float = 60) -> None:
    phase = wait_for(f"pod {name} done", lambda: _done(core, ns, name), timeout)
    assert phase == "Succeeded", (_status(core, ns, name), _logs_of(core, ns, name))


def _logs_of(core: client.CoreV1Api, ns: str, name: str) -> dict[str, str]:
    pod = read_json(core.read_namespaced_pod, name, ns)
    out = {}
    for c in pod["spec"]["containers"]:
        try:
            out[c["name"]] = _log(core, ns, name, c["name"])
        except client.ApiException as e:
            out[c["name"]] = f"<no log: {e.status}>"
    return out


def _waiting_reason(core: client.CoreV1Api, ns: str, name: str) -> tuple[str, str] | None:
    for cs in _status(core, ns, name).get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") not in (None, "ContainerCreating", "PodInitializing"):
            return str(waiting["reason"]), str(waiting.get("message", ""))
    return None


_LIST_SHARED_DIR = """
import os, pathlib, sys, time
shared, rendezvous, me = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
(shared / (me + ".txt")).write_text(me)
(rendezvous / ("ready-" + me)).touch()
deadline = time.monotonic() + 60
while not (rendezvous / "go").exists():
    if time.monotonic() > deadline:
        sys.exit("nobody said go")
    time.sleep(0.05)
print(sorted(os.listdir(shared)))
"""


@pytest.mark.k8s
def test_pods_mounting_empty_dirs_at_one_path_see_only_their_own(
        k8s_api_client: client.ApiClient, k8s_namespace: str, k8s_volumes: None,
        tmp_path: Any) -> None:
    core = client.CoreV1Api(k8s_api_client)
    top = _unique_path("/var/lib")
    shared = f"{top}/shared"
    for name in ("alpha", "beta"):
        send(core.create_namespaced_pod, k8s_namespace, _pod(name, [{
            "name": "main", "image": "x",
            "command": [PY, "-c", _LIST_SHARED_DIR, shared, str(tmp_path), name],
            "volumeMounts": [{"name": "scratch", "mountPath": shared}]}],
            volumes=[{"name": "scratch", "emptyDir": {}}]))
    # Both have written their file and are still running: they share the path, not the files.
    wait_for("both pods to write", lambda: all(
        (tmp_path / f"ready-{n}").exists() for n in ("alpha", "beta")), 60)
    assert not os.path.lexists(top), "the mount path must exist inside the pods only"
    (tmp_path / "go").touch()
    for name in ("alpha", "beta"):
        _succeeded(core, k8s_namespace, name)
        assert _log(core, k8s_namespace, name) == f"['{name}.txt']\n"
    assert not os.path.lexists(top)


_WAIT_AND_READ = """
import pathlib, sys, time
shared = pathlib.Path(sys.argv[1])
deadline = time.monotonic() + 60
while not (shared / "from-writer").exists():
    if time.monotonic() > deadline:
        sys.exit("the writer's file never appeared")
    time.sleep(0.05)
for name in ("from-init", "from-writer"):
    print(name, (shared / name).read_text().strip())
"""


@pytest.mark.k8s
def test_empty_dir_is_shared_by_a_pods_containers_and_removed_with_the_pod(
        k8s_control_plane: ControlPlane, k8s_api_client: client.ApiClient,
        k8s_namespace: str, k8s_volumes: None) -> None:
    core = client.CoreV1Api(k8s_api_client)
    shared = _unique_path("")  # right under /: each container gets a root of its own
    mounts = [{"name": "shared", "mountPath": shared}]

    def write(name: str, text: str) -> list[str]:
        # Written aside and renamed: the reader never sees half a file.
        return ["sh", "-c", f"echo {text} > {shared}/.{name} && mv {shared}/.{name} {shared}/{name}"]

    send(core.create_namespaced_pod, k8s_namespace, _pod(
        "sharing",
        [{"name": "reader", "image": "x", "command": [PY, "-c", _WAIT_AND_READ, shared],
          "volumeMounts": mounts},
         {"name": "writer", "image": "x", "command": write("from-writer", "hello-reader"),
          "volumeMounts": mounts}],
        initContainers=[{"name": "init", "image": "x", "command": write("from-init", "early"),
                         "volumeMounts": mounts}],
        volumes=[{"name": "shared", "emptyDir": {}}]))
    _succeeded(core, k8s_namespace, "sharing")
    assert _log(core, k8s_namespace, "sharing", "reader") == \
        "from-init early\nfrom-writer hello-reader\n"
    assert not os.path.lexists(shared)

    # The volume lives in the kubelet's state dir until the pod is deleted.
    kubelet = k8s_control_plane.kubelet
    assert kubelet is not None
    uid = read_json(core.read_namespaced_pod, "sharing", k8s_namespace)["metadata"]["uid"]
    volume = kubelet.workdir / "pods" / uid / "volumes" / "kubernetes.io~empty-dir" / "shared"
    assert sorted(p.name for p in volume.iterdir()) == ["from-init", "from-writer"]
    core.delete_namespaced_pod("sharing", k8s_namespace)
    wait_for("the pod's volume to be removed", lambda: not volume.parent.exists(), 30)


_HOST_PATHS = """
import errno, os, sys
ro, rw = sys.argv[1], sys.argv[2]
print(open(os.path.join(ro, "given.txt")).read().strip())
try:
    open(os.path.join(ro, "new.txt"), "w")
except OSError as e:
    print("read-only" if e.errno == errno.EROFS else e)
open(os.path.join(rw, "result.txt"), "w").write("written")
print(os.getcwd())
"""


@pytest.mark.k8s
def test_host_path_with_sub_path_read_only_and_a_working_dir_only_the_pod_has(
        k8s_api_client: client.ApiClient, k8s_namespace: str, k8s_volumes: None,
        tmp_path: Any) -> None:
    core = client.CoreV1Api(k8s_api_client)
    host = tmp_path / "host"
    host.mkdir()
    (host / "given.txt").write_text("from the host\n")
    top = _unique_path("/opt")
    send(core.create_namespaced_pod, k8s_namespace, _pod("hostpath", [{
        "name": "main", "image": "x", "workingDir": f"{top}/work",
        "command": [PY, "-c", _HOST_PATHS, f"{top}/ro", f"{top}/rw"],
        "volumeMounts": [{"name": "host", "mountPath": f"{top}/ro", "readOnly": True},
                         {"name": "host", "mountPath": f"{top}/rw", "subPath": "out"},
                         {"name": "made", "mountPath": f"{top}/made"}]}],
        volumes=[{"name": "host", "hostPath": {"path": str(host), "type": "Directory"}},
                 {"name": "made", "hostPath": {"path": str(tmp_path / "made"),
                                               "type": "DirectoryOrCreate"}}]))
    _succeeded(core, k8s_namespace, "hostpath")
    assert _log(core, k8s_namespace, "hostpath") == f"from the host\nread-only\n{top}/work\n"
    assert (host / "out" / "result.txt").read_text() == "written"
    assert not (host / "new.txt").exists()
    assert (tmp_path / "made").is_dir()
    assert not os.path.lexists(top)


_SHOW_FILES = """
import errno, os, sys
for top in sys.argv[1:]:
    if os.path.isfile(top):
        print(top, open(top).read())
        continue
    for root, _, files in sorted(os.walk(top)):
        for name in sorted(files):
            path = os.path.join(root, name)
            mode = oct(os.stat(path).st_mode & 0o777)
            print(os.path.relpath(path, top), mode, repr(open(path, "rb").read()))
    try:
        open(os.path.join(top, "new"), "w")
    except OSError as e:
        print("read-only" if e.errno == errno.EROFS else e)
"""


@pytest.mark.k8s
def test_config_map_and_secret_volumes_wait_for_their_objects_and_honour_items(
        k8s_api_client: client.ApiClient, k8s_namespace: str, k8s_volumes: None) -> None:
    core = client.CoreV1Api(k8s_api_client)
    top = _unique_path("/etc")
    send(core.create_namespaced_pod, k8s_namespace, _pod("files", [{
        "name": "main", "image": "x",
        "command": [PY, "-c", _SHOW_FILES, f"{top}/cfg", f"{top}/secret", f"{top}.conf"],
        "volumeMounts": [{"name": "cfg", "mountPath": f"{top}/cfg"},
                         {"name": "db", "mountPath": f"{top}/secret"},
                         {"name": "cfg", "mountPath": f"{top}.conf", "subPath": "opt"}]}],
        volumes=[{"name": "cfg", "configMap": {"name": "cfg"}},
                 {"name": "db", "secret": {"secretName": "db", "defaultMode": 0o640, "items": [
                     {"key": "password", "path": "nested/pw", "mode": 0o400},
                     {"key": "user", "path": "user"}]}}]))
    reason = wait_for("the pod to wait for its ConfigMap",
                      lambda: _waiting_reason(core, k8s_namespace, "files"), 30)
    assert reason == ("CreateContainerConfigError", "configmap 'cfg' not found")
    send(core.create_namespaced_config_map, k8s_namespace, {
        "metadata": {"name": "cfg"}, "data": {"lr": "0.1", "opt": "sgd"},
        "binaryData": {"blob": base64.b64encode(b"\x00\xff").decode()}})
    send(core.create_namespaced_secret, k8s_namespace, {
        "metadata": {"name": "db"}, "stringData": {"password": "s3cret", "user": "admin",
                                                   "unlisted": "not mounted"}})
    _succeeded(core, k8s_namespace, "files")
    assert _log(core, k8s_namespace, "files").splitlines() == [
        "blob 0o644 b'\\x00\\xff'", "lr 0o644 b'0.1'", "opt 0o644 b'sgd'", "read-only",
        "user 0o640 b'admin'", "nested/pw 0o400 b's3cret'", "read-only",
        f"{top}.conf sgd",
    ]
    assert not os.path.lexists(top) and not os.path.lexists(f"{top}.conf")


@pytest.mark.k8s
def test_downward_api_volume_and_the_service_account_token(
        k8s_api_client: client.ApiClient, k8s_namespace: str, k8s_volumes: None) -> None:
    core = client.CoreV1Api(k8s_api_client)
    top = _unique_path("/etc")
    sa = "/var/run/secrets/kubernetes.io/serviceaccount"
    script = (f"import os\nfor f in ('labels', 'meta/name'):\n"
              f"    print(f, repr(open(os.path.join({top!r}, f)).read()))\n"
              f"print('namespace', open('{sa}/namespace').read())\n"
              f"print('token', len(open('{sa}/token').read()) > 100)\n")
    pod = _pod("downward", [{
        "name": "main", "image": "x", "command": [PY, "-c", script],
        "volumeMounts": [{"name": "info", "mountPath": top}]}],
        volumes=[{"name": "info", "downwardAPI": {"items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "meta/name", "fieldRef": {"fieldPath": "metadata.name"}}]}}])
    pod["metadata"]["labels"] = {"tier": "test", "app": "katib"}
    send(core.create_namespaced_pod, k8s_namespace, pod)
    _succeeded(core, k8s_namespace, "downward")
    assert _log(core, k8s_namespace, "downward").splitlines() == [
        "labels 'app=\"katib\"\\ntier=\"test\"'", "meta/name 'downward'",
        f"namespace {k8s_namespace}", "token True"]
    assert not os.path.lexists(top)


@pytest.mark.k8s
def test_where_volumes_cannot_be_mounted_such_pods_wait_with_create_container_error(
        k8s_control_plane: ControlPlane, k8s_api_client: client.ApiClient,
        k8s_namespace: str, tmp_path: Any) -> None:
    """A kubelet without mount namespaces (not root, say): pods that mount volumes say
    why they cannot start; pods with only the ServiceAccount token still run."""
    cp = k8s_control_plane
    node = f"no-volumes-{secrets.token_hex(3)}"
    kubelet = LocalKubelet(cp.kubeconfig_path, cp.kubelet_serving, cp.pki.ca_cert,
                           node_name=node, workdir=tmp_path / "kubelet", schedule=False,
                           volumes=False)
    core = client.CoreV1Api(k8s_api_client)
    kubelet.start()
    try:
        send(core.create_namespaced_pod, k8s_namespace, _pod(
            "mounts", [{"name": "main", "image": "x", "command": ["true"],
                        "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]}],
            volumes=[{"name": "scratch", "emptyDir": {}}], nodeName=node))
        send(core.create_namespaced_pod, k8s_namespace, _pod(
            "plain", [{"name": "main", "image": "x", "command": ["echo", "ran"]}],
            nodeName=node))
        reason, message = wait_for("the pod to report why it cannot start",
                                   lambda: _waiting_reason(core, k8s_namespace, "mounts"), 30)
        assert reason == "CreateContainerError"
        assert message.startswith("volume 'scratch' at /scratch: the test kubelet cannot "
                                  "mount volumes on this machine: volumes are turned off")
        _succeeded(core, k8s_namespace, "plain")
        assert _log(core, k8s_namespace, "plain") == "ran\n"
        assert _status(core, k8s_namespace, "mounts")["containerStatuses"][0]["restartCount"] == 0
        for name in ("mounts", "plain"):
            core.delete_namespaced_pod(name, k8s_namespace)
        wait_for("the pods to be deleted",
                 lambda: not read_json(core.list_namespaced_pod, k8s_namespace)["items"], 30)
    finally:
        kubelet.stop()
        send(core.delete_node, node)
