"""One Pod's life on the test kubelet: bind, init containers, containers, status, deletion.

Status follows the kubelet's rules closely enough for the Job controller and
Katib: phase Pending -> Running -> Succeeded/Failed, containerStatuses with
waiting/running/terminated states, exit codes and restart counts, and the
restart policy (Never, OnFailure, Always) applied with a short back-off.
Deletion sends SIGTERM to each container's process group, SIGKILL after the
grace period, reports the terminated containers, then deletes the Pod with
grace 0 as a kubelet does. Once the Pod is deleted and its containers are
gone, its directory (logs, volumes) is removed.

A container's volumes (``kubelet_volumes``) are mounted in a mount namespace
of its own (``kubelet_mountns``). Where the kubelet cannot create one, a
container that mounts volumes waits with CreateContainerError saying why; the
ServiceAccount token mount that admission adds to every Pod is then left out,
so that Pods without volumes of their own still run.
"""

from __future__ import annotations

import datetime
import logging
import os
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional


from .api import ApiException, read_json, send
from .kubelet_logs import ContainerLog
from .kubelet_runtime import (CannotRun, ConfigError, ContainerProcess, CreateError,
                              container_argv, container_env, working_dir)
from .kubelet_volumes import PodVolumes

if TYPE_CHECKING:
    from .kubelet import LocalKubelet


__all__ = ["PodWorker"]

log = logging.getLogger(__name__)

Pod = dict[str, Any]
_MAX_BACKOFF = 10.0  # a real kubelet goes to 5 minutes; tests cannot wait that long


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _state(kind: str, **fields: Any) -> dict[str, Any]:
    # Strategic merge would keep the old state next to the new one; nulls
    # delete the other two keys.
    state: dict[str, Any] = {"waiting": None, "running": None, "terminated": None}
    state[kind] = fields
    return state


class PodWorker(threading.Thread):
    """Runs one Pod; ``update``/``on_deleted``/``kill`` are called from other threads."""

    def __init__(self, kubelet: "LocalKubelet", pod: Pod, directory: Path) -> None:
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}/{meta['name']}", daemon=True)
        self.kubelet = kubelet
        self.pod = pod
        self.namespace: str = meta["namespace"]
        self.pod_name: str = meta["name"]
        self.uid: str = meta["uid"]
        self.directory = directory
        spec = pod["spec"]
        self.policy: str = spec.get("restartPolicy") or "Always"
        self._lock = threading.Lock()  # statuses, processes, termination
        self._report_lock = threading.Lock()  # one status patch at a time, in order
        self._terminating = threading.Event()
        self._kill_at = 0.0  # monotonic deadline for SIGKILL once terminating
        self._wake_killer = threading.Event()
        self._gone = False  # the Pod no longer exists (or we stop): report nothing
        self._procs: dict[str, ContainerProcess] = {}
        self._phase = "Pending"
        self._start_time: Optional[str] = None
        self._conditions: dict[str, tuple[str, str]] = {}  # type -> (status, since)
        self._statuses: dict[str, dict[str, Any]] = {}
        self._init_names = [c["name"] for c in spec.get("initContainers") or []]
        self._logs: dict[str, ContainerLog] = {}
        self._volumes = PodVolumes(directory, kubelet.volume_data)
        self._cleanup_lock = threading.Lock()
        self._done = {"ran": False, "deleted": False, "removed": False}
        for c in (spec.get("initContainers") or []) + spec["containers"]:
            self._statuses[c["name"]] = {
                "name": c["name"], "image": c.get("image", ""), "imageID": "",
                "ready": False, "started": False, "restartCount": 0,
                "state": _state("waiting", reason="PodInitializing" if self._init_names
                                else "ContainerCreating"),
            }
            # A fresh entry per Pod, so a new Pod with a reused name never
            # serves its predecessor's logs.
            self._logs[c["name"]] = ContainerLog()
            kubelet.log_server.logs[(self.namespace, self.pod_name, c["name"])] = \
                self._logs[c["name"]]

    # ---- called from the watch thread ------------------------------------------------

    def update(self, pod: Pod) -> None:
        self.pod = pod  # labels/annotations may change; field refs read the latest
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            self._begin_termination(float(meta.get("deletionGracePeriodSeconds") or 30))

    def on_deleted(self) -> None:
        self._gone = True
        self._begin_termination(0)
        for name, entry in self._logs.items():
            key = (self.namespace, self.pod_name, name)
            if self.kubelet.log_server.logs.get(key) is entry:
                del self.kubelet.log_server.logs[key]
        self._remove_directory_once("deleted")

    def kill(self, report: bool = True) -> None:
        if not report:
            self._gone = True
        self._begin_termination(0)

    # ---- the Pod's life --------------------------------------------------------------

    def run(self) -> None:
        try:
            self._run()
        except Exception:
            log.exception("test kubelet: pod %s/%s failed unexpectedly",
                          self.namespace, self.pod_name)
        finally:
            self._remove_directory_once("ran")

    def _remove_directory_once(self, event: str) -> None:
        """Remove the Pod's directory once it is both deleted and done running (any order)."""
        with self._cleanup_lock:
            self._done[event] = True
            if not (self._done["ran"] and self._done["deleted"]) or self._done["removed"]:
                return
            self._done["removed"] = True
        shutil.rmtree(self.directory, ignore_errors=True)

    def _run(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self.pod["spec"].get("nodeName") and not self._bind():
            return
        self._start_time = _now()
        self._set_condition("PodScheduled", "True")
        self._set_condition("Initialized", "False" if self._init_names else "True")
        self._set_condition("ContainersReady", "False")
        self._set_condition("Ready", "False")
        self._report()
        spec = self.pod["spec"]
        # Init containers run one by one; a failed one is retried unless the
        # policy is Never, in which case the Pod fails.
        init_policy = "Never" if self.policy == "Never" else "OnFailure"
        for c in spec.get("initContainers") or []:
            if self._run_container(c, init_policy) != 0:
                with self._lock:
                    self._phase = "Failed"
                self._finish()
                return
        self._set_condition("Initialized", "True")
        with self._lock:
            self._phase = "Running"
        codes: dict[str, Optional[int]] = {}
        threads = [threading.Thread(
            target=lambda c=c: codes.__setitem__(c["name"], self._run_container(c, self.policy)),
            name=f"{self.name}/{c['name']}", daemon=True) for c in spec["containers"]]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with self._lock:
            self._phase = self._final_phase(list(codes.values()))
        self._finish()

    def _final_phase(self, codes: list[Optional[int]]) -> str:
        # The kubelet's getPhase for all-stopped containers.
        if all(code == 0 for code in codes):
            return "Running" if self.policy == "Always" else "Succeeded"
        return "Failed" if self.policy == "Never" else "Running"

    def _finish(self) -> None:
        self._set_condition("ContainersReady", "False")
        self._set_condition("Ready", "False")
        self._report()
        if self._terminating.is_set() and not self._gone:
            self.kubelet.delete_pod_now(self.pod)
        log.info("pod %s/%s: %s", self.namespace, self.pod_name, self._phase)

    def _bind(self) -> bool:
        body = {"apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": self.pod_name, "uid": self.uid},
                "target": {"apiVersion": "v1", "kind": "Node", "name": self.kubelet.node_name}}
        for delay in self._retry_delays():
            try:
                send(self.kubelet.core.create_namespaced_pod_binding,
                     self.pod_name, self.namespace, body)
                return True
            except ApiException as e:
                if e.status in (404, 409):  # gone, or bound already (the watch will say where)
                    log.debug("pod %s/%s not bound: %s", self.namespace, self.pod_name, e.reason)
                    return e.status == 409 and self._bound_here()
                if not _transient(e):
                    log.error("pod %s/%s: binding refused (%s): %s",
                              self.namespace, self.pod_name, e.status, e.body)
                    return False
                error: Exception = e
            except Exception as e:  # noqa: BLE001 - connection trouble: retry
                error = e
            log.warning("pod %s/%s: binding failed (%s); retrying in %.1fs",
                        self.namespace, self.pod_name, error, delay)
        return False

    def _retry_delays(self) -> Iterator[float]:
        """Back-off delays, waited after each yield, until the Pod or the kubelet stops."""
        delay = 0.25
        while not (self._terminating.is_set() or self.kubelet.stopping):
            yield delay
            if self._terminating.wait(delay):
                return
            delay = min(delay * 2, 5.0)

    def _bound_here(self) -> bool:
        try:
            pod = read_json(self.kubelet.core.read_namespaced_pod, self.pod_name, self.namespace)
        except ApiException:
            return False
        return bool(pod["metadata"]["uid"] == self.uid
                    and pod["spec"].get("nodeName") == self.kubelet.node_name)

    # ---- containers ------------------------------------------------------------------

    def _run_container(self, c: dict[str, Any], policy: str) -> Optional[int]:
        """Run (and restart, as ``policy`` says) one container; its last exit code."""
        name = c["name"]
        code: Optional[int] = None
        create_backoff, create_error = 1.0, ""
        while not self._terminating.is_set():
            run = self._statuses[name]["restartCount"]
            log_path = self.directory / f"{name}-{run}.log"
            try:
                env = container_env(self.pod, c, self._base_env(), self.kubelet.lookup)
                argv = container_argv(c, env)
                plan = self._mount_plan(c, env)
                cwd = working_dir(c, self.directory, in_namespace=plan is not None)
                code = self._run_once(name, argv, env, cwd, log_path, plan)
            except ConfigError as e:
                self._update(name, state=_state("waiting", reason="CreateContainerConfigError",
                                                message=str(e)))
                self._report()
                self._terminating.wait(1.0)  # the ConfigMap/Secret may appear
                continue
            except CreateError as e:
                if str(e) != create_error:
                    create_error = str(e)
                    log.warning("pod %s/%s container %s cannot be created: %s",
                                self.namespace, self.pod_name, name, e)
                self._update(name, state=_state("waiting", reason="CreateContainerError",
                                                message=str(e)))
                self._report()
                self._terminating.wait(create_backoff)
                create_backoff = min(create_backoff * 2, _MAX_BACKOFF)
                continue
            except CannotRun as e:
                code = self._cannot_run(name, log_path, str(e))
            if code is None:  # terminated before it could start
                break
            restart = policy == "Always" or (policy == "OnFailure" and code != 0)
            if not restart or self._terminating.is_set():
                self._report()
                break
            with self._lock:
                st = self._statuses[name]
                st["lastState"] = st["state"]
                st["restartCount"] += 1
                st["state"] = _state("waiting", reason="CrashLoopBackOff" if code else
                                     "Completed", message="back-off restarting container")
                backoff = min(_MAX_BACKOFF, 0.5 * 2 ** st["restartCount"])
            self._report()
            self._terminating.wait(backoff)
        return code

    def _mount_plan(self, c: dict[str, Any], env: dict[str, str]) -> Optional[dict[str, Any]]:
        """What ``kubelet_mountns`` needs to set up the container; None: run it directly."""
        problem = self.kubelet.volumes_unavailable
        mounts = self._volumes.mounts(self.pod, c, env, service_account=problem is None)
        wanted = c.get("workingDir")
        if not mounts and (not wanted or os.path.isdir(wanted)):
            return None
        if problem is not None:
            if mounts:
                raise CreateError(f"{mounts[0].what}: the test kubelet cannot mount volumes "
                                  f"on this machine: {problem}")
            return None  # and working_dir() says that the workingDir is missing
        return {"staging": str(self.directory / "rootfs" / c["name"]),
                "mounts": [m.plan() for m in mounts]}

    def _run_once(self, name: str, argv: list[str], env: dict[str, str], cwd: Path,
                  log_path: Path, plan: Optional[dict[str, Any]]) -> Optional[int]:
        entry = self._logs[name]
        log_path.touch()
        with self._lock:
            # Checked under the lock the killer takes, so a process is never
            # started after the killer has looked at the running ones.
            if self._terminating.is_set():
                return None
            try:
                proc = ContainerProcess(argv, env, cwd, log_path, plan)
            except OSError as e:
                error: Optional[OSError] = e
            else:
                error = None
                self._procs[name] = proc
        if error is None:
            try:
                proc.wait_started()  # outside the lock: mounting takes a moment
            except CreateError:
                self._forget_process(name)
                raise
            except OSError as e:
                self._forget_process(name)
                error = e
        if error is not None:
            return self._cannot_run(name, log_path, f"{argv[0]}: {error}",
                                    127 if isinstance(error, FileNotFoundError) else 126)
        with self._lock:
            entry.runs.append(log_path)
            entry.running = True
        started = _now()
        self._update(name, ready=True, started=True, containerID=f"local://{proc.pid}",
                     state=_state("running", startedAt=started))
        self._report()
        code = proc.wait()
        with self._lock:
            entry.running = False
        self._forget_process(name)
        self._update(name, ready=False, started=False, state=_state(
            "terminated", exitCode=code, reason="Completed" if code == 0 else "Error",
            startedAt=started, finishedAt=_now(), containerID=f"local://{proc.pid}"))
        return code

    def _forget_process(self, name: str) -> None:
        with self._lock:
            self._procs.pop(name, None)
        self._wake_killer.set()

    def _cannot_run(self, name: str, log_path: Path, message: str, code: int = 128) -> int:
        log.warning("pod %s/%s container %s cannot run: %s",
                    self.namespace, self.pod_name, name, message)
        log_path.write_text(message + "\n")
        self._logs[name].runs.append(log_path)
        now = _now()
        self._update(name, state=_state("terminated", exitCode=code, reason="ContainerCannotRun",
                                        message=message, startedAt=now, finishedAt=now))
        return code

    def _base_env(self) -> dict[str, str]:
        env = self.kubelet.base_env()
        env["HOSTNAME"] = self.pod_name
        return env

    # ---- termination -----------------------------------------------------------------

    def _begin_termination(self, grace: float) -> None:
        with self._lock:
            deadline = time.monotonic() + grace
            if self._terminating.is_set():
                if deadline < self._kill_at:  # e.g. a forced delete after a graceful one
                    self._kill_at = deadline
                    self._wake_killer.set()
                return
            self._kill_at = deadline
            self._terminating.set()
        threading.Thread(target=self._killer, name=f"{self.name}/killer", daemon=True).start()

    def _killer(self) -> None:
        self._signal_all(signal.SIGTERM)
        while True:
            with self._lock:
                if not self._procs:
                    return
                left = self._kill_at - time.monotonic()
            if left <= 0:
                self._signal_all(signal.SIGKILL)
                return
            self._wake_killer.wait(left)
            self._wake_killer.clear()

    def _signal_all(self, sig: int) -> None:
        with self._lock:
            procs = list(self._procs.values())
        for proc in procs:
            proc.signal(sig)

    # ---- status ----------------------------------------------------------------------

    def _update(self, name: str, **fields: Any) -> None:
        with self._lock:
            self._statuses[name].update(fields)
        if name not in self._init_names:
            with self._lock:
                ready = all(self._statuses[c["name"]]["ready"]
                            for c in self.pod["spec"]["containers"])
            self._set_condition("ContainersReady", "True" if ready else "False")
            self._set_condition("Ready", "True" if ready else "False")

    def _set_condition(self, kind: str, status: str) -> None:
        with self._lock:
            if self._conditions.get(kind, ("", ""))[0] != status:
                self._conditions[kind] = (status, _now())

    def _snapshot(self) -> dict[str, Any]:
        with self._lock:
            main = [dict(s) for n, s in self._statuses.items() if n not in self._init_names]
            init = [dict(self._statuses[n]) for n in self._init_names]
            status: dict[str, Any] = {
                "phase": self._phase, "hostIP": "127.0.0.1", "podIP": "127.0.0.1",
                "podIPs": [{"ip": "127.0.0.1"}], "startTime": self._start_time,
                "conditions": [{"type": k, "status": s, "lastTransitionTime": t,
                                "lastProbeTime": None}
                               for k, (s, t) in self._conditions.items()],
                "containerStatuses": main,
            }
        if init:
            status["initContainerStatuses"] = init
        return status

    def _report(self) -> None:
        with self._report_lock:
            exists = True
            for attempt in range(5):  # transient failures only; the next report resends all
                if self._gone or self.kubelet.stopping:
                    return
                status = self._snapshot()
                try:
                    exists = self.kubelet.patch_pod_status(self.namespace, self.pod_name, status)
                    break
                except ApiException as e:
                    if not _transient(e):
                        log.error("pod %s/%s: status patch refused (%s): %s",
                                  self.namespace, self.pod_name, e.status, e.body)
                        return
                    error: Exception = e
                except Exception as e:  # noqa: BLE001 - connection trouble: retry
                    error = e
                log.warning("pod %s/%s: status patch failed (%s), attempt %d",
                            self.namespace, self.pod_name, error, attempt + 1)
                time.sleep(0.2 * 2 ** attempt)
        if not exists:
            self.on_deleted()


def _transient(e: ApiException) -> bool:
    return e.status is None or e.status == 429 or e.status >= 500
