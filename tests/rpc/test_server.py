"""A real gRPC Suggestion server on a free port: health, reflection, error codes, and the
RemoteSuggester client against it."""

from __future__ import annotations

import threading
import time
from typing import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from katib.errors import SearchSpaceExhausted, ServiceError, SettingsError
from katib.rpc import api_pb2, api_pb2_grpc, converters
from katib.rpc.server import ManagedServer
from katib.rpc.suggestion_client import RemoteSuggester
from suggestion.service import parse_addresses, serve
from tests.rpc.doubles import experiment, free_port, mixed_parameters


@pytest.fixture(scope="module")
def server() -> Iterator[ManagedServer]:
    srv = serve(0, "127.0.0.1", remotes={})
    yield srv
    srv.stop(None)


@pytest.fixture(scope="module")
def channel(server: ManagedServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        yield ch


@pytest.fixture
def stub(channel: grpc.Channel) -> api_pb2_grpc.SuggestionStub:
    return api_pb2_grpc.SuggestionStub(channel)


@pytest.mark.parametrize("service", ["", "manager.v1beta1.Suggestion"])
def test_health(channel: grpc.Channel, service: str) -> None:
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_services(channel: grpc.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
    names = {s.name for reply in replies for s in reply.list_services_response.service}
    assert {"api.v1.beta1.Suggestion", "grpc.health.v1.Health"} <= names


def _validate(stub: api_pb2_grpc.SuggestionStub, algorithm: str, settings: dict[str, str] | None = None,
              **kw: object) -> grpc.RpcError:
    request = converters.validate_request(experiment("v", algorithm, settings=settings, **kw))  # type: ignore[arg-type]
    with pytest.raises(grpc.RpcError) as info:
        stub.ValidateAlgorithmSettings(request, timeout=10)
    return info.value


def test_validate_accepts_good_settings(stub: api_pb2_grpc.SuggestionStub) -> None:
    request = converters.validate_request(experiment("v", "test-random", settings={"random_state": "3"}))
    stub.ValidateAlgorithmSettings(request, timeout=10)


def test_validate_unknown_algorithm(stub: api_pb2_grpc.SuggestionStub) -> None:
    err = _validate(stub, "no-such-algorithm")
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "no-such-algorithm" in err.details() and "algorithmName" in err.details()


def test_validate_unknown_setting(stub: api_pb2_grpc.SuggestionStub) -> None:
    err = _validate(stub, "test-random", {"random_state": "1", "warp_drive": "on"})
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "warp_drive" in err.details()


def test_validate_bad_setting_value(stub: api_pb2_grpc.SuggestionStub) -> None:
    err = _validate(stub, "test-random", {"random_state": "many"})
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "random_state" in err.details()


def test_validate_unparsable_search_space(stub: api_pb2_grpc.SuggestionStub) -> None:
    params = mixed_parameters()
    params[0].feasible_space.max = "lots"
    err = _validate(stub, "test-random", parameters=params)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "spec.parameters[0].feasibleSpace" in err.details()


def test_get_suggestions_unknown_algorithm_is_invalid_argument(stub: api_pb2_grpc.SuggestionStub) -> None:
    request = api_pb2.GetSuggestionsRequest(current_request_number=1)
    converters.experiment_to_pb(experiment("g", "no-such-algorithm"), request.experiment)
    with pytest.raises(grpc.RpcError) as info:
        stub.GetSuggestions(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_exhausted_is_out_of_range(stub: api_pb2_grpc.SuggestionStub) -> None:
    params = mixed_parameters(continuous=False)[:1]  # layers 1..9
    exp = experiment("exhaust", "test-finite", params)
    request = converters.get_suggestions_request(exp, [], converters.SearchSpace.from_experiment(exp.spec), 20, 20)
    assert len(stub.GetSuggestions(request, timeout=10).parameter_assignments) == 9
    with pytest.raises(grpc.RpcError) as info:
        stub.GetSuggestions(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert "search space exhausted" in info.value.details()


# --- RemoteSuggester ----------------------------------------------------------------------

def test_remote_suggester_validate_errors(server: ManagedServer) -> None:
    with RemoteSuggester(f"127.0.0.1:{server.port}", timeout=10) as client:
        client.validate(experiment("r", "test-random"))
        with pytest.raises(SettingsError) as info:
            client.validate(experiment("r", "test-random", settings={"warp_drive": "on"}))
        assert info.value.setting == "warp_drive"
        with pytest.raises(SettingsError, match="no-such-algorithm"):
            client.validate(experiment("r", "no-such-algorithm"))


def test_remote_suggester_suggests_and_exhausts(server: ManagedServer) -> None:
    exp = experiment("remote-finite", "test-finite", mixed_parameters(continuous=False)[:1])
    with RemoteSuggester(f"127.0.0.1:{server.port}", timeout=10) as client:
        first = client.suggest(exp, [], 5)
        assert [a.values["layers"] for a in first] == [1, 2, 3, 4, 5]
        assert first[0].labels == {"test": "finite"}
        assert len(client.suggest(exp, [], 5)) == 4
        with pytest.raises(SearchSpaceExhausted):
            client.suggest(exp, [], 5)


def test_remote_suggester_retries_until_the_server_is_up() -> None:
    port = free_port()
    started: list[ManagedServer] = []

    def start_later() -> None:
        time.sleep(0.6)
        started.append(serve(port, "127.0.0.1", remotes={}))

    thread = threading.Thread(target=start_later)
    thread.start()
    try:
        with RemoteSuggester(f"127.0.0.1:{port}", timeout=5, retries=8, backoff=0.1, max_backoff=0.5) as client:
            assert len(client.suggest(experiment("late", "test-random"), [], 2)) == 2
    finally:
        thread.join()
        for srv in started:
            srv.stop(None)


def test_remote_suggester_gives_up_with_a_retryable_error() -> None:
    with RemoteSuggester(f"127.0.0.1:{free_port()}", timeout=1, retries=1, backoff=0.05) as client:
        with pytest.raises(ServiceError) as info:
            client.validate(experiment("nobody", "test-random"))
    assert info.value.retryable


def test_remote_suggester_echoes_algorithm_state(server: ManagedServer) -> None:
    exp = experiment("stateful-remote", "test-stateful")
    with RemoteSuggester(f"127.0.0.1:{server.port}", timeout=10) as client:
        client.suggest(exp, [], 1)
        assert client._state["stateful-remote"]["round"] == "1"
        client.suggest(exp, [], 1)
        assert client._state["stateful-remote"]["round"] == "2"


# --- forwarding to another suggestion server ---------------------------------------------

def test_parse_addresses() -> None:
    assert parse_addresses(" a=h:1, b=host.ns:6789 ,") == {"a": "h:1", "b": "host.ns:6789"}
    with pytest.raises(ValueError, match="name=host:port"):
        parse_addresses("justahost:80")


def test_named_algorithms_are_forwarded(server: ManagedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # The front server has no local algorithms at all; "test-finite" lives behind it.
    monkeypatch.setenv("KATIB_SUGGESTION_ADDRESSES", f"test-finite=127.0.0.1:{server.port}")
    front = serve(0, "127.0.0.1", algorithms={})
    try:
        with RemoteSuggester(f"127.0.0.1:{front.port}", timeout=10) as client:
            exp = experiment("forwarded", "test-finite", mixed_parameters(continuous=False)[:1])
            client.validate(exp)
            assert len(client.suggest(exp, [], 9)) == 9
            with pytest.raises(SearchSpaceExhausted):  # the backend's status passes through
                client.suggest(exp, [], 1)
            with pytest.raises(SettingsError, match="offers: none"):
                client.validate(experiment("local", "test-random"))
    finally:
        front.stop(None)
