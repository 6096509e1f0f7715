"""A trial as a local process group, with its record on disk.

Each trial has a directory holding ``stdout.log`` (the command's output), ``pid`` (the
wrapper's pid and start time), ``lock`` and, once it ended, ``exitcode``. Starting is
idempotent: a trial whose process is still alive is adopted instead of started again, so a
runner restarted after ``kill -9`` neither loses nor duplicates it.

Whether it is alive is told by ``lock``, not by ``pid``: the runner takes an exclusive
``flock`` on it before it starts the wrapper and hands the locked descriptor to the wrapper,
which holds it for its whole life (the command does not inherit it). A runner killed after
starting the wrapper but before writing ``pid`` would otherwise start the trial a second
time; with the lock, a runner that resumes finds it held and adopts the trial (the wrapper
writes its pid into ``lock`` and ``pid`` itself). The kernel drops the lock when the wrapper
exits in any way, so a free lock and no ``exitcode`` mean that nothing runs.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

__all__ = ["ProcessSpec", "TrialProcess", "WRAPPER", "stop_all", "output_tail"]

log = logging.getLogger(__name__)

WRAPPER = str(Path(__file__).with_name("trialwrap.py"))
# How long a resuming runner waits for a live wrapper to write its pid (it does so first).
_PID_WAIT = 30.0


@dataclass
class ProcessSpec:
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None


def _start_ticks(pid: int) -> str | None:
    """The process start time in clock ticks since boot (Linux), to tell a pid that was
    reused by another process from the one we started."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lock_holder(path: Path) -> bool | None:
    """Whether a trial's wrapper holds its lock file; None when there is no lock file."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return True
        raise
    finally:
        os.close(fd)  # drops the lock if this probe took it
    return False


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class TrialProcess:
    """One trial's process group. ``directory`` is the trial's record on disk."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._popen: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None
        self._term_sent: float | None = None

    @property
    def log_path(self) -> Path:
        return self.directory / "stdout.log"

    @property
    def pid(self) -> int | None:
        return self._pid

    # -- lifecycle -----------------------------------------------------------------------
    def start(self, spec: ProcessSpec) -> None:
        """Start the command (or adopt it if its process is still running)."""
        if self.adopt():
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        # O_CLOEXEC: of the processes this runner starts, only the wrapper gets it (pass_fds).
        lock = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # a wrapper started since adopt() looked: take it over
                os.close(lock)
                lock = -1
                if self.adopt():
                    return
                raise RuntimeError(f"{self.directory}: the trial's lock is held by a process that "
                                   "recorded no pid; stop it, then run again") from None
            os.ftruncate(lock, 0)  # the previous attempt's pid
            for name in ("exitcode", "exitcode.tmp"):
                (self.directory / name).unlink(missing_ok=True)
            self._popen = subprocess.Popen(
                [sys.executable, "-I", "-S", WRAPPER, str(self.directory), f"--lock-fd={lock}", "--",
                 *spec.command],
                cwd=spec.cwd, env=spec.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True, pass_fds=(lock,),
            )
        finally:
            if lock >= 0:
                os.close(lock)  # the wrapper's copy holds the lock now
        self._pid = self._popen.pid
        ticks = _start_ticks(self._pid) or ""
        _write_atomically(self.directory / "pid", f"{self._pid} {ticks}\n")

    def adopt(self) -> bool:
        """Take over the trial's process if it is still running."""
        if self._pid is not None:
            return True
        held = _lock_holder(self.directory / "lock")
        if held is True:
            found = self._wait_for_pid()
            if found is None:  # it exited meanwhile
                return False
            pid = found
        elif held is False:  # its wrapper has exited (or never started)
            return False
        else:  # no lock: started by an earlier version, which recorded only the pid
            record = self.directory / "pid"
            if not record.exists():
                return False
            try:
                pid_text, _, ticks = record.read_text().strip().partition(" ")
                pid = int(pid_text)
            except ValueError:
                return False
            if not _alive(pid) or (ticks and _start_ticks(pid) != ticks):
                return False
        self._pid = pid
        log.info("adopted running trial process %d in %s", pid, self.directory)
        return True

    def _wait_for_pid(self) -> int | None:
        """The pid of the wrapper that holds the lock, or None once the lock is free. It
        writes it before it starts the command, but a runner may look in the few
        milliseconds before that."""
        deadline = time.monotonic() + _PID_WAIT
        while True:
            for name in ("lock", "pid"):
                try:
                    pid_text, _, ticks = (self.directory / name).read_text().strip().partition(" ")
                    pid = int(pid_text)
                except (OSError, ValueError):
                    continue
                if _alive(pid) and (not ticks or _start_ticks(pid) == ticks):
                    return pid
            if _lock_holder(self.directory / "lock") is not True:
                return None
            if time.monotonic() >= deadline:
                raise RuntimeError(f"{self.directory}: the trial's lock is held by a process that "
                                   "recorded no pid; stop it, then run again")
            time.sleep(0.01)

    def recorded(self) -> bool:
        """Whether this trial was started before (by this or an earlier runner)."""
        return (self.directory / "pid").exists()

    def exit_code(self) -> int | None:
        """The command's exit status once it ended, else None. A negative value is the
        signal that ended it."""
        if self._popen is not None:
            self._popen.poll()  # reap the wrapper so no zombie stays behind
        path = self.directory / "exitcode"
        if path.exists():
            try:
                return int(path.read_text().strip())
            except ValueError:
                return -1
        return None

    def running(self) -> bool:
        if self._popen is not None:
            return self._popen.poll() is None
        return self._pid is not None and _alive(self._pid) and _start_ticks(self._pid) is not None

    def ended_without_record(self) -> bool:
        """The process is gone but left no exit status (the wrapper itself was killed)."""
        return not self.running() and self.exit_code() is None

    def terminate(self) -> None:
        """SIGTERM the trial's process group (idempotent)."""
        if self._pid is None or self._term_sent is not None:
            return
        self._term_sent = time.monotonic()
        self._signal(signal.SIGTERM)

    def kill_if_overdue(self, grace: float) -> bool:
        """SIGKILL the group if SIGTERM was sent more than ``grace`` seconds ago."""
        if self._term_sent is not None and time.monotonic() - self._term_sent >= grace and self.running():
            self._signal(signal.SIGKILL)
            return True
        return False

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL; blocks until gone."""
        self.terminate()
        deadline = time.monotonic() + grace
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.running():
            self._signal(signal.SIGKILL)
            while self.running():
                time.sleep(0.02)

    def _signal(self, sig: int) -> None:
        assert self._pid is not None
        try:
            os.killpg(self._pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            log.warning("not allowed to signal trial process group %d", self._pid)


def stop_all(procs: Sequence[Any], grace: float) -> None:
    """SIGTERM every trial at once (adopting those an earlier runner started), wait up to
    ``grace`` seconds for them all, then SIGKILL the rest: n trials take one grace period."""
    for proc in procs:
        if proc.adopt() or proc.running():
            proc.terminate()
    deadline = time.monotonic() + grace
    while any(p.running() for p in procs) and time.monotonic() < deadline:
        time.sleep(0.05)
    for proc in procs:
        if proc.running():
            proc.stop(0)


def output_tail(path: Path, lines: int = 5, traceback_lines: int = 60) -> str:
    """The last ``lines`` lines of a trial's output, or, when a Python traceback ends it, the
    whole traceback (up to ``traceback_lines``): its last 5 lines rarely reach the user's own
    frame. Empty when there is no output."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - (1 << 16)))  # a traceback sits at the end of a large log
            text = f.read().decode(errors="replace").rstrip().splitlines()
    except OSError:
        return ""
    recent = text[-traceback_lines:]
    starts = [i for i, line in enumerate(recent) if line.startswith("Traceback (most recent call last):")]
    text = recent[starts[-1]:] if starts else text[-lines:]
    return "\n".join(text)
