"""Runs one trial's command and records how it ended, even if the runner is gone.

Started by the local backend as ``python -I -S trialwrap.py DIR [--lock-fd=N] -- COMMAND
ARGS...`` in a new session (its own process group). With ``--lock-fd``, descriptor N is the
trial's ``DIR/lock``, locked by the runner: the wrapper writes its pid and start time into
it and into ``DIR/pid`` before anything else, and holds it (without passing it to the
command) until it exits, so a runner can tell that the trial runs even if it was killed
before it recorded the pid. The command's output goes to ``DIR/stdout.log`` and, once the
command exits, its exit status to ``DIR/exitcode`` (atomically). Because the record lives on
disk, a runner that was killed with ``kill -9`` and started again can adopt the trial: it
keeps reading the log and finds the exit status when the trial ends.

Stdlib only and run without site-packages, so it starts in a few milliseconds.
"""

import os
import signal
import subprocess
import sys


def _start_ticks() -> str:
    """This process's start time in clock ticks since boot (as the runner reads it)."""
    try:
        with open("/proc/self/stat", "rb") as f:
            return f.read().decode(errors="replace").rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _record_pid(trial_dir: str, lock_fd: int) -> None:
    record = f"{os.getpid()} {_start_ticks()}\n".encode()
    os.ftruncate(lock_fd, 0)
    os.pwrite(lock_fd, record, 0)
    tmp = os.path.join(trial_dir, f"pid.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(record)
    os.replace(tmp, os.path.join(trial_dir, "pid"))


def main() -> int:
    args = sys.argv[1:]
    lock_fd = None
    if len(args) >= 2 and args[1].startswith("--lock-fd="):
        lock_fd = int(args.pop(1).partition("=")[2])
    if len(args) < 3 or args[1] != "--":
        sys.stderr.write("usage: trialwrap.py DIR [--lock-fd=N] -- COMMAND [ARGS...]\n")
        return 2
    trial_dir, command = args[0], args[2:]
    # The runner signals the whole process group; the command gets SIGTERM directly, and this
    # wrapper must outlive it to write the exit status.
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGINT, lambda *_: None)
    if lock_fd is not None:
        _record_pid(trial_dir, lock_fd)
    with open(os.path.join(trial_dir, "stdout.log"), "ab", buffering=0) as log:
        try:
            # close_fds (the default) keeps the lock from the command: a command that left
            # children behind would otherwise keep a dead trial looking alive.
            child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     restore_signals=True, close_fds=True)
        except OSError as exc:
            log.write(f"katib: cannot start {command[0]!r}: {exc}\n".encode())
            code = 127
        else:
            while True:
                try:
                    code = child.wait()
                    break
                except InterruptedError:  # pragma: no cover - PEP 475 retries, kept for clarity
                    continue
    tmp = os.path.join(trial_dir, "exitcode.tmp")
    with open(tmp, "w") as f:
        f.write(str(code))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(trial_dir, "exitcode"))
    return 0  # exiting closes the lock descriptor: the trial is over


if __name__ == "__main__":
    sys.exit(main())
