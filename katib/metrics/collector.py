"""Collect metrics while a trial runs: feed its output as it arrives, get MetricLog rows.

Upstream's sidecar reads the metrics file once, after training ends (§13 item 19); here the
same parsing runs incrementally so that metrics reach the store live, which early stopping
and live curves need. ``LineCollector`` takes text or bytes in arbitrary chunks;
``FileTailer`` follows a file as the trial writes it (the File collector).

A trial may rewrite its metrics file instead of appending to it: truncate and write,
``seek(0)`` and write over it (same size or not), or replace it with a new file. The tailer
notices when the path names another file, when the file is shorter than what was read, or
when bytes already read changed (it compares the first and the last 4 KiB it read with the
file at every poll). It then reads the file again from its beginning, and every value in it
is a new report: the values read from the earlier content stay recorded (the trial did
report them, so a trial's minimum or maximum includes them), and values without a step of
their own continue the report count. A rewrite that leaves the first and the last 4 KiB
read as they were, and the file no shorter, cannot be told from an append and is read as
one; a rewrite with the very same bytes reports nothing new.
"""

from __future__ import annotations

import codecs
import hashlib
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, BinaryIO

from katib.api.observation import UNAVAILABLE, MetricLog, utcnow
from katib.metrics.parsers import TEXT, LineParser
from katib.metrics.values import MAX_REFUSED_KEPT

__all__ = ["LineCollector", "FileTailer"]

log = logging.getLogger(__name__)

# Progress bars end their updates with "\r"; treat it as a line end so they do not pile up.
_LINE_END = re.compile(r"\r\n|\r|\n")
_MAX_LINE = 1 << 20  # a "line" this long without a newline is parsed as is, not buffered forever
# FileTailer compares this many bytes at the start and at the end of what it read with the
# file, to notice a rewrite that keeps the file's identity and size.
_WINDOW = 4096
# Of what was read, the last bytes kept, to compare with the file after a restart.
_RECENT = 1 << 16


class LineCollector:
    """Turns a trial's output, fed in chunks, into MetricLog rows.

    Each row's step is the step its line names (JSON ``"step"``, or a TEXT value named
    ``step`` or ``epoch`` on the same line); otherwise the metric's report count, starting
    at 1 (so the third ``loss=`` line has step 3, which is what medianstop's ``start_step``
    counts). Lines without a timestamp are stamped with the time they were fed.

    Not thread-safe: one collector per output stream.
    """

    def __init__(
        self,
        metric_names: Sequence[str],
        fmt: str = TEXT,
        filters: Sequence[str] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.parser = LineParser(metric_names, fmt, filters, clock)
        self._clock = clock
        self._buffer = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._counts: dict[str, int] = {}
        self._refused: dict[str, list[str]] = {}

    @property
    def objective(self) -> str:
        return self.parser.metric_names[0]

    @property
    def counts(self) -> dict[str, int]:
        """How many values of each metric were collected so far."""
        return dict(self._counts)

    @property
    def refused(self) -> dict[str, list[str]]:
        """Per metric, the first few values refused as not finite numbers (never rows)."""
        return {name: list(values) for name, values in self._refused.items()}

    def feed(self, chunk: str | bytes) -> list[MetricLog]:
        """Add output; returns the rows of every line completed by it. A trailing partial
        line waits for the next chunk (or ``close``)."""
        text = self._decoder.decode(chunk) if isinstance(chunk, bytes) else chunk
        if not text:
            return []
        self._buffer += text
        # A "\r" at the very end may be the first half of "\r\n": keep it for the next chunk.
        hold = "\r" if self._buffer.endswith("\r") else ""
        parts = _LINE_END.split(self._buffer[: len(self._buffer) - len(hold)])
        self._buffer = parts.pop() + hold
        if len(self._buffer) > _MAX_LINE:
            parts.append(self._buffer)
            self._buffer = ""
        now = self._clock()
        rows: list[MetricLog] = []
        for line in parts:
            rows.extend(self._rows(line, now))
        return rows

    @property
    def pending_bytes(self) -> int:
        """Size in bytes of the buffered partial line (not yet returned as rows)."""
        return len(self._buffer.encode("utf-8", errors="replace"))

    def feed_line(self, line: str) -> list[MetricLog]:
        """Parse one whole line (no buffering)."""
        return self._rows(line, self._clock())

    def close(self) -> list[MetricLog]:
        """End of output: parse what is left in the buffer as a last line."""
        rest = self._buffer + self._decoder.decode(b"", final=True)
        self._buffer = ""
        rows: list[MetricLog] = []
        now = self._clock()
        for line in _LINE_END.split(rest):
            rows.extend(self._rows(line, now))
        return rows

    def reset_partial(self) -> None:
        """Drop a buffered incomplete line (its file was replaced under it)."""
        self._buffer = ""
        self._decoder.reset()

    def unavailable(self) -> MetricLog | None:
        """Upstream's marker row for an objective that never appeared, stamped now (not the
        zero time); None when the objective was seen."""
        if self._counts.get(self.objective):
            return None
        return MetricLog(self.objective, UNAVAILABLE, self._clock())

    def _rows(self, line: str, now: datetime) -> list[MetricLog]:
        parsed = self.parser.parse(line, now)
        if parsed is None:
            return []
        for name, value in parsed.refused:
            kept = self._refused.setdefault(name, [])
            if not kept:  # once per metric: a trial printing nan every step must not flood the log
                log.warning("metric %r: %r is not a finite number and is not recorded (line: %.200s)",
                            name, value, line.strip())
            if value not in kept and len(kept) < MAX_REFUSED_KEPT:
                kept.append(value)
        rows = []
        for name, value in parsed.values:
            count = self._counts.get(name, 0) + 1
            self._counts[name] = count
            step = parsed.step if parsed.step is not None else count
            rows.append(MetricLog(name, value, parsed.timestamp, step))
        return rows


class FileTailer:
    """Follows a metrics file as a trial writes it and feeds a LineCollector.

    The file may not exist yet (the trial has not started writing); if it is replaced,
    shrinks or is rewritten in place, reading starts again from its beginning (see the
    module docstring). Partial last lines wait in the collector until completed.
    """

    def __init__(self, path: str | os.PathLike[str], collector: LineCollector,
                 chunk_size: int = 1 << 16) -> None:
        self.path = os.fspath(path)
        self.collector = collector
        self.chunk_size = chunk_size
        self._fh: BinaryIO | None = None
        self._inode: tuple[int, int] | None = None
        self._offset = 0
        self._head = b""  # the first bytes read of the file (up to _WINDOW)
        self._recent = bytearray()  # the last bytes read (up to _RECENT)

    def poll(self) -> list[MetricLog]:
        """Read whatever was appended since the last poll; returns the new rows."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return []
        ident = (st.st_dev, st.st_ino)
        if (self._fh is None or ident != self._inode or st.st_size < self._offset
                or self._rewritten(self._fh)):
            if self._fh is not None:
                log.info("metrics file %s was replaced or rewritten; reading it again", self.path)
            try:
                self._reopen(ident)
            except FileNotFoundError:  # removed between stat and open: try again next poll
                return []
        fh = self._fh
        if fh is None:  # _reopen always sets it; this satisfies the type checker
            return []
        rows: list[MetricLog] = []
        while True:
            data = fh.read(self.chunk_size)
            if not data:
                break
            self._consume(data)
            rows.extend(self.collector.feed(data))
        return rows

    @property
    def committed_offset(self) -> int:
        """Bytes of the file whose lines were returned: what was read, less a partial last
        line still waiting in the collector. A reader restarted at this offset reads no
        returned line again and misses none."""
        return self._offset - self.collector.pending_bytes

    def checkpoint(self) -> dict[str, Any]:
        """``committed_offset`` and digests of the first and the last bytes before it, for
        ``skip_to`` to check that the file still holds what was read."""
        offset = self.committed_offset
        head = self._head[:offset]
        # self._recent ends at self._offset; the tail window ends at the committed offset.
        end = len(self._recent) - (self._offset - offset)
        tail = bytes(self._recent[max(0, end - _WINDOW):max(0, end)])
        return {"offset": offset, "head": [len(head), _digest(head)],
                "tail": [len(tail), _digest(tail)]}

    def skip_to(self, offset: int, check: dict[str, Any] | None = None) -> bool:
        """Continue from ``offset`` (a ``committed_offset`` of an earlier reader): the bytes
        before it go through the collector, so its report counts continue, but their rows are
        dropped. With ``check`` (an earlier ``checkpoint()``), a file that no longer holds
        the bytes that reader read (it was rewritten meanwhile) is read from its beginning
        instead, and False is returned."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return True
        self._reopen((st.st_dev, st.st_ino))
        fh = self._fh
        if fh is None:  # _reopen always sets it; this satisfies the type checker
            return True
        if check is not None and (st.st_size < offset or not _holds(fh, offset, check)):
            log.info("metrics file %s was rewritten since it was last read; reading it again",
                     self.path)
            return False
        remaining = offset
        while remaining > 0:
            data = fh.read(min(self.chunk_size, remaining))
            if not data:
                break
            remaining -= len(data)
            self._consume(data)
            self.collector.feed(data)
        return True

    def follow(self, stop: threading.Event, interval: float = 0.5) -> Iterator[list[MetricLog]]:
        """Poll every ``interval`` seconds until ``stop`` is set, yielding non-empty batches;
        after ``stop`` one last poll and the collector's final partial line."""
        while not stop.is_set():
            rows = self.poll()
            if rows:
                yield rows
            stop.wait(interval)
        rows = self.poll() + self.close()
        if rows:
            yield rows

    def close(self) -> list[MetricLog]:
        """Stop following; returns the rows of a last line that had no newline."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        return self.collector.close()

    def _consume(self, data: bytes) -> None:
        """Account for ``data`` read at the current offset."""
        if len(self._head) < _WINDOW:
            self._head += data[:_WINDOW - len(self._head)]
        self._recent += data[-_RECENT:]
        del self._recent[:-_RECENT]
        self._offset += len(data)

    def _rewritten(self, fh: BinaryIO) -> bool:
        """Whether the bytes read first and last are no longer in the file where they were
        (two small reads from the page cache per poll)."""
        if self._offset == 0:
            return False
        tail = bytes(self._recent[-_WINDOW:])
        fd = fh.fileno()
        try:
            return (os.pread(fd, len(self._head), 0) != self._head
                    or os.pread(fd, len(tail), self._offset - len(tail)) != tail)
        except OSError:
            return True

    def _reopen(self, ident: tuple[int, int]) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        self._fh = open(self.path, "rb")  # noqa: SIM115 - kept open between polls
        self._inode = ident
        self._offset = 0
        self._head = b""
        self._recent = bytearray()
        # Bytes of an incomplete line of the old file must not be glued to the new one.
        self.collector.reset_partial()

    def __enter__(self) -> FileTailer:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _holds(fh: BinaryIO, offset: int, check: dict[str, Any]) -> bool:
    """Whether the open file has the checkpoint's first and last bytes before ``offset``."""
    try:
        (head_len, head), (tail_len, tail) = check["head"], check["tail"]
        fd = fh.fileno()
        return (_digest(os.pread(fd, int(head_len), 0)) == head
                and _digest(os.pread(fd, int(tail_len), offset - int(tail_len))) == tail)
    except (KeyError, TypeError, ValueError, OSError):
        return False
