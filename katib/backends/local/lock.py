"""One runner per experiment: an advisory lock on the experiment's run directory.

A second ``katib run`` (or ``tune()``) of an experiment that is still being run would adopt
the same trials and start its own, exceeding ``parallelTrialCount`` and ``maxTrialCount``.
The first runner holds an exclusive ``flock`` on ``runs/<namespace>/<experiment>/.runner``;
the kernel drops it when that process exits in any way (Ctrl-C, crash, ``kill -9``), so a
lock never outlives its runner and resuming after a crash needs nothing cleared.

It guards the runners of one machine, which is where local trials run; two machines sharing
one database each run their own trials and should not run the same experiment.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from katib.errors import AlreadyExistsError

__all__ = ["RunnerLock"]


class RunnerLock:
    """``with RunnerLock(directory, experiment):`` holds the lock or raises AlreadyExistsError."""

    def __init__(self, directory: Path, experiment: str) -> None:
        self.path = directory / ".runner"
        self.experiment = experiment
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise AlreadyExistsError(
                f"experiment {self.experiment!r} is already being run by another `katib run` or "
                f"tune() on this machine (pid {holder}); wait for it to end or stop it (Ctrl-C), "
                f"then run again to resume") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> RunnerLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
