"""The gRPC EarlyStopping service over a real port.

The DB manager it reads from is a minimal in-test DBManager servicer built on the generated
stubs (katib/store's real one had not landed when this was written); it keeps logs in a
dict, answers GetObservationLog in time order like upstream's, and counts the calls.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent import futures
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from earlystop.service import EarlyStoppingServicer, serve
from katib.rpc import api_pb2 as pb
from katib.rpc import api_pb2_grpc as pb_grpc
from tests.earlystop.curves import T0

ROOT = Path(__file__).resolve().parents[2]
Cond = pb.TrialStatus.TrialConditionType


class InTestDBManager(pb_grpc.DBManagerServicer):
    def __init__(self, delay: float = 0.0) -> None:
        self.rows: dict[str, list[tuple[str, str, str]]] = {}  # trial -> (time, metric, value)
        self.calls: Counter[str] = Counter()
        self.delay = delay

    def add(self, trial: str, metric: str, values: list[float]) -> None:
        for i, v in enumerate(values):
            stamp = (T0 + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
            self.rows.setdefault(trial, []).append((stamp, metric, repr(v)))
            self.rows[trial].append((stamp, "loss", "9.9"))  # another metric: must not be asked for

    def GetObservationLog(self, request: Any, context: Any) -> Any:
        self.calls[request.trial_name] += 1
        time.sleep(self.delay)
        reply = pb.GetObservationLogReply()
        for stamp, metric, value in sorted(self.rows.get(request.trial_name, [])):
            if request.metric_name in ("", metric):
                reply.observation_log.metric_logs.add(time_stamp=stamp, metric=pb.Metric(name=metric, value=value))
        return reply


@pytest.fixture
def db() -> Iterator[tuple[InTestDBManager, str]]:
    servicer = InTestDBManager()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_DBManagerServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, f"127.0.0.1:{port}"
    server.stop(None)


@pytest.fixture
def service() -> Iterator[tuple[Any, EarlyStoppingServicer, grpc.Channel]]:
    servicer = EarlyStoppingServicer()
    server = serve(0, host="127.0.0.1", servicer=servicer)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    yield pb_grpc.EarlyStoppingStub(channel), servicer, channel
    channel.close()
    server.stop(None).wait()


def spec(algorithm: str = "medianstop", **settings: str) -> pb.EarlyStoppingSpec:
    return pb.EarlyStoppingSpec(algorithm_name=algorithm, algorithm_settings=[
        pb.EarlyStoppingSetting(name=k, value=v) for k, v in settings.items()])


def experiment(kind: Any = pb.MAXIMIZE, name: str = "exp", **settings: str) -> pb.Experiment:
    return pb.Experiment(name=name, spec=pb.ExperimentSpec(
        objective=pb.ObjectiveSpec(type=kind, objective_metric_name="accuracy"),
        early_stopping=spec(**settings)))


def trial(name: str, condition: Any) -> pb.Trial:
    return pb.Trial(name=name, status=pb.TrialStatus(condition=condition))


# -- ValidateEarlyStoppingSettings ------------------------------------------------------------


def test_validate_accepts_good_settings(service: Any) -> None:
    stub, _, _ = service
    stub.ValidateEarlyStoppingSettings(pb.ValidateEarlyStoppingSettingsRequest(
        early_stopping=spec(min_trials_required="2", start_step="1")), timeout=5)
    stub.ValidateEarlyStoppingSettings(pb.ValidateEarlyStoppingSettingsRequest(early_stopping=spec()), timeout=5)


@pytest.mark.parametrize("request_spec, named", [
    (spec("meanstop"), "spec.earlyStopping.algorithmName"),
    (spec(""), "spec.earlyStopping.algorithmName"),
    (spec(start_step="0"), "start_step"),
    (spec(min_trials_required="many"), "min_trials_required"),
    (spec(patience="3"), "patience"),
])
def test_validate_rejects_naming_the_culprit(service: Any, request_spec: pb.EarlyStoppingSpec, named: str) -> None:
    stub, _, _ = service
    with pytest.raises(grpc.RpcError) as err:
        stub.ValidateEarlyStoppingSettings(pb.ValidateEarlyStoppingSettingsRequest(early_stopping=request_spec),
                                           timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith(named)


# -- GetEarlyStoppingRules ------------------------------------------------------------------


def test_rules_appear_once_enough_trials_completed_and_each_log_is_read_once(service: Any, db: Any) -> None:
    stub, _, _ = service
    dbm, address = db
    curves = {"t1": [0.1, 0.5, 0.6], "t2": [0.2, 0.3, 0.9], "t3": [0.4, 0.45, 0.5], "t4": [0.9, 0.95, 1.0],
              "bad": [0.0, 0.0, 0.0]}
    for name, values in curves.items():
        dbm.add(name, "accuracy", values)
    exp = experiment(min_trials_required="3", start_step="2")

    def ask(*trials: pb.Trial) -> list[Any]:
        reply = stub.GetEarlyStoppingRules(pb.GetEarlyStoppingRulesRequest(
            experiment=exp, trials=list(trials), db_manager_address=address), timeout=10)
        return list(reply.early_stopping_rules)

    running = trial("t4", Cond.RUNNING)
    assert ask(trial("t1", Cond.SUCCEEDED), trial("t2", Cond.EARLYSTOPPED), running,
               trial("bad", Cond.FAILED)) == []
    (rule,) = ask(trial("t1", Cond.SUCCEEDED), trial("t2", Cond.EARLYSTOPPED), trial("t3", Cond.SUCCEEDED),
                  running, trial("bad", Cond.FAILED))
    # True median of best-so-far at step 2: median(0.5, 0.3, 0.45), not a mean of means.
    assert (rule.name, rule.comparison, rule.start_step) == ("accuracy", pb.LESS, 2)
    assert float(rule.value) == pytest.approx(statistics.median([0.5, 0.3, 0.45]))
    (rule,) = ask(trial("t1", Cond.SUCCEEDED), trial("t2", Cond.EARLYSTOPPED), trial("t3", Cond.SUCCEEDED),
                  trial("t4", Cond.SUCCEEDED), trial("bad", Cond.FAILED))
    assert float(rule.value) == pytest.approx(statistics.median([0.5, 0.3, 0.45, 0.95]))
    # Each completed trial was read once over three calls; running and failed ones never.
    assert dbm.calls == Counter({"t1": 1, "t2": 1, "t3": 1, "t4": 1})


def test_minimize_rule_compares_greater(service: Any, db: Any) -> None:
    stub, _, _ = service
    dbm, address = db
    for i, losses in enumerate(([3.0, 2.0, 1.0], [3.0, 1.5, 1.2], [2.5, 2.4, 2.3])):
        dbm.add(f"m{i}", "accuracy", losses)
    reply = stub.GetEarlyStoppingRules(pb.GetEarlyStoppingRulesRequest(
        experiment=experiment(pb.MINIMIZE, name="exp-min", min_trials_required="3", start_step="2"),
        trials=[trial(f"m{i}", Cond.SUCCEEDED) for i in range(3)], db_manager_address=address), timeout=10)
    (rule,) = reply.early_stopping_rules
    assert rule.comparison == pb.GREATER and float(rule.value) == 2.0  # median(2.0, 1.5, 2.4)


def test_unreachable_db_manager_is_unavailable_and_retried(service: Any, db: Any) -> None:
    stub, servicer, _ = service
    dbm, address = db
    dbm.add("t1", "accuracy", [0.5])
    servicer.db.deadline = 1.0
    request = pb.GetEarlyStoppingRulesRequest(experiment=experiment(min_trials_required="1", start_step="1"),
                                              trials=[trial("t1", Cond.SUCCEEDED)],
                                              db_manager_address="127.0.0.1:1")
    with pytest.raises(grpc.RpcError) as err:
        stub.GetEarlyStoppingRules(request, timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE and "127.0.0.1:1" in err.value.details()
    request.db_manager_address = address  # the trial was not marked as read: a later call gets it
    (rule,) = stub.GetEarlyStoppingRules(request, timeout=10).early_stopping_rules
    assert float(rule.value) == 0.5


def test_bad_experiment_settings_in_rules_request(service: Any, db: Any) -> None:
    stub, _, _ = service
    with pytest.raises(grpc.RpcError) as err:
        stub.GetEarlyStoppingRules(pb.GetEarlyStoppingRulesRequest(
            experiment=experiment(start_step="-4"), db_manager_address=db[1]), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "start_step" in err.value.details()


# -- SetTrialStatus ---------------------------------------------------------------------------


def test_set_trial_status_default_records(service: Any) -> None:
    stub, servicer, _ = service
    stub.SetTrialStatus(pb.SetTrialStatusRequest(trial_name="exp-abc"), timeout=5)
    assert servicer.stopped_trials == ["exp-abc"]
    with pytest.raises(grpc.RpcError) as err:
        stub.SetTrialStatus(pb.SetTrialStatusRequest(), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_set_trial_status_callback() -> None:
    seen: list[str] = []
    server = serve(0, host="127.0.0.1", servicer=EarlyStoppingServicer(set_trial_status=seen.append))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            pb_grpc.EarlyStoppingStub(channel).SetTrialStatus(pb.SetTrialStatusRequest(trial_name="t"), timeout=5)
        assert seen == ["t"]
    finally:
        server.stop(None).wait()


# -- health, reflection, shutdown -------------------------------------------------------------


def test_health_and_reflection(service: Any) -> None:
    _, _, channel = service
    health = health_pb2_grpc.HealthStub(channel)
    for name in ("", "manager.v1beta1.EarlyStopping", "api.v1.beta1.EarlyStopping"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as err:
        health.Check(health_pb2.HealthCheckRequest(service="manager.v1beta1.Suggestion"), timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
    (answer,) = reflect.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                             timeout=5)
    names = {s.name for s in answer.list_services_response.service}
    assert {"api.v1.beta1.EarlyStopping", "grpc.health.v1.Health"} <= names


def test_sigterm_finishes_calls_in_flight_and_exits(db: Any) -> None:
    dbm, address = db
    dbm.delay = 1.5  # the rules call below is in flight when SIGTERM arrives
    dbm.add("t1", "accuracy", [0.7])
    proc = subprocess.Popen([sys.executable, "-m", "earlystop.service", "serve", "--port", "0",
                             "--host", "127.0.0.1", "--grace", "10"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on port" in line, line + (proc.stderr.read() if proc.stderr else "")
        port = int(line.rsplit(" ", 1)[1])
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            reply = health.Check(health_pb2.HealthCheckRequest(service="manager.v1beta1.EarlyStopping"), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            stub = pb_grpc.EarlyStoppingStub(channel)
            call = stub.GetEarlyStoppingRules.future(pb.GetEarlyStoppingRulesRequest(
                experiment=experiment(min_trials_required="1", start_step="1"),
                trials=[trial("t1", Cond.SUCCEEDED)], db_manager_address=address), timeout=20)
            deadline = time.monotonic() + 5
            while not dbm.calls and time.monotonic() < deadline:
                time.sleep(0.02)
            assert dbm.calls["t1"] == 1
            proc.send_signal(signal.SIGTERM)
            (rule,) = call.result().early_stopping_rules  # finished despite the shutdown
            assert float(rule.value) == 0.7
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_stop_reports_not_serving_first() -> None:
    server = serve(0, host="127.0.0.1")
    request = health_pb2.HealthCheckRequest(service="manager.v1beta1.EarlyStopping")
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(request, timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    assert server.stop(2.0).wait(5)
    # New calls are refused once stopping starts, so ask the health servicer itself.
    assert server.health.Check(request, None).status == health_pb2.HealthCheckResponse.NOT_SERVING


def test_many_experiments_are_kept_apart(service: Any, db: Any) -> None:
    stub, _, _ = service
    dbm, address = db
    dbm.add("a1", "accuracy", [0.2])
    dbm.add("b1", "accuracy", [0.8])

    def value(name: str, t: str) -> float:
        reply = stub.GetEarlyStoppingRules(pb.GetEarlyStoppingRulesRequest(
            experiment=experiment(name=name, min_trials_required="1", start_step="1"),
            trials=[trial(t, Cond.SUCCEEDED)], db_manager_address=address), timeout=10)
        return float(reply.early_stopping_rules[0].value)

    threads = [threading.Thread(target=lambda: value("a", "a1")) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert value("a", "a1") == 0.2 and value("b", "b1") == 0.8
    assert dbm.calls == Counter({"a1": 1, "b1": 1})
