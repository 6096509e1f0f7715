"""A real Suggestion gRPC server on a free loopback port, one per test module, and a stub."""

from __future__ import annotations

from typing import Iterator

import grpc
import pytest

from katib.rpc import api_pb2_grpc
from katib.rpc.server import ManagedServer
from suggestion.service import serve


@pytest.fixture(scope="module")
def server() -> Iterator[ManagedServer]:
    srv = serve(0, "127.0.0.1", remotes={})
    yield srv
    srv.stop(None)


@pytest.fixture(scope="module")
def stub(server: ManagedServer) -> Iterator[api_pb2_grpc.SuggestionStub]:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield api_pb2_grpc.SuggestionStub(channel)
