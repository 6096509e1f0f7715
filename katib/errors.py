"""The exception tree of the project.

::

    KatibError                      root; every error we raise on purpose
    ├── ValidationError             an experiment (or part of it) breaks a rule; carries FieldErrors
    ├── SettingsError               an algorithm / early-stopping setting is unknown or out of range
    ├── NotFoundError               an experiment, trial or algorithm name does not exist
    ├── AlreadyExistsError          creating something whose name is taken
    ├── SearchSpaceExhausted        the algorithm has nothing more to suggest (ends the experiment
    │                               cleanly as SuggestionEndReached)
    ├── SuggestionsPending          the algorithm cannot give the number asked for until running
    │                               trials finish (hyperband between rungs); ask again later
    ├── TemplateError               a trial template cannot be rendered for a trial
    └── ServiceError                a remote service failed; ``retryable`` says whether to try again

Each maps to one gRPC status code at the service boundary (see ``GRPC_CODES``) and every
message names the field path and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "KatibError",
    "FieldError",
    "ValidationError",
    "SettingsError",
    "NotFoundError",
    "AlreadyExistsError",
    "SearchSpaceExhausted",
    "SuggestionsPending",
    "TemplateError",
    "ServiceError",
    "GRPC_CODES",
]


class KatibError(Exception):
    """Root of every error the project raises on purpose."""

    retryable: bool = False


@dataclass(frozen=True)
class FieldError:
    """One broken rule: where (a JSON-ish path such as ``spec.parameters[2].feasibleSpace.min``)
    and what is wrong, including how to fix it."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ValidationError(KatibError, ValueError):
    """An experiment breaks one or more rules. ``errors`` holds every one of them."""

    def __init__(self, errors: list[FieldError] | FieldError | str, path: str = "") -> None:
        if isinstance(errors, str):
            errors = [FieldError(path, errors)]
        elif isinstance(errors, FieldError):
            errors = [errors]
        self.errors: list[FieldError] = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


class SettingsError(KatibError, ValueError):
    """An algorithm or early-stopping setting is unknown, malformed or out of range.

    ``setting`` names it so that callers can point at ``spec.algorithm.algorithmSettings``.
    """

    def __init__(self, setting: str, message: str) -> None:
        self.setting = setting
        super().__init__(f"{setting}: {message}" if setting else message)


class NotFoundError(KatibError, LookupError):
    """The named experiment, trial or algorithm does not exist."""


class AlreadyExistsError(KatibError):
    """Something with that name exists already."""


class SearchSpaceExhausted(KatibError):
    """The algorithm will never suggest anything more (grid done, hyperband finished)."""


class SuggestionsPending(KatibError):
    """The algorithm cannot give the number of assignments asked for until some running
    trials finish (hyperband waiting for a rung). Nothing is wrong: the caller creates no
    trial this round and asks again once a trial has finished. Over gRPC it is
    FAILED_PRECONDITION, so an upstream controller, which rejects a reply of the wrong size,
    simply retries on its next reconcile."""


class TemplateError(KatibError, ValueError):
    """The trial template could not be rendered for a trial's assignments."""


class ServiceError(KatibError):
    """A remote service (suggestion, early stopping, DB manager) failed."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        self.retryable = retryable
        super().__init__(message)


# Error class name -> gRPC status code name (grpc.StatusCode member), used by the services.
GRPC_CODES: dict[type[KatibError], str] = {
    ValidationError: "INVALID_ARGUMENT",
    SettingsError: "INVALID_ARGUMENT",
    TemplateError: "INVALID_ARGUMENT",
    NotFoundError: "NOT_FOUND",
    AlreadyExistsError: "ALREADY_EXISTS",
    SearchSpaceExhausted: "OUT_OF_RANGE",
    SuggestionsPending: "FAILED_PRECONDITION",
    ServiceError: "UNAVAILABLE",
    KatibError: "INTERNAL",
}
