"""``RemoteEarlyStopper`` against a real EarlyStopping server reading a real DB manager."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import grpc
import pytest

from earlystop.service import EarlyStoppingServicer, serve
from katib.api.model import EarlyStoppingSpec, Experiment, Trial
from katib.api.observation import MetricLog
from katib.errors import ServiceError, SettingsError
from katib.rpc.earlystopping_client import RemoteEarlyStopper
from katib.store import Store
from katib.store import dbmanager

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def experiment(min_trials: int = 2, start_step: int = 2, kind: str = "maximize") -> Experiment:
    errors: list[Any] = []
    exp = Experiment.from_dict({
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": "exp", "namespace": "ns"},
        "spec": {
            "objective": {"type": kind, "objectiveMetricName": "accuracy"},
            "algorithm": {"algorithmName": "random"},
            "earlyStopping": {"algorithmName": "medianstop", "algorithmSettings": [
                {"name": "min_trials_required", "value": str(min_trials)},
                {"name": "start_step", "value": str(start_step)}]},
            "parameters": [{"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}],
        }}, "", errors)
    assert not errors
    return exp  # type: ignore[no-any-return]


def trial(name: str, state: str, latest: float | None = None) -> Trial:
    status: dict[str, Any] = {"conditions": [{"type": state, "status": "True"}]}
    if latest is not None:
        status["observation"] = {"metrics": [{"name": "accuracy", "latest": str(latest), "max": str(latest),
                                              "min": str(latest)}]}
    errors: list[Any] = []
    t = Trial.from_dict({"apiVersion": "kubeflow.org/v1beta1", "kind": "Trial",
                         "metadata": {"name": name, "namespace": "ns"},
                         "spec": {"objective": {"type": "maximize", "objectiveMetricName": "accuracy"},
                                  "parameterAssignments": [{"name": "lr", "value": "0.1"}]},
                         "status": status}, "", errors)
    assert not errors
    return t  # type: ignore[no-any-return]


def curve(store: Store, name: str, values: list[float]) -> None:
    store.report_observations(name, [MetricLog("accuracy", repr(v), T0 + timedelta(seconds=i))
                                     for i, v in enumerate(values)])


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[Store, str, EarlyStoppingServicer, str]]:
    store = Store(f"sqlite:///{tmp_path}/obs.db")
    db = dbmanager.serve(store, 0, host="127.0.0.1")
    servicer = EarlyStoppingServicer()
    es = serve(0, host="127.0.0.1", servicer=servicer)
    try:
        yield store, f"127.0.0.1:{db.port}", servicer, f"127.0.0.1:{es.port}"
    finally:
        es.stop(None).wait()
        db.stop(None).wait()
        servicer.db.close()
        store.close()


def test_rules_come_back_once_enough_trials_completed(servers: Any) -> None:
    store, db_address, _, address = servers
    exp = experiment(min_trials=2, start_step=2)
    curve(store, "t1", [0.2, 0.4, 0.6])
    curve(store, "t2", [0.4, 0.6, 0.8])
    with RemoteEarlyStopper(address, timeout=5) as client:
        assert client.rules(exp, [trial("t1", "Succeeded", 0.6), trial("t2", "Running", 0.6)], db_address) == []
        rules = client.rules(exp, [trial("t1", "Succeeded", 0.6), trial("t2", "Succeeded", 0.8)], db_address)
    assert len(rules) == 1
    rule = rules[0]
    assert (rule.name, rule.comparison, rule.start_step) == ("accuracy", "less", 2)
    # Each completed trial's best up to step 2 (0.4, 0.6); their median.
    assert float(rule.value) == pytest.approx(0.5)


def test_minimize_rule_compares_greater(servers: Any) -> None:
    store, db_address, _, address = servers
    curve(store, "t1", [0.9, 0.5])
    with RemoteEarlyStopper(address, timeout=5) as client:
        rules = client.rules(experiment(min_trials=1, kind="minimize"), [trial("t1", "Succeeded", 0.5)], db_address)
    assert [(r.comparison, float(r.value)) for r in rules] == [("greater", 0.5)]


def test_validation_errors_come_back_as_settings_errors_naming_the_setting(servers: Any) -> None:
    address = servers[3]
    with RemoteEarlyStopper(address, timeout=5) as client:
        client.validate(EarlyStoppingSpec.from_dict(
            {"algorithmName": "medianstop", "algorithmSettings": [{"name": "start_step", "value": "3"}]}, "", []))
        with pytest.raises(SettingsError) as bad:
            client.validate(EarlyStoppingSpec.from_dict(
                {"algorithmName": "medianstop", "algorithmSettings": [{"name": "start_step", "value": "zero"}]},
                "", []))
        assert bad.value.setting == "start_step"
        with pytest.raises(SettingsError) as unknown:
            client.validate(EarlyStoppingSpec.from_dict(
                {"algorithmName": "medianstop", "algorithmSettings": [{"name": "patience", "value": "3"}]}, "", []))
        assert "patience" in str(unknown.value)


def test_set_trial_status_reaches_the_service(servers: Any) -> None:
    _, _, servicer, address = servers
    with RemoteEarlyStopper(address, timeout=5) as client:
        client.set_trial_status("t9")
    assert servicer.stopped_trials == ["t9"]


def test_unreachable_service_is_retried_then_a_retryable_service_error() -> None:
    with RemoteEarlyStopper("127.0.0.1:1", timeout=0.5, retries=2, backoff=0.01) as client:
        with pytest.raises(ServiceError) as err:
            client.set_trial_status("t1")
    assert err.value.retryable


def test_deadline_exceeded_is_retried(monkeypatch: pytest.MonkeyPatch, servers: Any) -> None:
    address = servers[3]
    client = RemoteEarlyStopper(address, timeout=5, retries=3, backoff=0.01)
    calls = []
    real = client._stub.SetTrialStatus

    class Late(grpc.RpcError):
        def code(self) -> grpc.StatusCode:
            return grpc.StatusCode.DEADLINE_EXCEEDED

        def details(self) -> str:
            return "late"

    def flaky(request: Any, timeout: float) -> Any:
        calls.append(timeout)
        if len(calls) < 3:
            raise Late()
        return real(request, timeout=timeout)

    monkeypatch.setattr(client._stub, "SetTrialStatus", flaky)
    client.set_trial_status("t2")
    client.close()
    assert calls == [5, 5, 5] and servers[2].stopped_trials == ["t2"]


def test_a_budget_bounds_all_attempts() -> None:
    import time

    with RemoteEarlyStopper("127.0.0.1:1", timeout=5, retries=10, backoff=0.2, max_backoff=0.2) as client:
        started = time.monotonic()
        with pytest.raises(ServiceError):
            client.set_trial_status("t1", timeout=0.5)
    assert time.monotonic() - started < 2
