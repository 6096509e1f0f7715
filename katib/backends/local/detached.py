"""A runner in its own process: ``katib resume NAME`` started in a new session, so it lives
on after whoever started it (the dashboard, a notebook) and ignores their terminal's Ctrl-C.

It uses the same store (``KATIB_DB_URL`` in its environment: a password stays out of the
process list), the same ``KATIB_HOME`` and this interpreter; its output is appended to the
experiment's ``runs/<namespace>/<experiment>/runner.log``. ``start`` returns once the new
runner holds the experiment's lock, so that ``KatibClient.is_running_locally`` is true from
then on, or raises with the end of that log when it could not start.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from katib.errors import ServiceError

__all__ = ["start", "LOG_NAME"]

log = logging.getLogger(__name__)

LOG_NAME = "runner.log"
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[3])  # so the runner imports this katib


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_bytes()[-8192:].decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def start(store: Any, name: str, namespace: str, *, workdir: str | None = None, timeout: float = 30.0) -> int:
    """Start ``katib resume`` for a stored experiment; returns its pid. ``workdir``: where
    trial commands run (default: where they ran last, else this process's working directory)."""
    from katib.backends.local import katib_home
    from katib.backends.local.control import runner_pid
    from katib.backends.local.runner import WORKDIR_FILE, run_directory

    url = store.url
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        raise ValueError("an in-memory SQLite store cannot be shared with a runner process; "
                         "use a database file (db_url='sqlite:///PATH')")
    home = katib_home()
    directory = run_directory(home, namespace, name)
    directory.mkdir(parents=True, exist_ok=True)
    log_path = directory / LOG_NAME
    env = dict(os.environ)
    env.update(KATIB_DB_URL=url.render_as_string(hide_password=False), KATIB_HOME=str(home), PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
    if workdir is None:  # where the experiment's trials ran last, so relative paths mean the same
        recorded = directory / WORKDIR_FILE
        workdir = recorded.read_text() if recorded.exists() else os.getcwd()
        workdir = workdir if os.path.isdir(workdir) else os.getcwd()
    command = [sys.executable, "-m", "katib.cli", "resume", name, "--namespace", namespace, "--quiet"]
    with open(log_path, "ab") as out:
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        out.write(f"--- {stamp} katib resume {name} (started by pid {os.getpid()})\n".encode())
        out.flush()
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                cwd=workdir, env=env, start_new_session=True)
    deadline = time.monotonic() + timeout
    while True:
        code = proc.poll()
        if code is not None:
            if code == 0:  # it ran the experiment to its end already
                return proc.pid
            raise ServiceError(f"the runner of experiment {namespace}/{name} exited with status {code} before it "
                               f"started; {log_path} ends with:\n{_tail(log_path)}", retryable=False)
        if runner_pid(name, namespace) is not None:
            break
        if time.monotonic() >= deadline:
            proc.kill()
            raise ServiceError(f"the runner of experiment {namespace}/{name} did not start within {timeout:g} s; "
                               f"see {log_path}", retryable=True)
        time.sleep(0.05)
    # Reap it when it ends, so a long-lived caller (the dashboard) keeps no zombies.
    threading.Thread(target=proc.wait, name=f"katib-runner-{proc.pid}", daemon=True).start()
    log.info("experiment %s/%s: runner started (pid %d, output in %s)", namespace, name, proc.pid, log_path)
    return proc.pid
