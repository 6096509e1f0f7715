"""A warm worker process for local ``tune()`` trials: ``python -u -m katib.sdk.worker TASK_FD RESULT_FD``.

Started by ``katib.sdk.pool.WorkerPool`` (with subprocess, not fork: the caller may hold
threads, locks or a CUDA context that a fork would copy half-broken). It receives the
objective once (cloudpickle bytes) and then trials over a pipe. For each trial it points fd
1 and 2 at the trial's ``stdout.log`` (so prints, tracebacks and child processes' output
land where the StdOut collector reads them), sets the trial's environment and working
directory, calls the objective through ``katib.sdk.objective.run_objective``, restores fd
1 and 2, writes ``exitcode`` atomically (as ``katib.backends.local.trialwrap`` does) and
answers ``done``. Stopping a trial kills this process; the pool starts a fresh one.

Messages are pickled tuples in ``multiprocessing.connection`` frames:
parent -> worker ``("load", {"objective": bytes, "sys_path": [...]})``, ``("run", task)``;
worker -> parent ``("ready", pid, load_error_or_None)``, ``("done", task_id, exit_code)``.
"""

from __future__ import annotations

import os
import pickle
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any, Callable

from katib.sdk.objective import run_objective

__all__ = ["main", "write_exitcode"]


def write_exitcode(directory: str, code: int) -> None:
    """Atomically: a reader sees no file or the whole number, never half of it."""
    tmp = os.path.join(directory, "exitcode.tmp")
    with open(tmp, "w") as f:
        f.write(str(code))
    os.replace(tmp, os.path.join(directory, "exitcode"))


def _watch_parent(parent: int) -> None:
    """Exit when the tune() process is gone (even by kill -9): an orphaned worker would run
    its objective for nobody. Reparenting changes getppid()."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)


class _Redirect:
    """fd 1 and 2 into a trial's log for the duration of a trial."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.saved: tuple[int, int] | None = None

    def __enter__(self) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.saved = (os.dup(1), os.dup(2))
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)

    def __exit__(self, *exc: object) -> None:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        assert self.saved is not None
        os.dup2(self.saved[0], 1)
        os.dup2(self.saved[1], 2)
        os.close(self.saved[0])
        os.close(self.saved[1])


def _reset_report_counts() -> None:
    """``report_metrics`` numbers reports without a step per process; a warm worker runs
    many trials, so each starts counting at 1 again."""
    report = sys.modules.get("katib.sdk.report")
    counts = getattr(report, "_counts", None)
    if isinstance(counts, dict):
        counts.clear()


def _run(objective: Callable[[dict[str, Any]], Any] | None, load_error: str | None, task: dict[str, Any]) -> int:
    directory = task["directory"]
    with _Redirect(os.path.join(directory, "stdout.log")):
        os.environ.clear()
        os.environ.update(task["env"])
        if task.get("cwd"):
            try:
                os.chdir(task["cwd"])
            except OSError as exc:
                print(f"katib: cannot change to the working directory {task['cwd']!r}: {exc}", file=sys.stderr)
                return 1
        _reset_report_counts()
        if objective is None:
            print(f"katib: the objective could not be loaded in the worker process:\n{load_error}",
                  file=sys.stderr, flush=True)
            return 1
        return run_objective(objective, task["params"], task["metric"], task.get("report", "print"))


def main(argv: list[str]) -> int:
    tasks = Connection(int(argv[0]), writable=False)
    results = Connection(int(argv[1]), readable=False)
    parent = int(argv[2]) if len(argv) > 2 else os.getppid()
    if os.getppid() != parent:
        return 1
    threading.Thread(target=_watch_parent, args=(parent,), name="katib-parent-watch", daemon=True).start()
    objective: Callable[[dict[str, Any]], Any] | None = None
    load_error: str | None = None
    while True:
        try:
            kind, body = pickle.loads(tasks.recv_bytes())
        except (EOFError, OSError):
            return 0  # the pool closed: no more trials
        if kind == "load":
            sys.path[:0] = [p for p in body.get("sys_path", []) if p not in sys.path]
            try:
                objective = pickle.loads(body["objective"])  # noqa: S301 - bytes from our own parent
            except BaseException:  # noqa: BLE001 - reported to the parent and into every trial's log
                load_error = traceback.format_exc()
            results.send_bytes(pickle.dumps(("ready", os.getpid(), load_error)))
        elif kind == "run":
            try:
                code = _run(objective, load_error, body)
            except BaseException:  # noqa: BLE001 - a broken task must not take the worker down silently
                code = 1
                try:
                    with open(os.path.join(body["directory"], "stdout.log"), "a") as log:
                        log.write("katib worker: " + traceback.format_exc())
                except OSError:
                    pass
            write_exitcode(body["directory"], code)
            results.send_bytes(pickle.dumps(("done", body["id"], code)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
