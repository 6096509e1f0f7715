"""User metric filters (``metricsCollectorSpec.source.filter.metricsFormat``) on RE2.

Upstream compiles these with Go's ``regexp``, which is RE2: matching time is linear in the
line, POSIX classes (``[[:alpha:]]``) and Unicode classes (``\\pL``) work, and
backreferences or lookarounds are refused. Python's ``re`` differs on all three (a filter
such as ``((?:\\w+)+)=([0-9.]+)`` backtracks for seconds on a short line), so every user
filter is compiled here, with Google's RE2, both when an experiment is validated and when
its metrics are collected: a filter accepted by one is accepted by the other.
"""

from __future__ import annotations

from typing import Any

import re2  # type: ignore[import-untyped]

__all__ = ["compile_metrics_format", "ENGINE"]

ENGINE = "re2"

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # the error is raised to the caller, not printed to stderr


def compile_metrics_format(pattern: str) -> Any:
    """Compile one filter with RE2. Raises ValueError saying why it does not compile or
    why it cannot name a metric (fewer than two capture groups: name, then value)."""
    if not isinstance(pattern, str):
        raise ValueError(f"must be a regular expression (a string), got {pattern!r}")
    try:
        compiled = re2.compile(pattern, options=_OPTIONS)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode(errors="replace")
        raise ValueError(f"invalid filter {pattern!r}: {detail} (filters use RE2 syntax, as upstream's Go "
                         "regexp: no backreferences or lookarounds)") from None
    if compiled.groups < 2:
        raise ValueError(f"filter {pattern!r} has {compiled.groups} capture group(s); it needs two: "
                         "the first captures the metric name, the second its value, "
                         r"e.g. ([\w-]+)=([+-]?\d+(\.\d+)?)")
    return compiled
