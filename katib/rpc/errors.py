"""KatibError <-> gRPC status, in both directions.

Servers install ``ErrorInterceptor``: a handler raises a ``KatibError`` and the client sees
the status code ``katib.errors.GRPC_CODES`` gives its class, with the error's message as the
details. The class name (and a SettingsError's setting) also travel as trailing metadata, so
our clients rebuild the exact error; upstream clients just see the code and message.

Clients call ``error_from_rpc`` on a ``grpc.RpcError``.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import grpc

from katib.errors import (
    GRPC_CODES,
    AlreadyExistsError,
    KatibError,
    NotFoundError,
    SearchSpaceExhausted,
    ServiceError,
    SettingsError,
    SuggestionsPending,
)

__all__ = ["status_code", "abort", "ErrorInterceptor", "error_from_rpc", "RETRYABLE_CODES"]

log = logging.getLogger(__name__)

ERROR_CLASS_KEY = "katib-error"
SETTING_KEY = "katib-setting"

# Codes where trying again later may succeed (the server restarts, a deadline was tight).
RETRYABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                             grpc.StatusCode.RESOURCE_EXHAUSTED})


def status_code(exc: KatibError) -> grpc.StatusCode:
    """The status code of the nearest class in ``exc``'s MRO that GRPC_CODES lists."""
    for cls in type(exc).__mro__:
        name = GRPC_CODES.get(cls)  # type: ignore[call-overload]
        if name is not None:
            return getattr(grpc.StatusCode, name)  # type: ignore[no-any-return]
    return grpc.StatusCode.INTERNAL


def abort(context: grpc.ServicerContext, exc: KatibError) -> None:
    """End the call with ``exc``'s status code and message (raises, as context.abort does)."""
    metadata = [(ERROR_CLASS_KEY, type(exc).__name__)]
    if isinstance(exc, SettingsError) and exc.setting:
        metadata.append((SETTING_KEY, exc.setting))
    context.set_trailing_metadata(tuple(metadata))
    context.abort(status_code(exc), str(exc))


def _wrap(behavior: Callable[[Any, grpc.ServicerContext], Any], method: str) -> Callable[[Any, grpc.ServicerContext], Any]:
    def handler(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return behavior(request, context)
        except KatibError as exc:
            log.info("%s: %s: %s", method, type(exc).__name__, exc)
            abort(context, exc)
        except grpc.RpcError as exc:
            # A call this handler forwarded to another service failed: hand its status on
            # unchanged rather than flattening it into INTERNAL.
            code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
            details = exc.details() if hasattr(exc, "details") else str(exc)
            log.info("%s: forwarded call failed: %s %s", method, code, details)
            context.abort(code, details or "")
        except Exception as exc:
            if context.code() is not None:  # the handler aborted on purpose
                raise
            log.exception("%s failed", method)
            context.abort(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")
        return None  # unreachable: abort raises

    return handler


class ErrorInterceptor(grpc.ServerInterceptor):
    """Turns exceptions escaping unary-unary handlers into status codes (see module doc)."""

    def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Any],
                          handler_call_details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        return grpc.unary_unary_rpc_method_handler(
            _wrap(handler.unary_unary, handler_call_details.method),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


_BY_CODE: dict[grpc.StatusCode, type[KatibError]] = {
    grpc.StatusCode.OUT_OF_RANGE: SearchSpaceExhausted,
    grpc.StatusCode.FAILED_PRECONDITION: SuggestionsPending,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
}


def error_from_rpc(exc: grpc.RpcError, *, invalid_argument: type[KatibError] = SettingsError) -> KatibError:
    """The KatibError a failed call stands for.

    INVALID_ARGUMENT becomes ``invalid_argument`` (SettingsError unless the caller knows
    better) carrying the setting our servers name in the metadata; OUT_OF_RANGE becomes
    SearchSpaceExhausted, FAILED_PRECONDITION SuggestionsPending; other codes a ServiceError
    whose ``retryable`` follows the code.
    """
    code: grpc.StatusCode = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details: str = (exc.details() if hasattr(exc, "details") else None) or str(exc)
    trailing = dict(exc.trailing_metadata() or ()) if hasattr(exc, "trailing_metadata") else {}
    cls = invalid_argument if code == grpc.StatusCode.INVALID_ARGUMENT else _BY_CODE.get(code)
    if cls is SettingsError:
        setting = str(trailing.get(SETTING_KEY, ""))
        message = details[len(setting) + 2:] if setting and details.startswith(setting + ": ") else details
        return SettingsError(setting, message)
    if cls is not None:
        return cls(details)
    return ServiceError(f"{code.name}: {details}", retryable=code in RETRYABLE_CODES)
