"""The gRPC boundary: Katib's ``api.v1.beta1`` protocol.

- ``api_pb2`` / ``api_pb2_grpc``: generated from ``proto/api.proto`` by
  ``scripts/gen_proto.py`` (checked in; a test fails when they are stale).
- ``converters``: the only place that turns protobuf messages into domain objects and back.
- ``errors``: ``KatibError`` <-> gRPC status codes, both directions.
- ``server``: server plumbing (thread pool, error interceptor, health, reflection).
- ``suggestion_client``: ``RemoteSuggester``, a client of any upstream-compatible
  Suggestion service.

Only this package imports the generated modules; services and clients elsewhere go through
the functions here. Nothing is imported eagerly, so ``import katib.rpc`` stays cheap.
"""
