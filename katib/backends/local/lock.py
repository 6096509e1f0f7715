"""One runner per experiment: an advisory lock on the experiment's run directory.

A second ``katib run`` (or ``tune()``) of an experiment that is still being run would adopt
the same trials and start its own, exceeding ``parallelTrialCount`` and ``maxTrialCount``.
The first runner holds an exclusive ``flock`` on ``runs/<namespace>/<experiment>/.runner``;
the kernel drops it when that process exits in any way (Ctrl-C, crash, ``kill -9``), so a
lock never outlives its runner and resuming after a crash needs nothing cleared.

Callers take it before they touch the stored experiment (``katib run`` before it resumes or
edits the budget, ``tune()`` before it writes the objective the workers load) and the runner
takes it again around its loop: the lock is reentrant in the thread that holds it, and
refused to any other thread or process. ``lock_holder`` tells whether a runner holds it (the
dashboard and ``KatibClient`` ask before they start a runner or send one a request).

It guards the runners of one machine, which is where local trials run; two machines sharing
one database each run their own trials and should not run the same experiment.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from katib.errors import AlreadyExistsError

__all__ = ["runner_lock", "lock_holder"]


@dataclass
class _Held:
    fd: int
    thread: int
    depth: int


_held: dict[Path, _Held] = {}
# How long a runner waits for a lock held by someone else: long enough to outlast a
# lock_holder() probe, short enough that a second `katib run` is refused at once.
_PROBE_WAIT = 0.2
_guard = threading.Lock()


@contextmanager
def runner_lock(directory: Path, experiment: str) -> Iterator[None]:
    """Hold the runner lock of the experiment whose run directory is ``directory``, or raise
    AlreadyExistsError naming the process that holds it."""
    path = directory / ".runner"
    me = threading.get_ident()
    with _guard:
        held = _held.get(path)
        if held is not None and held.thread == me:
            held.depth += 1
        elif held is not None:
            raise _busy(experiment, str(os.getpid()))
        else:
            _held[path] = _Held(_acquire(path, experiment), me, 1)
    try:
        yield
    finally:
        with _guard:
            held = _held[path]
            held.depth -= 1
            if held.depth == 0:
                del _held[path]
                os.close(held.fd)  # closing drops the flock


def lock_holder(directory: Path) -> int | None:
    """The pid of the runner holding the lock of the experiment whose run directory is
    ``directory``, or None when no runner holds it. Creates nothing."""
    path = directory / ".runner"
    with _guard:
        if path in _held:
            return os.getpid()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        # Shared and only for an instant: a runner starting meanwhile retries (_acquire).
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        text = os.read(fd, 64).decode(errors="replace").strip()
        return int(text) if text.isdigit() else 0
    finally:
        os.close(fd)  # drops the probe's lock
    return None


def _acquire(path: Path, experiment: str) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_CLOEXEC: trial processes, which outlive a killed runner, must not inherit the lock.
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    deadline = time.monotonic() + _PROBE_WAIT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() < deadline:  # perhaps only lock_holder() probing
                time.sleep(0.01)
                continue
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise _busy(experiment, holder) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def _busy(experiment: str, pid: str) -> AlreadyExistsError:
    return AlreadyExistsError(
        f"experiment {experiment!r} is already being run by another `katib run` or tune() on this "
        f"machine (pid {pid}); wait for it to end or stop it (Ctrl-C), then run again to resume")
