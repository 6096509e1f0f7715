"""What the dashboard tests share: experiments run for real (``katib run``, ``katib.tune()``),
``katib ui`` started as a real process on a free port, and a small HTTP client."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

# Four grid trials over lr; lr=0.9 prints its epochs and then raises (a Failed trial with a
# traceback in its log).
GRID_TRIAL = textwrap.dedent("""
    import sys, time
    lr = float(sys.argv[1])
    for step in range(1, 4):
        print(f"epoch {step}: accuracy={1 - (lr - 0.3) ** 2 - 0.1 / step:.6f} loss={(lr - 0.3) ** 2 + 0.1 / step:.6f}",
              flush=True)
        time.sleep(float(sys.argv[3]) if len(sys.argv) > 3 else 0.0)
    if lr > 0.8:
        raise ValueError(f"learning rate {lr} diverged")
""")


def grid_yaml(name: str, *, values: tuple[str, ...] = ("0.1", "0.3", "0.5", "0.9"), sleep: float = 0.0,
              max_trials: int | None = None, parallel: int = 2) -> str:
    args = ["python3", "-c", GRID_TRIAL, "${trialParameters.lr}", "${trialParameters.opt}", str(sleep)]
    doc = {
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": name},
        "spec": {
            "objective": {"type": "maximize", "objectiveMetricName": "accuracy", "additionalMetricNames": ["loss"]},
            "algorithm": {"algorithmName": "grid"},
            "parallelTrialCount": min(parallel, max_trials or len(values)), "maxTrialCount": max_trials or len(values),
            "maxFailedTrialCount": min(3, max_trials or len(values)),
            "parameters": [
                {"name": "lr", "parameterType": "discrete", "feasibleSpace": {"list": list(values)}},
                {"name": "opt", "parameterType": "categorical", "feasibleSpace": {"list": ["sgd"]}},
            ],
            "trialTemplate": {
                "primaryContainerName": "main",
                "trialParameters": [{"name": "lr", "reference": "lr"}, {"name": "opt", "reference": "opt"}],
                "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
                    "containers": [{"name": "main", "image": "local", "command": args}],
                    "restartPolicy": "Never"}}}},
            },
        },
    }
    return json.dumps(doc, indent=1)


TUNE_SCRIPT = textwrap.dedent("""
    import katib

    def objective(params):
        for step in range(1, 4):
            katib.report_metrics({"score": params["x"] * step / 3 - (params["y"] - 2) ** 2}, step=step)

    katib.tune(objective, {"x": katib.search.double(0, 1), "y": katib.search.int(0, 4)}, name="ui-tune",
               objective_metric_name="score", max_trial_count=5, parallel_trial_count=2, progress=False)
""")


def env_for(home: Path, url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"KATIB_HOME": str(home), "KATIB_DB_URL": url, "PYTHONPATH": str(ROOT),
                "PYTHONUNBUFFERED": "1"})
    return env


def katib(home: Path, url: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "katib.cli", *args], env=env_for(home, url), cwd=home,
                          capture_output=True, text=True, timeout=timeout)


def fill(home: Path, url: str) -> None:
    """The store every dashboard test reads: ``ui-grid`` by ``katib run`` (one trial fails)
    and ``ui-tune`` by ``katib.tune()``."""
    path = home / "grid.yaml"
    path.write_text(grid_yaml("ui-grid"))
    done = katib(home, url, "run", str(path), "-q")
    assert "ui-grid" in done.stdout + done.stderr, done.stderr
    script = home / "tune.py"
    script.write_text(TUNE_SCRIPT)
    tuned = subprocess.run([sys.executable, str(script)], env=env_for(home, url), cwd=home, capture_output=True,
                           text=True, timeout=180)
    assert tuned.returncode == 0, tuned.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """``katib ui`` running as its own process."""

    url: str
    process: subprocess.Popen[str]
    home: Path
    log_path: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_server(home: Path, url: str, *args: str, ready: str = "/api/info", timeout: float = 30) -> Server:
    port = free_port()
    log_path = home / f"ui-{port}.log"
    out = open(log_path, "w")
    process = subprocess.Popen([sys.executable, "-m", "katib.cli", "ui", "--port", str(port), *args],
                               env=env_for(home, url), cwd=home, stdout=out, stderr=subprocess.STDOUT, text=True)
    out.close()
    server = Server(f"http://127.0.0.1:{port}", process, home, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"katib ui exited with {process.returncode}:\n{server.log()}")
        try:
            with urllib.request.urlopen(server.url + ready, timeout=2):
                return server
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"katib ui did not answer within {timeout} s:\n{server.log()}")


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


def call(url: str, method: str = "GET", body: Any = None, *, ui_header: bool = True, timeout: float = 60,
         headers: dict[str, str] | None = None) -> Answer:
    """One request; JSON answers decoded (errors included), text otherwise."""
    data = None
    sent = dict(headers or {})
    if body is not None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    if ui_header and method != "GET":
        sent["X-Katib-UI"] = "1"
    request = urllib.request.Request(url, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw, got = response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as err:
        status, raw, got = err.code, err.read(), dict(err.headers)
    text = raw.decode(errors="replace")
    try:
        return Answer(status, json.loads(text), got)
    except ValueError:
        return Answer(status, text, got)


def wait_for(predicate: Any, timeout: float = 30, interval: float = 0.2, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def stop_runners(home: Path, url: str) -> None:
    """Stop any runner the tests started (created or resumed experiments run detached)."""
    env = env_for(home, url)
    script = textwrap.dedent("""
        import os, signal
        from katib.backends.local.control import runner_pid
        from katib.store import Store
        for exp in Store().list_experiments(None):
            pid = runner_pid(exp.name, exp.metadata.namespace or "default")
            if pid:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
    """)
    subprocess.run([sys.executable, "-c", script], env=env, cwd=home, capture_output=True, timeout=60)
