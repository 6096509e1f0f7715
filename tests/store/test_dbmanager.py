"""The DBManager gRPC service on a real port, over SQLite, PostgreSQL and MySQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from katib.api.observation import MetricLog
from katib.rpc import api_pb2, converters
from katib.store import Store
from katib.store.dbmanager import serve, url_from_env

T0 = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=timezone.utc)


@pytest.fixture
def server(store: Store) -> Iterator[Any]:
    srv = serve(store, 0, host="127.0.0.1")
    yield srv
    srv.stop(None)


@pytest.fixture
def channel(server: Any) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        yield ch


@pytest.fixture
def stub(channel: grpc.Channel) -> Any:
    return converters.db_manager_stub(channel)


def report(stub: Any, trial: str, logs: list[MetricLog]) -> None:
    stub.ReportObservationLog(converters.report_observation_log_request(trial, logs), timeout=10)


def get(stub: Any, trial: str, metric: str = "", start: str = "", end: str = "") -> list[tuple[str, str, str]]:
    reply = stub.GetObservationLog(api_pb2.GetObservationLogRequest(
        trial_name=trial, metric_name=metric, start_time=start, end_time=end), timeout=10)
    return [(m.time_stamp, m.metric.name, m.metric.value) for m in reply.observation_log.metric_logs]


def test_report_get_delete(stub: Any) -> None:
    logs = [MetricLog("loss", "0.5", T0 + timedelta(seconds=1)),
            MetricLog("acc", "0.7", T0),
            MetricLog("loss", "0.4", T0 + timedelta(microseconds=1))]
    report(stub, "t1", logs)
    report(stub, "t2", [MetricLog("loss", "9", T0)])
    assert get(stub, "t1") == [
        ("2024-05-06T07:08:09.123456Z", "acc", "0.7"),
        ("2024-05-06T07:08:09.123457Z", "loss", "0.4"),  # microseconds survive the round trip
        ("2024-05-06T07:08:10.123456Z", "loss", "0.5"),
    ]
    assert [v for _, _, v in get(stub, "t1", "loss")] == ["0.4", "0.5"]
    assert [v for _, _, v in get(stub, "t1", "loss", start="2024-05-06T07:08:10Z")] == ["0.5"]
    assert [v for _, _, v in get(stub, "t1", end="2024-05-06T07:08:09.123456Z")] == ["0.7"]
    stub.DeleteObservationLog(converters.delete_observation_log_request("t1"), timeout=10)
    assert get(stub, "t1") == []
    assert len(get(stub, "t2")) == 1


def test_upstream_shaped_requests(stub: Any) -> None:
    """What upstream's collectors send: whole-second stamps, offsets, RFC3339Nano, the
    zero-time "unavailable" row, and rows without a time (skipped, as upstream does)."""
    request = api_pb2.ReportObservationLogRequest(trial_name="t1")
    for stamp, value in [("2024-01-01T00:00:01Z", "1"), ("2024-01-01T02:00:02+02:00", "2"),
                         ("2024-01-01T00:00:03.123456789Z", "3"), ("", "skipped"),
                         ("0001-01-01T00:00:00Z", "unavailable")]:
        item = request.observation_log.metric_logs.add(time_stamp=stamp)
        item.metric.name, item.metric.value = "loss", value
    stub.ReportObservationLog(request, timeout=10)
    assert get(stub, "t1") == [
        ("0001-01-01T00:00:00Z", "loss", "unavailable"),
        ("2024-01-01T00:00:01Z", "loss", "1"),
        ("2024-01-01T00:00:02Z", "loss", "2"),
        ("2024-01-01T00:00:03.123456Z", "loss", "3"),
    ]


def test_empty_report_is_fine(stub: Any) -> None:
    report(stub, "t1", [])
    assert get(stub, "t1") == []


@pytest.mark.parametrize("request_", [
    api_pb2.ReportObservationLogRequest(trial_name=""),
    api_pb2.ReportObservationLogRequest(trial_name="t", observation_log=api_pb2.ObservationLog(
        metric_logs=[api_pb2.MetricLog(time_stamp="yesterday", metric=api_pb2.Metric(name="a"))])),
])
def test_bad_reports_are_invalid_argument(stub: Any, request_: Any) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.ReportObservationLog(request_, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_bad_time_window_is_invalid_argument(stub: Any) -> None:
    with pytest.raises(grpc.RpcError) as info:
        get(stub, "t1", start="soon")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "startTime" in (info.value.details() or "")


@pytest.mark.parametrize("service", ["", "grpc.health.v1.Health"])
def test_health_runs_select_one(channel: grpc.Channel, store: Store, service: str,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    request = health_pb2.HealthCheckRequest(service=service)
    assert health.Check(request, timeout=10).status == health_pb2.HealthCheckResponse.SERVING

    def down() -> None:
        raise ConnectionError("database is down")

    monkeypatch.setattr(store, "ping", down)
    assert health.Check(request, timeout=10).status == health_pb2.HealthCheckResponse.NOT_SERVING


def test_health_of_other_services_is_not_found(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as info:
        health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="api.v1.beta1.Suggestion"), timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_reflection_lists_the_db_manager(channel: grpc.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    replies = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
    names = {s.name for r in replies for s in r.list_services_response.service}
    assert {"api.v1.beta1.DBManager", "grpc.health.v1.Health"} <= names


def test_database_down_is_unavailable(stub: Any, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.exc import OperationalError

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("SELECT", {}, Exception("connection refused"))

    monkeypatch.setattr(store, "get_observations", broken)
    with pytest.raises(grpc.RpcError) as info:
        get(stub, "t1")
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


# -- configuration ------------------------------------------------------------------------

def test_url_from_upstream_mysql_env() -> None:
    url = url_from_env({"DB_NAME": "mysql", "DB_PASSWORD": "p@ss:word",
                        "KATIB_MYSQL_DB_HOST": "db", "KATIB_MYSQL_DB_PORT": "3307"})
    assert url.render_as_string(hide_password=False) == (  # type: ignore[union-attr]
        "mysql+pymysql://root:p%40ss%3Aword@db:3307/katib?charset=utf8mb4")


def test_url_from_upstream_postgres_env() -> None:
    url = url_from_env({"DB_NAME": "postgres", "DB_USER": "u", "KATIB_POSTGRESQL_SSL_MODE": "require"})
    assert url.render_as_string(hide_password=False) == (  # type: ignore[union-attr]
        "postgresql+psycopg2://u@katib-postgres:5432/katib?sslmode=require")


def test_url_from_env_sqlite_and_default() -> None:
    assert url_from_env({"DB_NAME": "sqlite", "KATIB_DB_URL": "sqlite:///x.db"}) == "sqlite:///x.db"
    assert url_from_env({"KATIB_DB_URL": "postgresql://h/db"}) == "postgresql://h/db"
    assert str(url_from_env({})).startswith("sqlite:///")
    with pytest.raises(ValueError, match="DB_NAME"):
        url_from_env({"DB_NAME": "oracle"})


def _start(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on port" not in line:
        proc.kill()
        raise AssertionError(f"no port line: {line!r} {proc.stderr.read() if proc.stderr else ''}")
    return proc, int(line.rsplit(" ", 1)[1])


@pytest.mark.parametrize("command", [
    [sys.executable, "-m", "katib.store.dbmanager"],
    [sys.executable, "-m", "katib.cli", "db-manager"],
])
def test_main_serves_until_sigterm(tmp_path: Path, command: list[str]) -> None:
    env = {**os.environ, "DB_NAME": "sqlite", "KATIB_DB_URL": f"sqlite:///{tmp_path}/db.db"}
    proc, port = _start([*command, "--port", "0", "--host", "127.0.0.1"], env)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            stub = converters.db_manager_stub(ch)
            report(stub, "t1", [MetricLog("loss", "1", T0)])
            assert get(stub, "t1")[0][2] == "1"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0


def test_skip_db_initialization_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    env = {**os.environ, "KATIB_DB_URL": f"sqlite:///{tmp_path}/empty.db",
           "SKIP_DB_INITIALIZATION": "true"}
    proc = subprocess.run([sys.executable, "-m", "katib.store.dbmanager", "--port", "0",
                           "--connect-timeout", "0"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode != 0
    assert "SKIP_DB_INITIALIZATION" in proc.stderr
