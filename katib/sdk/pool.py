"""Warm worker processes for local ``tune()`` trials, and the trial handle the runner drives.

``LocalRunner`` starts every trial through ``RunOptions.process_factory(directory)``; for
``tune()`` that is ``FunctionTrial``, which offers the interface of
``katib.backends.local.process.TrialProcess`` but, instead of exec'ing the trial's command,
parses it (``katib.sdk.objective.parse_argv``) and hands the typed parameters to an idle
worker of a ``WorkerPool``. A worker (``katib.sdk.worker``) has the objective loaded
already, so a trial costs a pipe round trip instead of an interpreter start and imports.

The trial's record on disk is the one ``TrialProcess`` keeps: ``stdout.log`` and, once it
ended, ``exitcode``, written by the worker before it answers. A finished trial sets the
runner's ``wake`` event so the loop reacts at once. Stopping a trial (early stopping, Ctrl-C,
the experiment's end) kills its worker's process group; the next trial gets a fresh worker.
A worker that dies mid-trial leaves no ``exitcode`` and the runner marks the trial Failed.
"""

from __future__ import annotations

import itertools
import logging
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Callable

from katib.sdk.objective import parse_argv

__all__ = ["WorkerPool", "FunctionTrial", "Task", "ENTRY_MODULE"]

log = logging.getLogger(__name__)

ENTRY_MODULE = "katib.sdk.objective"  # what the trial template runs (see katib.sdk.experiment)
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # so workers import this katib


@dataclass
class Task:
    id: int
    directory: Path
    code: int | None = None  # the exit code, once the worker answered
    lost: bool = False  # the worker died before answering
    done: threading.Event = field(default_factory=threading.Event)
    worker: "_Worker | None" = None


class _Worker:
    def __init__(self, popen: subprocess.Popen[bytes], tasks: Connection, results: Connection) -> None:
        self.popen = popen
        self.tasks = tasks
        self.results = results
        self.task: Task | None = None
        self.alive = True
        self.send_lock = threading.Lock()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def send(self, message: tuple[Any, ...]) -> None:
        with self.send_lock:
            self.tasks.send_bytes(pickle.dumps(message))

    def signal(self, sig: int) -> None:
        try:
            os.killpg(self.popen.pid, sig)  # its own session: children of the objective too
        except (ProcessLookupError, PermissionError):
            pass


class WorkerPool:
    """Worker processes holding one objective. Thread-safe; workers are started on demand
    (``start(n)`` warms ``n`` up front) and reused while they live."""

    def __init__(self, objective: Callable[..., Any], *, wake: threading.Event | None = None,
                 python: str = sys.executable, env: dict[str, str] | None = None) -> None:
        import cloudpickle  # type: ignore[import-untyped]  # functions from __main__, lambdas and closures travel by value

        try:
            self._payload = cloudpickle.dumps(objective)
        except Exception as exc:
            raise ValueError(f"the objective cannot be sent to a worker process: {exc}; define it at module "
                             "level or make what it captures picklable") from exc
        self.wake = wake or threading.Event()
        self._python = python
        base = dict(os.environ if env is None else env)
        base["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, base.get("PYTHONPATH")) if p)
        base["PYTHONUNBUFFERED"] = "1"
        self._env = base
        self._sys_path = [p for p in sys.path if p]
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._workers: set[_Worker] = set()
        self._ids = itertools.count(1)
        self._closed = False
        self.load_error: str | None = None
        self.started = 0  # workers started so far (a number tests and benchmarks read)

    @property
    def payload(self) -> bytes:
        """The pickled objective (cloudpickle) every worker loads."""
        return self._payload

    # -- workers ---------------------------------------------------------------------------
    def start(self, n: int) -> None:
        """Start workers until ``n`` are idle, so the first trials find them warm."""
        with self._lock:
            missing = n - len(self._idle)
        for _ in range(max(0, missing)):
            worker = self._spawn()
            with self._lock:
                self._idle.append(worker)

    def _spawn(self) -> _Worker:
        task_r, task_w = os.pipe()
        result_r, result_w = os.pipe()
        try:
            popen = subprocess.Popen(
                [self._python, "-u", "-m", "katib.sdk.worker", str(task_r), str(result_w), str(os.getpid())],
                pass_fds=(task_r, result_w), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                env=self._env, start_new_session=True)
        finally:
            os.close(task_r)
            os.close(result_w)
        worker = _Worker(popen, Connection(task_w, readable=False), Connection(result_r, writable=False))
        with self._lock:
            self._workers.add(worker)
            self.started += 1
        threading.Thread(target=self._read, args=(worker,), name=f"katib-worker-{popen.pid}", daemon=True).start()
        worker.send(("load", {"objective": self._payload, "sys_path": self._sys_path}))
        return worker

    def _read(self, worker: _Worker) -> None:
        while True:
            try:
                message = pickle.loads(worker.results.recv_bytes())
            except (EOFError, OSError):
                break
            if message[0] == "ready" and message[2] and self.load_error is None:
                self.load_error = message[2]
                log.error("the objective could not be loaded in a worker process:\n%s", message[2])
            elif message[0] == "done":
                with self._lock:
                    task = worker.task
                    if task is not None and task.id == message[1]:
                        task.code = message[2]
                        worker.task = None
                        if not self._closed:
                            self._idle.append(worker)
                if task is not None:
                    task.done.set()
                self.wake.set()
        with self._lock:
            worker.alive = False
            self._workers.discard(worker)
            if worker in self._idle:
                self._idle.remove(worker)
            task = worker.task
            worker.task = None
        worker.results.close()
        if task is not None and task.code is None:
            task.lost = True
            task.done.set()
        self.wake.set()

    # -- trials ----------------------------------------------------------------------------
    def submit(self, directory: Path, params: dict[str, Any], env: dict[str, str], cwd: str | None,
               metric: str, report: str = "print") -> Task:
        """Run one trial on an idle worker (a new one if none is idle)."""
        if self._closed:
            raise RuntimeError("the worker pool is closed")
        with self._lock:
            worker = None
            while self._idle and worker is None:
                candidate = self._idle.pop()
                if candidate.alive and candidate.popen.poll() is None:
                    worker = candidate
        if worker is None:
            worker = self._spawn()
        task = Task(next(self._ids), directory, worker=worker)
        with self._lock:
            worker.task = task
        body = {"id": task.id, "directory": str(directory), "params": params, "env": env, "cwd": cwd,
                "metric": metric, "report": report}
        try:
            worker.send(("run", body))
        except OSError:  # died between the check and the send: the reader marks the task lost
            pass
        return task

    def signal(self, task: Task, sig: int) -> None:
        """Signal the worker running ``task``, if it still runs it."""
        with self._lock:
            worker = task.worker
            current = worker is not None and worker.task is task and task.code is None
        if current and worker is not None:
            worker.signal(sig)

    def close(self, grace: float = 2.0) -> None:
        """End every worker: idle ones exit when their pipe closes, busy ones are killed."""
        with self._lock:
            self._closed = True
            workers = list(self._workers)
            self._idle.clear()
        for w in workers:
            if w.task is not None:
                w.signal(signal.SIGKILL)
            try:
                w.tasks.close()
            except OSError:
                pass
        deadline = time.monotonic() + grace
        for w in workers:
            try:
                w.popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                w.signal(signal.SIGKILL)
                w.popen.wait()

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FunctionTrial:
    """A trial run by a ``WorkerPool``, with ``TrialProcess``'s interface."""

    def __init__(self, directory: Path, pool: WorkerPool) -> None:
        self.directory = directory
        self.pool = pool
        self.task: Task | None = None
        self._term_sent: float | None = None

    @property
    def log_path(self) -> Path:
        return self.directory / "stdout.log"

    def start(self, spec: Any) -> None:
        """Parse the trial's command (``... -m katib.sdk.objective OPTIONS -- TYPES NAME VALUE ...``)
        and run it on a worker."""
        command = list(spec.command)
        if ENTRY_MODULE not in command:
            raise ValueError(f"a tune() trial runs {ENTRY_MODULE}; got the command {command!r}")
        options, params = parse_argv(command[command.index(ENTRY_MODULE) + 1:])
        self.directory.mkdir(parents=True, exist_ok=True)
        for name in ("exitcode", "exitcode.tmp"):
            (self.directory / name).unlink(missing_ok=True)
        self.log_path.write_bytes(b"")  # a re-run trial starts a fresh log
        self._term_sent = None
        self.task = self.pool.submit(self.directory, params, dict(spec.env), spec.cwd,
                                     options.get("metric", "objective"), options.get("report", "print"))

    def adopt(self) -> bool:
        # Workers end with the tune() process that started them; nothing survives to adopt.
        return False

    def recorded(self) -> bool:
        """Started by this process, or ended with a record. A trial of an earlier tune()
        call that left no exit status is not "recorded", so a resumed run starts it again."""
        return self.task is not None or (self.directory / "exitcode").exists()

    def exit_code(self) -> int | None:
        task = self.task
        if task is not None:
            return task.code
        path = self.directory / "exitcode"
        try:
            return int(path.read_text().strip())
        except FileNotFoundError:
            return None
        except ValueError:
            return -1

    def running(self) -> bool:
        task = self.task
        if task is None or task.code is not None or task.lost or task.worker is None:
            return False
        return task.worker.popen.poll() is None

    def ended_without_record(self) -> bool:
        return not self.running() and self.exit_code() is None

    def terminate(self) -> None:
        if self.task is None or self._term_sent is not None or not self.running():
            return
        self._term_sent = time.monotonic()
        self.pool.signal(self.task, signal.SIGTERM)

    def kill_if_overdue(self, grace: float) -> bool:
        if self._term_sent is not None and time.monotonic() - self._term_sent >= grace and self.running():
            assert self.task is not None
            self.pool.signal(self.task, signal.SIGKILL)
            return True
        return False

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL; returns once it ended."""
        task = self.task
        if task is None or not self.running():
            return
        self.terminate()
        if not task.done.wait(grace) and self.running():
            self.pool.signal(task, signal.SIGKILL)
        task.done.wait()
