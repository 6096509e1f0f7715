"""`katib run` with a remote suggestion service that goes away: a real gRPC server stopped and
started again on the same port while a real `katib run` runs its trials."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from katib.store import Store
from suggestion.service import serve
from tests.backends.localexp import experiment, write
from tests.rpc.doubles import free_port

# The first trial to start waits while GATE exists, the others while HOLD exists: the test
# decides when trials end, so it can take the service away while they run.
GATED_TRIAL = """
import os, sys, time
x, gate, hold = sys.argv[1], sys.argv[2], sys.argv[3]
print(f"accuracy={x}", flush=True)
try:
    os.close(os.open(gate + ".taken", os.O_CREAT | os.O_EXCL))
    wait_for = gate
except FileExistsError:
    wait_for = hold
while os.path.exists(wait_for):
    time.sleep(0.05)
"""


def gated(tmp_path: Path, name: str, max_trials: int) -> tuple[dict[str, Any], Path, Path]:
    gate, hold = tmp_path / "gate", tmp_path / "hold"
    gate.touch()
    hold.touch()
    doc = experiment(name, max_trials=max_trials, parallel=2,
                     objective={"type": "maximize", "objectiveMetricName": "accuracy"},
                     command=["python3", "-c", GATED_TRIAL, "${trialParameters.x}", str(gate), str(hold)])
    return doc, gate, hold


def start(path: Path, port: int, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "katib.cli", "run", str(path), "-q", "--suggestion-address",
                             f"random=127.0.0.1:{port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **env})


def wait_for(check: Callable[[], bool], proc: subprocess.Popen[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"katib run ended ({proc.returncode}) first:\n{out}\n{err}")
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def states(name: str) -> dict[str, str]:
    try:
        return {t.name: t.status.state for t in Store().list_trials(name)}
    except Exception:  # noqa: BLE001 - not created yet
        return {}


def running_message(name: str) -> str:
    try:
        exp = Store().get_experiment(name)
    except Exception:  # noqa: BLE001 - not created yet
        return ""
    cond = exp.status.condition("Running") if exp.status else None
    return cond.message or "" if cond is not None else ""


def outage_seconds(name: str) -> int:
    found = re.search(r"unavailable, retrying \(since (\d+) s\)", running_message(name))
    return int(found.group(1)) if found else -1


def test_katib_run_waits_out_an_outage_and_keeps_collecting(tmp_path: Path) -> None:
    port = free_port()
    server = serve(port, "127.0.0.1")
    doc, gate, hold = gated(tmp_path, "outage", max_trials=4)
    path = write(tmp_path, doc)
    proc = start(path, port)
    try:
        wait_for(lambda: list(states("outage").values()) == ["Running", "Running"], proc)
        server.stop(0).wait()
        gate.unlink()
        hold.unlink()  # both trials end while the service is away
        # The run waits, saying so in the experiment's status, and records the trials that end.
        wait_for(lambda: outage_seconds("outage") >= 6, proc)
        assert sorted(states("outage").values()) == ["Succeeded", "Succeeded"]
        assert proc.poll() is None
        server = serve(port, "127.0.0.1")  # back on the same port
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        server.stop(0)
    assert proc.returncode == 0, out + err
    assert f"suggestion service at 127.0.0.1:{port} unavailable, retrying" in err
    final = Store().list_trials("outage")
    assert len(final) == 4 and all(t.status.state == "Succeeded" for t in final)
    assert "unavailable" not in running_message("outage")


def test_katib_run_gives_up_after_the_suggestion_timeout_and_resumes_later(tmp_path: Path) -> None:
    port = free_port()
    server = serve(port, "127.0.0.1")
    doc, gate, hold = gated(tmp_path, "gone", max_trials=3)
    path = write(tmp_path, doc)
    proc = start(path, port, KATIB_SUGGESTION_TIMEOUT="2")  # or --suggestion-timeout 2
    try:
        wait_for(lambda: list(states("gone").values()) == ["Running", "Running"], proc)
        server.stop(0).wait()
        gate.unlink()  # one trial ends; the other runs on while the service is away
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, out + err
    assert f"suggestion service at 127.0.0.1:{port} unavailable for" in err and "timeout 2)" in err
    assert f"katib run {path}` again to resume experiment 'gone'" in err
    trials = Store().list_trials("gone")
    assert sorted(t.status.state for t in trials) == ["Killed", "Succeeded"]
    stopped = next(t for t in trials if t.status.state == "Killed")
    assert stopped.metadata.annotations.get("katib.kubeflow.org/interrupted") == "true"
    pid = int((Path(os.environ["KATIB_HOME"]) / "runs/default/gone" / stopped.name / "pid").read_text().split()[0])
    with pytest.raises(ProcessLookupError):  # stopped, not left behind as an orphan
        os.killpg(pid, 0)
    exp = Store().get_experiment("gone")
    assert exp.status.condition("Running").reason == "ExperimentInterrupted"  # type: ignore[union-attr]

    hold.unlink()
    server = serve(port, "127.0.0.1")
    try:
        again = subprocess.run([sys.executable, "-m", "katib.cli", "run", str(path), "-q", "--suggestion-address",
                                f"random=127.0.0.1:{port}"], capture_output=True, text=True, timeout=120)
    finally:
        server.stop(0)
    assert again.returncode == 0, again.stdout + again.stderr
    final = {t.name: t.status.state for t in Store().list_trials("gone")}
    assert len(final) == 3 and stopped.name in final and set(final.values()) == {"Succeeded"}


def test_suggestion_timeout_must_be_seconds(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from katib.cli import main

    with pytest.raises(SystemExit):
        main(["run", str(write(tmp_path, experiment("t"))), "--suggestion-timeout", "soon"])
    assert "--suggestion-timeout: expected a number of seconds" in capsys.readouterr().err


def test_outage_backs_off_up_to_a_cap_and_gives_up_after_the_timeout() -> None:
    from katib.backends.local.outage import Outage

    now = [100.0]
    outage = Outage(20.0, "host:1", clock=lambda: now[0])
    assert outage.text() is None and outage.may_ask()
    waits = []
    while outage.gave_up is None:
        outage.failed(RuntimeError("UNAVAILABLE"))
        if outage.gave_up is not None:
            break
        start = now[0]
        while not outage.may_ask():
            now[0] += 0.25
        waits.append(now[0] - start)
    assert waits[:5] == [0.5, 1.0, 2.0, 4.0, 5.0] and max(waits) == 5.0  # doubling, capped
    assert now[0] - 100.0 == 20.0  # the last ask is at the timeout, not after it
    assert outage.gave_up.startswith("suggestion service at host:1 unavailable for 20 s")
    outage = Outage(20.0, "host:1", clock=lambda: now[0])
    outage.failed(RuntimeError("UNAVAILABLE"))
    now[0] += 12
    assert outage.text() == "suggestion service at host:1 unavailable, retrying (since 12 s)"
    outage.answered()
    assert outage.text() is None and outage.may_ask() and outage.gave_up is None
