"""The first moments of a container that mounts volumes: a private mount namespace, then exec.

The test kubelet runs ``python -I -S kubelet_mountns.py PLAN -- ARGV...`` as the
container's process (a session leader, so the kubelet's process-group signals
reach it and everything it starts). This script, single-threaded and stdlib
only, then:

1. leaves the host's mount namespace (``unshare(CLONE_NEWNS)``) and makes every
   mount private, so nothing it mounts is seen by the host or other containers;
2. bind-mounts each volume's host directory (or file) at its ``mountPath``,
   parents before children, and remounts the read-only ones read-only;
3. changes to the working directory and ``exec``s the container's command,
   keeping its pid: the kubelet's process, pid and process group stay the same.

A ``mountPath`` (or ``workingDir``) missing on this host is created inside the
namespace only: the deepest directory that does exist, say ``/var/log`` for
``/var/log/katib``, is *shadowed* by a tmpfs that holds the missing path plus
one bind mount (or symlink) per original entry, so the container still sees
(and writes through to) everything that was there. Nothing is created on the
host. The price: entries added to that directory on the host after the
container started are not seen by it, and entries the container adds next to
its mount points live in the tmpfs and vanish with it. Shadowing ``/`` itself
(e.g. ``mountPath: /data``) builds the tmpfs in ``PLAN["staging"]`` (the
kubelet's own directory for the container) and ``chroot``s into it.

PLAN is JSON: ``{"errfd": int, "cwd": str, "staging": str, "mounts": [{"source":
str, "target": str, "dir": bool, "readOnly": bool, "what": str}]}``. Failures
are written to ``errfd`` as ``stage NUL errno NUL message`` before exiting
(stage ``setup`` or ``exec``); a successful exec closes it (close-on-exec)
without a word, as ``subprocess`` does for its own children.

``--probe DIR`` only checks that a mount namespace can be created here (and a
tmpfs mounted on ``DIR`` inside it); it exits 0, or 1 with the reason on stderr.
"""

from __future__ import annotations

import ctypes
import json
import os
import stat
import sys
from typing import Any, NoReturn, Optional

CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME = 0x20, 0x400, 0x800
MS_BIND, MS_REC, MS_PRIVATE, MS_RELATIME = 0x1000, 0x4000, 0x40000, 0x200000
# statvfs flags of a mount -> the mount flags a read-only remount must keep.
_KEEP = [(os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC),
         (os.ST_NOATIME, MS_NOATIME), (os.ST_NODIRATIME, MS_NODIRATIME),
         (os.ST_RELATIME, MS_RELATIME)]

_libc = ctypes.CDLL(None, use_errno=True)


class SetupError(Exception):
    """The container's mounts could not be set up; the message says which and why."""


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(err)} (errno {err})")


def _mount(source: Optional[str], target: str, fstype: Optional[str], flags: int,
           data: Optional[str] = None) -> None:
    _check(_libc.mount(source.encode() if source else None, target.encode(),
                       fstype.encode() if fstype else None, ctypes.c_ulong(flags),
                       data.encode() if data else None),
           f"mount {source or fstype or ''} on {target}")


def enter_private_namespace() -> None:
    """A mount namespace of our own whose mounts never propagate anywhere."""
    _check(_libc.unshare(ctypes.c_int(CLONE_NEWNS)), "unshare(CLONE_NEWNS)")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)


class Namespace:
    """The container's view being built: which directories it may create entries in."""

    def __init__(self, staging: str) -> None:
        self.staging = staging
        # Shadowed directories and those made in them: new entries stay in the namespace.
        self.ours: set[str] = set()
        self.volumes: list[str] = []  # mounted volumes: new entries go to the volume

    def ensure(self, path: str, is_dir: bool, what: str) -> None:
        """Make ``path`` exist (as a directory or a file) without touching the host."""
        missing: list[str] = []
        existing = path
        while not os.path.lexists(existing):
            missing.insert(0, os.path.basename(existing))
            existing = os.path.dirname(existing)
        if not missing:
            if is_dir != os.path.isdir(path):
                kinds = ("a directory", "a file")
                raise SetupError(f"{what}: {path} is {kinds[not os.path.isdir(path)]} here, "
                                 f"but the volume is {kinds[not is_dir]}")
            return
        parent = os.path.realpath(existing)
        if not os.path.isdir(parent):
            raise SetupError(f"{what}: {existing} is not a directory")
        if not self._may_create_in(parent):
            parent = self._shadow(parent)
        in_namespace = parent in self.ours
        for i, name in enumerate(missing):
            parent = os.path.join(parent, name)
            if i < len(missing) - 1 or is_dir:
                os.mkdir(parent, 0o755)
                if in_namespace:
                    self.ours.add(parent)
            else:
                open(parent, "x").close()

    def _may_create_in(self, directory: str) -> bool:
        return directory in self.ours or any(
            directory == v or directory.startswith(v.rstrip("/") + "/") for v in self.volumes)

    def _shadow(self, directory: str) -> str:
        """Put a writable tmpfs copy of ``directory`` over it; the directory to create in."""
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            st = os.fstat(fd)
            names = os.listdir(fd)
            where = self.staging if directory == "/" else directory
            if where == self.staging:
                os.makedirs(where, exist_ok=True)
            _mount("tmpfs", where, "tmpfs", 0,
                   f"mode={stat.S_IMODE(st.st_mode):o},uid={st.st_uid},gid={st.st_gid}")
            for name in names:
                # The original entry, reached through the fd: the path now shows the tmpfs.
                source, copy = f"/proc/self/fd/{fd}/{name}", os.path.join(where, name)
                try:
                    entry = os.lstat(source)
                except FileNotFoundError:  # removed meanwhile
                    continue
                if stat.S_ISLNK(entry.st_mode):
                    os.symlink(os.readlink(source), copy)
                    continue
                if stat.S_ISDIR(entry.st_mode):
                    os.mkdir(copy)
                else:
                    open(copy, "x").close()
                _mount(source, copy, None, MS_BIND | MS_REC)
        finally:
            os.close(fd)
        if directory == "/":
            # A mount on / itself is never seen through "/": enter the copy instead.
            os.chdir(where)
            os.chroot(".")
            os.chdir("/")
        self.ours.add(directory)
        return directory

    def mount_volumes(self, mounts: list[dict[str, Any]]) -> None:
        # Sources are opened before anything is shadowed or chrooted: the host's view.
        sources = [os.open(m["source"], os.O_PATH) for m in mounts]
        targets = [os.path.normpath(os.path.join("/", m["target"])) for m in mounts]
        order = sorted(range(len(mounts)), key=lambda i: targets[i].count("/"))
        for i in order:
            m, target = mounts[i], targets[i]
            self.ensure(target, bool(m["dir"]), m["what"])
            _mount(f"/proc/self/fd/{sources[i]}", target, None, MS_BIND | MS_REC)
            self.volumes.append(os.path.realpath(target))
        # Read-only last: a child mount point may have had to be created in a parent volume.
        for i in order:
            if mounts[i]["readOnly"]:
                flags = os.statvfs(targets[i]).f_flag
                keep = sum(ms for st_flag, ms in _KEEP if flags & st_flag)
                _mount(None, targets[i], None, MS_REMOUNT | MS_BIND | MS_RDONLY | keep)
        for fd in sources:
            os.close(fd)


def _fail(errfd: int, stage: str, errno: int, message: str) -> NoReturn:
    os.write(errfd, f"{stage}\0{errno}\0{message}".encode())
    os._exit(127 if stage == "exec" else 1)


def run(plan: dict[str, Any], argv: list[str]) -> NoReturn:
    errfd = int(plan["errfd"])
    try:
        enter_private_namespace()
        ns = Namespace(plan["staging"])
        ns.mount_volumes(plan["mounts"])
        cwd = plan["cwd"]
        ns.ensure(os.path.normpath(cwd), True, f"workingDir {cwd}")
        os.chdir(cwd)
    except (SetupError, OSError) as e:
        _fail(errfd, "setup", getattr(e, "errno", None) or 0, str(e))
    os.set_inheritable(errfd, False)  # closed by a successful exec: "started"
    try:
        os.execvp(argv[0], argv)
    except OSError as e:
        _fail(errfd, "exec", e.errno or 0, e.strerror or str(e))


def probe(directory: str) -> int:
    try:
        enter_private_namespace()
        _mount("tmpfs", directory, "tmpfs", 0)
    except SetupError as e:
        print(e, file=sys.stderr)
        return 1
    return 0


def main(args: list[str]) -> int:
    if len(args) == 2 and args[0] == "--probe":
        return probe(args[1])
    if len(args) < 3 or args[1] != "--":
        print("usage: kubelet_mountns.py PLAN -- ARGV... | --probe DIR", file=sys.stderr)
        return 2
    run(json.loads(args[0]), args[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
