"""Turn one line of a trial's output into metric values, as Katib's file collector does.

Two formats, chosen by ``metricsCollectorSpec.source.fileSystemPath.format``:

* ``TEXT`` (StdOut and File collectors): a line counts only if it mentions a wanted metric
  name; every match of every filter regex gives ``(group 1 = name, group 2 = value)``
  (``FindAll`` semantics, so ``loss=0.3 acc=0.9`` yields two values). The default filter is
  upstream's ``name=value`` pattern; custom filters run on RE2, as upstream's Go regexp
  (``katib.api.metricsformat``).
* ``JSON``: one object per line; wanted keys give values, strings and numbers alike.

Values follow ``katib.metrics.values``: a value that parses as a number but is not finite
(``nan``, ``inf``, ``-1e400``) is refused, and so is what the default filter captures of
such a word (upstream stores ``-`` for ``loss=-inf``); refused values come back in
``ParsedLine.refused``, never as values.

Where upstream stamps a line without a leading timestamp with the zero time (so "latest"
depends on row order, reference §13 item 7) we stamp it with the time it was read. The step
a line names (``step=3``, ``epoch=3`` or a JSON ``"step"`` key) is returned alongside.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from katib.api.metricsformat import compile_metrics_format
from katib.api.observation import MetricLog, utcnow
from katib.metrics.values import finite_number, is_non_finite

__all__ = [
    "DEFAULT_FILTER",
    "TEXT",
    "JSON",
    "FORMATS",
    "STEP_NAMES",
    "TIMESTAMP_KEY",
    "ParsedLine",
    "LineParser",
    "compile_filters",
    "parse_rfc3339",
    "parse_lines",
]

log = logging.getLogger(__name__)

DEFAULT_FILTER = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"
TEXT = "TEXT"
JSON = "JSON"
FORMATS = (TEXT, JSON)
# Names a line may use to say which training step its values belong to, in priority order.
STEP_NAMES = ("step", "epoch")
TIMESTAMP_KEY = "timestamp"

# The default filter run by Python's backtracking engine is quadratic on a long word with no
# "=" after it (every suffix of the word is tried); Go's RE2 is linear. These two patterns
# give exactly its FindAll matches in linear time: the name is possessive (a shorter name
# can never be followed by "=" or a space) and a match starts only where a name starts, or
# right where the previous match ended (Go resumes its search there, e.g. "a=1b=2").
_VALUE = r"\s*+=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"
_DEFAULT_SEARCH = re.compile(r"(?<![\w|-])([\w|-]++)" + _VALUE)
_DEFAULT_AT = re.compile(r"([\w|-]++)" + _VALUE)
# The rest of the word a default-filter value starts: "-" + "inf" is what the line said.
_WORD_REST = re.compile(r"[\w.+-]*")

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})\Z"
)


def parse_rfc3339(text: str) -> datetime | None:
    """Parse an RFC 3339 timestamp (nanoseconds allowed, truncated to microseconds) into an
    aware UTC datetime, or None. ``datetime.fromisoformat`` rejects 9 fractional digits,
    which Go's RFC3339Nano writes, hence this small parser."""
    m = _RFC3339.match(text)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    frac, zone = m.group(7) or "", m.group(8)
    micros = int((frac + "000000")[:6])
    if zone in ("Z", "z"):
        tz = timezone.utc
    else:
        sign = 1 if zone[0] == "+" else -1
        tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    try:
        return datetime(year, month, day, hour, minute, second, micros, tz).astimezone(timezone.utc)
    except ValueError:  # e.g. month 13: not a timestamp, just a token that looks like one
        return None


def compile_filters(filters: Sequence[str] | None) -> list[Any]:
    """Compile ``filter.metricsFormat``; an empty or missing list means the default filter.

    Custom filters are compiled with RE2 (linear time, Go's syntax); the default filter runs
    on its linear equivalent here. Raises ValueError naming the regex when one does not
    compile or has fewer than two groups (group 1 is the metric name, group 2 its value).
    """
    patterns = list(filters or []) or [DEFAULT_FILTER]
    compiled: list[Any] = []
    for i, pattern in enumerate(patterns):
        if pattern == DEFAULT_FILTER:
            compiled.append(_DEFAULT)
            continue
        try:
            compiled.append(compile_metrics_format(pattern))
        except ValueError as e:
            raise ValueError(f"filter.metricsFormat[{i}]: {e}") from None
    return compiled


def _default_matches(line: str) -> Iterator[re.Match[str]]:
    pos, prev_end = 0, -1
    while pos <= len(line):
        m = _DEFAULT_AT.match(line, pos) if pos == prev_end else None
        m = m or _DEFAULT_SEARCH.search(line, pos)
        if m is None:
            return
        yield m
        pos = prev_end = m.end()  # never empty: a name and "=" are always consumed


_DEFAULT = object()  # stands for the default filter in a compiled list


def _matches(rx: Any, line: str) -> Iterator[Any]:
    if rx is _DEFAULT:
        return _default_matches(line)
    return rx.finditer(line)  # type: ignore[no-any-return]  # RE2: linear in the line


@dataclass(frozen=True)
class ParsedLine:
    """The wanted values of one line, in line order, with the step the line names (if any),
    and the wanted values it held that are refused (``katib.metrics.values``)."""

    values: list[tuple[str, str]]
    timestamp: datetime
    step: int | None = None
    refused: list[tuple[str, str]] = field(default_factory=list)


def _as_step(value: object) -> int | None:
    """A step is a non-negative whole number; ``3`` and ``3.0`` count, ``0.5`` does not."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number) or not number.is_integer() or number < 0:
        return None
    return int(number)


def _json_value(value: object) -> str | None:
    """Upstream keeps only string values (numbers are silently dropped, §13 item 7); we keep
    numbers too, written as Python writes them so that they parse back to the same float."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    return None


def _json_timestamp(value: object) -> datetime | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        seconds: float = value
    elif isinstance(value, str):
        parsed = parse_rfc3339(value.strip())
        if parsed is not None:
            return parsed
        try:
            seconds = float(value)
        except ValueError:
            return None
    else:
        return None
    try:
        # The whole fraction is sub-seconds (upstream reads ".5" as 5 ns, §9.2).
        return datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


class LineParser:
    """Parses single lines of one trial's output. Stateless apart from its configuration.

    ``metric_names`` are the metrics to keep (objective first). ``fmt`` is ``TEXT`` or
    ``JSON``; ``filters`` are custom TEXT regexes (JSON takes none, as upstream validates).
    ``clock`` stamps lines that carry no timestamp.
    """

    def __init__(
        self,
        metric_names: Sequence[str],
        fmt: str = TEXT,
        filters: Sequence[str] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        names = [n for n in metric_names if n]
        if not names:
            raise ValueError("metric_names: give at least the objective metric name")
        fmt = (fmt or TEXT).upper()
        if fmt not in FORMATS:
            raise ValueError(f"format: {fmt!r} is not one of {', '.join(FORMATS)}")
        if fmt == JSON and filters:
            raise ValueError("filter: must be empty when the format is JSON")
        self.metric_names = names
        self.format = fmt
        self.clock = clock
        self._wanted = set(names)
        self._filters = compile_filters(filters) if fmt == TEXT else []

    def parse(self, line: str, read_at: datetime | None = None) -> ParsedLine | None:
        """The wanted values of ``line``, or None when it has none. ``read_at`` is the time
        the line was read; it stamps the values unless the line carries its own time."""
        line = line.strip()
        if not line:
            return None
        if self.format == JSON:
            return self._parse_json(line, read_at)
        return self._parse_text(line, read_at)

    def _parse_text(self, line: str, read_at: datetime | None) -> ParsedLine | None:
        # Cheap substring test first, as upstream: most output lines mention no metric.
        if not any(name in line for name in self._wanted):
            return None
        timestamp = None
        head, sep, rest = line.partition(" ")
        if sep:
            timestamp = parse_rfc3339(head)
            if timestamp is not None:
                line = rest
        values: list[tuple[str, str]] = []
        refused: list[tuple[str, str]] = []
        steps: dict[str, str] = {}
        for rx in self._filters:
            for m in _matches(rx, line):
                name, value = (m.group(1) or "").strip(), (m.group(2) or "").strip()
                if name not in self._wanted and name not in STEP_NAMES:
                    continue
                if rx is _DEFAULT:
                    # The default filter captures only the numeric start of a word: "-" of
                    # "-inf", nothing of "nan". What the line said is the whole word.
                    said = m.group(2) + _WORD_REST.match(line, m.end(2)).group()  # type: ignore[union-attr]
                    if is_non_finite(said) or (value and finite_number(value) is None):
                        if name in self._wanted:
                            refused.append((name, said))
                        continue
                elif is_non_finite(value):
                    if name in self._wanted:
                        refused.append((name, value))
                    continue
                if not value:  # the default filter also matches "name=" with nothing after it
                    continue
                if name in STEP_NAMES:
                    steps.setdefault(name, value)
                if name in self._wanted:
                    values.append((name, value))
        if not values and not refused:
            return None
        step = next((s for s in (_as_step(steps.get(n)) for n in STEP_NAMES) if s is not None), None)
        return ParsedLine(values, timestamp or read_at or self.clock(), step, refused)

    def _parse_json(self, line: str, read_at: datetime | None) -> ParsedLine | None:
        try:
            obj = json.loads(line)
        except ValueError:
            log.debug("skipping a line that is not JSON: %.80s", line)
            return None
        if not isinstance(obj, dict):
            return None
        values: list[tuple[str, str]] = []
        refused: list[tuple[str, str]] = []
        for name in self.metric_names:
            if name in obj:
                value = _json_value(obj[name])
                if value is None:
                    continue
                # json.loads reads NaN, Infinity and 1e400 (as inf): refused like "nan" text.
                (refused if is_non_finite(value) else values).append((name, value))
        if not values and not refused:
            return None
        timestamp = _json_timestamp(obj[TIMESTAMP_KEY]) if TIMESTAMP_KEY in obj else None
        step = next((s for s in (_as_step(obj.get(n)) for n in STEP_NAMES) if s is not None), None)
        return ParsedLine(values, timestamp or read_at or self.clock(), step, refused)

    def logs(self, line: str, read_at: datetime | None = None) -> list[MetricLog]:
        """``parse`` as MetricLog rows; ``step`` is only what the line says (else None)."""
        parsed = self.parse(line, read_at)
        if parsed is None:
            return []
        return [MetricLog(n, v, parsed.timestamp, parsed.step) for n, v in parsed.values]


def parse_lines(
    lines: Iterable[str],
    metric_names: Sequence[str],
    fmt: str = TEXT,
    filters: Sequence[str] | None = None,
) -> list[MetricLog]:
    """Parse a whole finished output (what upstream's collector does after the trial ends).
    Lines without a timestamp all get the time of this call; steps are as the lines say."""
    parser = LineParser(metric_names, fmt, filters)
    now = parser.clock()
    out: list[MetricLog] = []
    for line in lines:
        out.extend(parser.logs(line, now))
    return out
