"""One runner per experiment: the lock `katib run`, tune() and LocalRunner take."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from katib.backends.local.lock import runner_lock
from katib.errors import AlreadyExistsError

HOLD = """
import sys, time
from pathlib import Path
from katib.backends.local.lock import runner_lock
with runner_lock(Path(sys.argv[1]), "exp"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_reentrant_in_its_thread_and_refused_to_another(tmp_path: Path) -> None:
    refused: list[BaseException] = []

    def rival() -> None:
        try:
            with runner_lock(tmp_path, "exp"):
                pass
        except AlreadyExistsError as exc:
            refused.append(exc)

    with runner_lock(tmp_path, "exp"):
        with runner_lock(tmp_path, "exp"):  # the runner inside katib run / tune()
            pass
        thread = threading.Thread(target=rival)
        thread.start()
        thread.join()
        assert len(refused) == 1 and "already being run" in str(refused[0])
    with runner_lock(tmp_path, "exp"):  # released once the outer block ended
        pass


def test_another_process_is_refused_until_the_holder_dies(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(AlreadyExistsError, match=f"pid {holder.pid}"):
            with runner_lock(tmp_path, "exp"):
                pass
    finally:
        holder.kill()  # SIGKILL: the kernel drops the lock with the process
        holder.wait()
    with runner_lock(tmp_path, "exp"):
        assert (tmp_path / ".runner").read_text() == str(os.getpid())
