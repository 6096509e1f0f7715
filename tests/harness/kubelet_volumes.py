"""A Pod's volumes on the test kubelet: host directories, and where each container mounts them.

Each volume a container mounts is made ready on this host the first time a
container of the Pod needs it, under the Pod's directory in the kubelet's
state dir (which the kubelet removes when the Pod is deleted), laid out as a
kubelet does: ``volumes/kubernetes.io~empty-dir/NAME`` and so on.

- ``emptyDir``: an empty directory (mode 0777), shared by the Pod's containers.
  ``medium`` and ``sizeLimit`` are ignored.
- ``hostPath``: the host's path, with ``type`` checked (``DirectoryOrCreate``
  and ``FileOrCreate`` create it, as a kubelet does).
- ``configMap``, ``secret``, ``downwardAPI``, ``projected`` (without
  ``serviceAccountToken``): files written from the object's data, honouring
  ``items`` (``key``/``path``/``mode``), ``defaultMode`` and ``optional``.
  While the object (or a listed key) is missing the container waits with
  CreateContainerConfigError and is retried. Written once, as plain files: a
  later change of the object is not seen (no ``..data`` symlink swaps).
  Always mounted read-only, as a kubelet does.

:class:`Mount` is one bind mount for ``kubelet_mountns``: ``subPath`` (and
``subPathExpr``) pick a path inside the volume, created as a directory if it
is missing; ``readOnly`` is honoured.
"""

from __future__ import annotations

import base64
import json
import logging
import shutil
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from .kubelet_runtime import CannotRun, ConfigError, CreateError, expand, field_value

__all__ = ["DataFn", "Mount", "PodVolumes", "SERVICE_ACCOUNT_PATH", "decode_data"]

log = logging.getLogger(__name__)

Pod = dict[str, Any]
# (kind "configmap" | "secret", namespace, name) -> raw data, None if the object is missing.
DataFn = Callable[[str, str, str], Optional[dict[str, bytes]]]

# Where the ServiceAccount admission plugin mounts every Pod's token.
SERVICE_ACCOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
_FILE_KINDS = {"configMap": "kubernetes.io~configmap", "secret": "kubernetes.io~secret",
               "downwardAPI": "kubernetes.io~downward-api", "projected": "kubernetes.io~projected"}
_HOST_TYPES: dict[str, Callable[[int], bool]] = {
    "Directory": stat.S_ISDIR, "File": stat.S_ISREG, "Socket": stat.S_ISSOCK,
    "CharDevice": stat.S_ISCHR, "BlockDevice": stat.S_ISBLK,
}
_DEFAULT_MODE = 0o644


@dataclass(frozen=True)
class Mount:
    """One bind mount of a host path into a container."""

    source: Path  # on this host
    target: str  # the container's mountPath
    read_only: bool
    is_dir: bool
    what: str  # for messages: "volume 'data' at /data"

    def plan(self) -> dict[str, Any]:
        return {"source": str(self.source), "target": self.target, "dir": self.is_dir,
                "readOnly": self.read_only, "what": self.what}


class PodVolumes:
    """The host side of one Pod's volumes; thread-safe (a Pod's containers start in parallel)."""

    def __init__(self, directory: Path, data: DataFn) -> None:
        self.directory = directory
        self._data = data
        self._lock = threading.Lock()
        self._ready: dict[str, Path] = {}

    def mounts(self, pod: Pod, container: dict[str, Any], env: dict[str, str], *,
               service_account: bool = True) -> list[Mount]:
        """The container's mounts, its volumes made ready; ``service_account=False``
        leaves out the token mount that admission adds to every Pod."""
        volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
        mounts: list[Mount] = []
        for vm in container.get("volumeMounts") or []:
            target = vm["mountPath"]
            if not service_account and target.rstrip("/") == SERVICE_ACCOUNT_PATH:
                continue
            what = f"volume {vm['name']!r} at {target}"
            volume = volumes.get(vm["name"])
            if volume is None:
                raise CannotRun(f"{what}: the pod has no volume of that name")
            source = self._prepare(pod, volume)
            sub = vm.get("subPath") or expand(vm.get("subPathExpr") or "", env)
            if sub:
                source = _sub_path(source, sub, what)
            read_only = bool(vm.get("readOnly")) or _kind(volume) in _FILE_KINDS
            mounts.append(Mount(source, target, read_only, source.is_dir(), what))
        return mounts

    def _prepare(self, pod: Pod, volume: dict[str, Any]) -> Path:
        name: str = volume["name"]
        kind = _kind(volume)
        path: Path
        with self._lock:
            if name in self._ready:
                return self._ready[name]
            if kind == "emptyDir":
                path = self.directory / "volumes" / "kubernetes.io~empty-dir" / name
                path.mkdir(parents=True, exist_ok=True)
                path.chmod(0o777)  # as a kubelet makes it: any user of the pod may write
            elif kind == "hostPath":
                path = _host_path(volume["hostPath"], f"volume {name!r}")
            elif kind in _FILE_KINDS:
                path = self.directory / "volumes" / _FILE_KINDS[kind] / name
                self._write(path, self._files(pod, kind, volume[kind]))
            else:
                raise CannotRun(
                    f"volume {name!r}: {kind} volumes are not supported by the test kubelet "
                    "(emptyDir, hostPath, configMap, secret, downwardAPI and projected are)")
            self._ready[name] = path
            return path

    def _files(self, pod: Pod, kind: str, source: dict[str, Any]) -> dict[str, tuple[bytes, int]]:
        """The volume's files: relative path -> (content, mode)."""
        mode = int(source.get("defaultMode", _DEFAULT_MODE))
        if kind == "projected":
            files: dict[str, tuple[bytes, int]] = {}
            for part in source.get("sources") or []:
                (part_kind, spec), = part.items()
                if part_kind == "serviceAccountToken":
                    raise CannotRun("projected serviceAccountToken sources are not supported "
                                    "by the test kubelet")
                files.update(self._files(pod, part_kind, {"defaultMode": mode, **spec}))
            return files
        if kind == "downwardAPI":
            return _downward_files(pod, source.get("items") or [], mode)
        obj_kind = "secret" if kind == "secret" else "configmap"
        # A secret volume says secretName; a projected volume's secret source says name.
        obj_name = source.get("secretName") or source.get("name") or ""
        data = self._data(obj_kind, pod["metadata"]["namespace"], obj_name)
        optional = bool(source.get("optional"))
        if data is None:
            if optional:
                return {}
            raise ConfigError(f"{obj_kind} {obj_name!r} not found")
        items = source.get("items")
        if not items:
            return {key: (value, mode) for key, value in data.items()}
        files = {}
        for item in items:
            if item["key"] not in data:
                if optional:
                    continue
                raise ConfigError(f"{obj_kind} {obj_name!r} has no key {item['key']!r}")
            files[item["path"]] = (data[item["key"]], int(item.get("mode", mode)))
        return files

    @staticmethod
    def _write(path: Path, files: dict[str, tuple[bytes, int]]) -> None:
        # Built aside and renamed into place: a container never sees half a volume.
        partial = path.with_name(path.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        for rel, (content, mode) in files.items():
            file = partial / rel
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(content)
            file.chmod(mode)
        partial.rename(path)


def _kind(volume: dict[str, Any]) -> str:
    kinds = [k for k in volume if k != "name"]
    return kinds[0] if kinds else "emptyDir"  # the API server defaults to emptyDir


def _host_path(spec: dict[str, Any], what: str) -> Path:
    path, kind = Path(spec["path"]), spec.get("type") or ""
    if kind == "DirectoryOrCreate":
        path.mkdir(parents=True, exist_ok=True)
    elif kind == "FileOrCreate" and not path.exists():
        try:
            path.touch()
        except OSError as e:
            raise CreateError(f"{what}: cannot create hostPath {path}: {e}") from e
    check = _HOST_TYPES.get(kind.replace("OrCreate", ""))
    try:
        st = path.stat()
    except OSError as e:
        raise CreateError(f"{what}: hostPath {path} does not exist on this host") from e
    if check is not None and not check(st.st_mode):
        raise CreateError(f"{what}: hostPath {path} is not of type {kind}")
    return path


def _sub_path(volume: Path, sub: str, what: str) -> Path:
    parts = Path(sub).parts
    if Path(sub).is_absolute() or ".." in parts:
        raise CannotRun(f"{what}: subPath {sub!r} must be a relative path without '..'")
    path = volume.joinpath(*parts)
    if not path.exists():
        # A kubelet creates a missing subPath as a directory in the volume.
        try:
            path.mkdir(parents=True)
        except OSError as e:
            raise CreateError(f"{what}: cannot create subPath {sub!r}: {e}") from e
    return path


def _downward_files(pod: Pod, items: list[dict[str, Any]],
                    mode: int) -> dict[str, tuple[bytes, int]]:
    files: dict[str, tuple[bytes, int]] = {}
    meta = pod["metadata"]
    for item in items:
        ref = (item.get("fieldRef") or {}).get("fieldPath")
        if ref is None:
            log.info("downwardAPI %s: only fieldRef is supported by the test kubelet; left out",
                     item.get("path"))
            continue
        if ref in ("metadata.labels", "metadata.annotations"):
            values = meta.get(ref.split(".")[1]) or {}
            # The kubelet's fieldpath.FormatMap: sorted key="quoted value" lines.
            text = "\n".join(f"{k}={json.dumps(v)}" for k, v in sorted(values.items()))
        else:
            text = field_value(pod, ref)
        files[item["path"]] = (text.encode(), int(item.get("mode", mode)))
    return files


def decode_data(kind: str, obj: dict[str, Any]) -> dict[str, bytes]:
    """A ConfigMap's or Secret's data as bytes (``binaryData`` included)."""
    if kind == "secret":
        return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
    data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return data

