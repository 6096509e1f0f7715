"""Condition lists with upstream's update semantics.

Setting a condition that already holds with the same status and reason is a no-op; a new
reason with the same status keeps ``lastTransitionTime``; conditions are unique per type.
Unlike upstream (remove + append), an updated condition keeps its place in the list so
that ``kubectl get`` columns stay stable.
"""

from __future__ import annotations

from datetime import datetime, timezone

from katib.api.model import Condition

__all__ = ["now_rfc3339", "set_condition", "get_condition", "is_true"]


def now_rfc3339(now: datetime | None = None) -> str:
    moment = now or datetime.now(timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def get_condition(conditions: list[Condition], type_: str) -> Condition | None:
    for c in conditions:
        if c.type == type_:
            return c
    return None


def is_true(conditions: list[Condition], type_: str) -> bool:
    c = get_condition(conditions, type_)
    return c is not None and c.status == "True"


def set_condition(conditions: list[Condition], type_: str, status: str, reason: str,
                  message: str, now: str) -> bool:
    """Set a condition in place; return whether anything changed."""
    current = get_condition(conditions, type_)
    if current is None:
        conditions.append(Condition(type=type_, status=status, reason=reason, message=message,
                                    last_update_time=now, last_transition_time=now))
        return True
    if current.status == status and current.reason == reason:
        return False
    if current.status != status:
        current.last_transition_time = now
    current.status = status
    current.reason = reason
    current.message = message
    current.last_update_time = now
    return True
