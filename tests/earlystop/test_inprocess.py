from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from earlystop.inprocess import EarlyStoppingSession
from katib.api.model import AlgorithmSetting, EarlyStoppingSpec, ExperimentSpec
from tests.earlystop.curves import logs, objective

ROOT = Path(__file__).resolve().parents[2]


def session(**settings: str) -> EarlyStoppingSession:
    spec = ExperimentSpec(objective=objective("maximize"), early_stopping=EarlyStoppingSpec(
        "medianstop", [AlgorithmSetting(k, v) for k, v in settings.items()]))
    s = EarlyStoppingSession.for_experiment(spec)
    assert s is not None
    return s


def test_the_local_runner_sequence() -> None:
    s = session(min_trials_required="2", start_step="2")
    for name, values in (("a", [0.5, 0.6, 0.7]), ("b", [0.4, 0.8, 0.9])):
        assert s.report(name, logs("accuracy", values[:2])) is None
        s.observe(name, logs("accuracy", values[2:]))   # the last logs, after the process ended
        s.trial_finished(name, "Succeeded")
    assert [r.value for r in s.rules()] == [repr(0.7)]  # median(0.6, 0.8) at start_step 2
    decision = s.report("c", logs("accuracy", [0.1, 0.2]))
    assert decision is not None and decision.step == 2 and decision.threshold == 0.7
    s.trial_finished("c", "EarlyStopped")              # joins the references
    assert s.rules()[0].value == repr(0.6)             # median(0.6, 0.8, 0.2)


def test_replay_after_restart_then_report() -> None:
    s = session(min_trials_required="1", start_step="1")
    s.observe("old", logs("accuracy", [0.9]))
    s.trial_finished("old", "Succeeded")
    d = s.report("new", logs("accuracy", [0.5]))
    assert d is not None and d.threshold == 0.9


def test_session_is_safe_to_share_between_collector_threads() -> None:
    s = session(min_trials_required="3", start_step="1")
    for i in range(3):
        s.observe(f"c{i}", logs("accuracy", [0.5] * 50))
        s.trial_finished(f"c{i}", "Succeeded")
    results: dict[str, object] = {}

    def run(name: str) -> None:
        for entry in logs("accuracy", [0.6] * 40 + [0.4], other=None):
            results[name] = s.report(name, [entry])

    threads = [threading.Thread(target=run, args=(f"r{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(v is None for v in results.values())  # best stays 0.6 > 0.5


def test_rules_import_no_grpc_kubernetes_or_sqlalchemy() -> None:
    code = ("import sys, earlystop.base, earlystop.medianstop, earlystop.registry, earlystop.inprocess\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('grpc', 'kubernetes', 'sqlalchemy')"
            " or m.endswith('_pb2') or m.endswith('_pb2_grpc'))\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
