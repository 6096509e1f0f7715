"""The one rule for metric values, shared by every collector, the store's readers and tune().

A metric value is either a **finite number** or, for string metrics (a DARTS genotype),
text that is not a number at all. Text that parses as a number but is not finite
(``nan``, ``inf``, ``-inf``, or ``-1e400``, which overflows to ``-inf``) is refused: a
search cannot rank it, and upstream's rules would make ``-inf`` the best of every minimizing
experiment and a NaN trial stick as best. Collectors do not record refused values (they log
which line held them), folds and best-trial selection skip them when an older store or an
outside collector holds them, and a trial whose objective has no accepted value ends
``MetricsUnavailable``, with a message naming what was refused.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from katib.api.observation import UNAVAILABLE

__all__ = ["finite_number", "is_non_finite", "refusal", "unavailable_message", "MAX_REFUSED_KEPT"]

# How many refused values of one metric a collector remembers for the trial's message.
MAX_REFUSED_KEPT = 3


def _float(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def finite_number(text: str | None) -> float | None:
    """The finite number ``text`` stands for; None for text that is no number, is not
    finite, or is ``"unavailable"``."""
    if text is None or text == UNAVAILABLE:
        return None
    number = _float(text)
    return number if number is not None and math.isfinite(number) else None


def is_non_finite(text: str | None) -> bool:
    """Whether ``text`` parses as a number that is not finite (refused by the rule)."""
    if text is None:
        return False
    number = _float(text)
    return number is not None and not math.isfinite(number)


def refusal(name: str, value: str) -> str | None:
    """Why ``name=value`` is not recorded, or None when it is a value (finite or a string)."""
    if is_non_finite(value):
        return f"metric {name!r}: {value!r} is not a finite number"
    return None


def unavailable_message(objective: str, refused: Mapping[str, Sequence[str]] | None = None) -> str:
    """The MetricsUnavailable message of a trial that ended without an accepted value of
    ``objective``; ``refused`` holds the values its collector refused, per metric."""
    values = list((refused or {}).get(objective, ()))
    if values:
        shown = ", ".join(values[:MAX_REFUSED_KEPT])
        return (f"Metrics are not available: objective {objective!r} reported only values that are not "
                f"finite numbers: {shown}; a metric value must be a finite number")
    return f"Metrics are not available: the trial reported no value for {objective!r}"
