"""Text for people at a terminal: numbers with sensible precision, lines that fit the width.

Machine-readable output (``-o json``/``-o yaml``, the store) never goes through here: it
keeps every digit.
"""

from __future__ import annotations

import math
import os
import re
import shutil
from typing import Any, Callable, Sequence, TextIO, Union

__all__ = ["number", "display_width", "fit", "fit_parts", "fit_named_value", "terminal_width", "ELLIPSIS"]

ELLIPSIS = "..."  # ASCII: a terminal in the C locale cannot print "…"
_INT = re.compile(r"[+-]?\d+")
_PRECISION = 6


def number(value: Any) -> str:
    """A parameter or metric value as people read it: 6 significant digits.

    Integers (and integer strings) print unchanged; text that is not a number (a categorical
    value, "unavailable") prints as is. A float never prints as if it were an integer: ``3.0``
    prints ``3.0`` and ``0.99999999`` prints ``1.00000``, not ``1``.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        text = value.strip()
        if _INT.fullmatch(text):
            return value
        try:
            v = float(text)
        except ValueError:
            return value
    elif isinstance(value, float):
        v = value
    else:
        return str(value)
    if not math.isfinite(v):
        return str(v)
    short = f"{v:.{_PRECISION}g}"
    if _INT.fullmatch(short):  # would read as an integer: say it is a float, and how precise
        short = f"{short}.0" if float(short) == v else f"{v:#.{_PRECISION}g}"
    return short


def display_width(text: str) -> int:
    """Columns ``text`` takes on a terminal (wide East Asian characters take two)."""
    from wcwidth import wcswidth

    width = wcswidth(text)
    return width if width >= 0 else sum(_char_width(c) for c in text)


def _char_width(char: str) -> int:
    from wcwidth import wcwidth

    return max(0, wcwidth(char))


def fit(text: str, width: int | None) -> str:
    """``text`` cut to ``width`` columns, ending in "..." when cut (``None``: unchanged)."""
    if width is None or display_width(text) <= width:
        return text
    if width <= len(ELLIPSIS):
        return ELLIPSIS[:max(0, width)]
    room = width - len(ELLIPSIS)
    out: list[str] = []
    used = 0
    for char in text:
        w = _char_width(char)
        if used + w > room:
            break
        out.append(char)
        used += w
    return "".join(out).rstrip() + ELLIPSIS


Part = Union[tuple[str, int], tuple[str, int, str]]


def _join(parts: Sequence[Part], sep: str) -> str:
    return "".join((p[0] if i == 0 else (p[2] if len(p) > 2 else sep) + p[0])  # type: ignore[misc]
                   for i, p in enumerate(parts))


ESSENTIAL = 9  # a part kept this much is cut, never dropped


def fit_parts(parts: Sequence[Part], width: int | None, sep: str = " | ", min_room: int = 12) -> str:
    """Join ``(text, keep)`` parts (or ``(text, keep, separator before it)``) in ``width``
    columns. While too wide, the part with the lowest ``keep`` goes (the later one on ties);
    when that is the last part and ``min_room`` columns are left for it, it is cut instead,
    so a long last value still shows its start. Parts kept ``ESSENTIAL`` stay: what is left
    is cut."""
    kept = list(parts)
    while width is not None and display_width(_join(kept, sep)) > width:
        lowest = min(p[1] for p in kept)
        if lowest >= ESSENTIAL:
            break
        drop = max(i for i, p in enumerate(kept) if p[1] == lowest)
        if drop == len(kept) - 1:
            last = kept[-1]
            gap = display_width(last[2] if len(last) > 2 else sep)  # type: ignore[misc]
            if width - display_width(_join(kept[:-1], sep)) - gap >= min_room:
                break
        del kept[drop]
    return fit(_join(kept, sep), width)


def terminal_width(stream: TextIO, tty: bool | None = None) -> int | None:
    """The column count of the terminal ``stream`` writes to, or None when it is not a
    terminal (a file, a pipe, a notebook: lines are kept whole there). ``COLUMNS`` wins, as
    with ``shutil.get_terminal_size``; ``tty`` overrides ``stream.isatty()``."""
    if tty is None:
        try:
            tty = stream.isatty()
        except (AttributeError, ValueError):
            tty = False
    if not tty:
        return None
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        return os.get_terminal_size(stream.fileno()).columns or 80
    except (AttributeError, OSError, ValueError):
        return shutil.get_terminal_size().columns


def fit_named_value(build: Callable[[str], Sequence[Part]], name: str, value: str, width: int | None,
                    sep: str = " | ") -> str:
    """``fit_parts(build(name), width)``, but where that would cut ``name=value`` short, the
    name is shortened instead (``validation_top5_accuracy`` -> ``validation...``): a cut value
    (``best: validation_to...``) tells nothing, a cut name still says which metric it is."""
    line = fit_parts(build(name), width, sep)
    if width is None or f"{name}={value}" in line:
        return line
    for keep in range(min(len(name) - 1, 40), 0, -1):  # the longest start of the name that fits
        short = name[:keep] + ELLIPSIS
        shorter = fit_parts(build(short), width, sep)
        if f"{short}={value}" in shorter:
            return shorter
    return line
