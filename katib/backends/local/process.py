"""A trial as a local process group, with its record on disk.

Each trial has a directory holding ``stdout.log`` (the command's output), ``pid`` (the
wrapper's pid and start time) and, once it ended, ``exitcode``. Starting is idempotent: a
trial whose recorded process is still alive is adopted instead of started again, so a
runner restarted after ``kill -9`` neither loses nor duplicates it.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ProcessSpec", "TrialProcess", "WRAPPER"]

log = logging.getLogger(__name__)

WRAPPER = str(Path(__file__).with_name("trialwrap.py"))


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
        """Start the command (or adopt it if its recorded process is still running)."""
        if self.adopt():
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        for name in ("exitcode", "exitcode.tmp"):
            (self.directory / name).unlink(missing_ok=True)
        self._popen = subprocess.Popen(
            [sys.executable, "-I", "-S", WRAPPER, str(self.directory), "--", *spec.command],
            cwd=spec.cwd, env=spec.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )
        self._pid = self._popen.pid
        ticks = _start_ticks(self._pid) or ""
        (self.directory / "pid").write_text(f"{self._pid} {ticks}\n")

    def adopt(self) -> bool:
        """Take over a process recorded in the directory if it is still the same process."""
        record = self.directory / "pid"
        if self._pid is not None or not record.exists():
            return self._pid is not None
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
