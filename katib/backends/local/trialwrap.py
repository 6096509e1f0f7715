"""Runs one trial's command and records how it ended, even if the runner is gone.

Started by the local backend as ``python -I -S trialwrap.py DIR -- COMMAND ARGS...`` in a new
session (its own process group). It writes the command's output to ``DIR/stdout.log`` and, once
the command exits, its exit status to ``DIR/exitcode`` (atomically). Because the record lives
on disk, a runner that was killed with ``kill -9`` and started again can adopt the trial: it
keeps reading the log and finds the exit status when the trial ends.

Stdlib only and run without site-packages, so it starts in a few milliseconds.
"""

import os
import signal
import subprocess
import sys


def main() -> int:
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        sys.stderr.write("usage: trialwrap.py DIR -- COMMAND [ARGS...]\n")
        return 2
    trial_dir, command = sys.argv[1], sys.argv[3:]
    # The runner signals the whole process group; the command gets SIGTERM directly, and this
    # wrapper must outlive it to write the exit status.
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGINT, lambda *_: None)
    with open(os.path.join(trial_dir, "stdout.log"), "ab", buffering=0) as log:
        try:
            child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     restore_signals=True)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
