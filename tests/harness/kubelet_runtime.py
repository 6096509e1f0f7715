"""How the test kubelet turns a container spec into a local process.

Images are ignored: a container runs its ``command`` + ``args`` on this host,
with the environment a real kubelet would give it (``env``, ``envFrom``,
``$(VAR)`` expansion, downward-API field references) on top of the host's.
A container that mounts volumes starts through ``kubelet_mountns`` in a mount
namespace of its own (see there); one that does not runs directly.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Optional

__all__ = [
    "CannotRun", "ConfigError", "ContainerProcess", "CreateError", "LookupFn",
    "container_argv", "container_env", "exit_code", "expand", "field_value",
    "mount_namespace_problem", "working_dir",
]

log = logging.getLogger(__name__)

Pod = dict[str, Any]
# (kind "configmap" | "secret", namespace, name) -> decoded data, None if missing.
LookupFn = Callable[[str, str, str], Optional[dict[str, str]]]

_LABEL_REF = re.compile(r"^metadata\.(labels|annotations)\['(.*)'\]$")


class ConfigError(Exception):
    """The container cannot be configured yet (CreateContainerConfigError); retried."""


class CannotRun(Exception):
    """The container can never start here (ContainerCannotRun); it ends with an error."""


class CreateError(Exception):
    """The container could not be created (CreateContainerError); retried with back-off."""


_MOUNTNS = Path(__file__).with_name("kubelet_mountns.py")
# Isolated (-I: no PYTHON* variables, no user site) and without site (-S): the
# container's environment must not change how its first moments run.
_MOUNTNS_ARGV = [sys.executable, "-I", "-S", str(_MOUNTNS)]


def mount_namespace_problem(directory: Path) -> Optional[str]:
    """None if containers can get mount namespaces here; otherwise why not."""
    try:
        proc = subprocess.run([*_MOUNTNS_ARGV, "--probe", str(directory)], timeout=60,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"cannot run {_MOUNTNS.name}: {e}"
    if proc.returncode == 0:
        return None
    reason = proc.stderr.strip() or f"{_MOUNTNS.name} --probe exited with {proc.returncode}"
    if os.geteuid() != 0:
        reason += f"; this process runs as uid {os.geteuid()}, mounting needs root"
    return reason


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: unknown names stay, ``$$`` escapes ``$``."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text):
            if text[i + 1] == "$":
                out.append("$")
                i += 2
                continue
            if text[i + 1] == "(":
                end = text.find(")", i + 2)
                if end != -1:
                    name = text[i + 2:end]
                    out.append(env[name] if name in env else text[i:end + 1])
                    i = end + 1
                    continue
        out.append(text[i])
        i += 1
    return "".join(out)


def field_value(pod: Pod, path: str) -> str:
    """The downward API: the value of ``fieldRef.fieldPath`` for this pod."""
    meta = pod.get("metadata", {})
    status = pod.get("status", {})
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": pod.get("spec", {}).get("nodeName", ""),
        "spec.serviceAccountName": pod.get("spec", {}).get("serviceAccountName", ""),
        # The test kubelet runs everything on loopback.
        "status.hostIP": status.get("hostIP", "127.0.0.1"),
        "status.podIP": status.get("podIP", "127.0.0.1"),
        "status.podIPs": status.get("podIP", "127.0.0.1"),
    }
    if path in simple:
        return str(simple[path])
    m = _LABEL_REF.match(path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    raise CannotRun(f"unsupported fieldRef.fieldPath {path!r}")


def container_env(pod: Pod, container: dict[str, Any], base: dict[str, str],
                  lookup: LookupFn) -> dict[str, str]:
    """The process environment: ``base`` (the host's), then envFrom, then env."""
    namespace = pod["metadata"]["namespace"]
    env = dict(base)
    # $(VAR) in values sees only what the pod spec defines, as in Kubernetes.
    defined: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        kind, ref = (("configmap", source["configMapRef"]) if "configMapRef" in source
                     else ("secret", source.get("secretRef") or {}))
        data = lookup(kind, namespace, ref.get("name", ""))
        if data is None:
            if ref.get("optional"):
                continue
            raise ConfigError(f"{kind} {ref.get('name')!r} not found")
        for key, value in data.items():
            defined[source.get("prefix", "") + key] = value
    for var in container.get("env") or []:
        name = var["name"]
        source = var.get("valueFrom")
        if source is None:
            defined[name] = expand(var.get("value", ""), defined)
        elif "fieldRef" in source:
            defined[name] = field_value(pod, source["fieldRef"]["fieldPath"])
        elif "configMapKeyRef" in source or "secretKeyRef" in source:
            kind, ref = (("configmap", source["configMapKeyRef"]) if "configMapKeyRef" in source
                         else ("secret", source["secretKeyRef"]))
            data = lookup(kind, namespace, ref["name"])
            if data is None or ref["key"] not in data:
                if ref.get("optional"):
                    continue
                raise ConfigError(f"{kind} {ref['name']!r} has no key {ref['key']!r}")
            defined[name] = data[ref["key"]]
        else:
            # resourceFieldRef: there are no cgroups here to report.
            log.info("env %s: %s not supported by the test kubelet; left unset",
                     name, ", ".join(source))
    env.update(defined)
    return env


def container_argv(container: dict[str, Any], env: dict[str, str]) -> list[str]:
    command = list(container.get("command") or [])
    if not command:
        raise CannotRun(
            "the test kubelet ignores images, so a container needs an explicit `command`")
    return [expand(part, env) for part in command + list(container.get("args") or [])]


def working_dir(container: dict[str, Any], default: Path, in_namespace: bool) -> Path:
    """``workingDir`` (a per-pod scratch directory if it names none).

    Outside a mount namespace it must exist on this host: creating arbitrary
    absolute paths on the host (as a runtime would in the container's own
    filesystem) is not this harness's place. Inside one it is created there.
    """
    wanted = container.get("workingDir")
    if not wanted:
        return default
    if not in_namespace and not os.path.isdir(wanted):
        raise CannotRun(f"workingDir {wanted!r} does not exist on this host")
    return Path(wanted)


def exit_code(returncode: int) -> int:
    """A container's exit code: death by signal N reads as 128+N, as in a runtime."""
    return 128 - returncode if returncode < 0 else returncode


class ContainerProcess:
    """One run of one container: a process group whose output goes to a log file.

    With a mount ``plan`` (see ``kubelet_mountns``) the process sets up its
    mount namespace and then execs ``argv``; call :meth:`wait_started` to learn
    whether it got that far.
    """

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path, log_path: Path,
                 plan: Optional[dict[str, Any]] = None) -> None:
        self.argv = argv
        self.log_path = log_path
        self._lock = threading.Lock()
        self._reaped = False
        self._status_fd: Optional[int] = None
        with open(log_path, "ab") as out:
            # A session of its own, so that a signal reaches the container's
            # children too (as a PID namespace would) and never pytest.
            if plan is None:
                self._proc = subprocess.Popen(
                    argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True)
            else:
                read, write = os.pipe()
                plan = {**plan, "errfd": write, "cwd": str(cwd)}
                try:
                    self._proc = subprocess.Popen(
                        [*_MOUNTNS_ARGV, json.dumps(plan), "--", *argv], env=env, cwd="/",
                        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                        start_new_session=True, pass_fds=(write,))
                except BaseException:
                    os.close(read)
                    raise
                finally:
                    os.close(write)
                self._status_fd = read
        self.pid = self._proc.pid

    def wait_started(self) -> None:
        """Return once the command runs. CreateError if the mounts failed, OSError if
        the command could not be executed; the process is gone then."""
        fd, self._status_fd = self._status_fd, None
        if fd is None:
            return
        with open(fd, "rb") as status:
            report = status.read()  # EOF: exec'd (the pipe is close-on-exec), or killed
        if not report:
            return
        with self._lock:
            self._proc.wait()
            self._reaped = True
        stage, errno, message = report.decode(errors="replace").split("\0", 2)
        if stage == "exec":
            raise OSError(int(errno), message, self.argv[0])
        raise CreateError(message)

    def wait(self) -> int:
        # Wait without reaping: while the leader is a zombie its process-group
        # id cannot be reused, so killing the group below is safe.
        try:
            os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)
        except ChildProcessError:
            pass
        # When a container's main process exits, the runtime kills the rest
        # of the container; leftover children would otherwise keep running.
        self.signal(signal.SIGKILL)
        with self._lock:
            code = exit_code(self._proc.wait())
            self._reaped = True
        return code

    def signal(self, sig: int) -> None:
        with self._lock:
            if self._reaped:
                return
            try:
                os.killpg(self.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
