"""Read metrics from a directory of TensorBoard event files while a trial writes them.

Upstream's TensorFlowEvent collector (reference §9.3) walks the directory once, after
training, and loads every file with TensorBoard's ``EventAccumulator``. Here the same
selection runs incrementally, so values reach the store (and the live curves) during
training: each poll lists the directory again, and reads only the files that grew since the
last poll, from where it stopped. Records are framed and CRC-checked by TensorBoard's own
loader (``tensorboard.backend.event_processing``), which runs on TensorBoard's compat
layer, so neither TensorFlow nor a hand-written record parser is needed.

Selection, as upstream: a value belongs to metric ``m`` when its tag starts with ``m``'s
last path component and the event file's directory ends with ``m``'s parent path, so
``test/accuracy`` reads ``accuracy`` from files in a ``test`` directory and plain
``accuracy`` reads it from any directory. Two deliberate differences: the directory must
end with the parent path's whole components (upstream's string test lets ``test/accuracy``
match a ``latest`` directory), and only numeric scalars are reported (``simple_value``, or
a rank-0 tensor), never the text of a histogram, image or string tensor whose tag happens
to share the prefix. A scalar that is not finite (NaN, inf) is refused, as every collector
refuses one (``katib.metrics.values``): logged once per metric and kept in ``refused``.

Each row is stamped with the event's wall time (UTC, microseconds) and carries its step.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader  # type: ignore[import-untyped]
from tensorboard.compat.proto import event_pb2, summary_pb2  # type: ignore[import-untyped]
from tensorboard.util import tensor_util  # type: ignore[import-untyped]

from katib.api.observation import MetricLog
from katib.metrics.values import MAX_REFUSED_KEPT, is_non_finite

__all__ = ["EventDirectoryReader", "metrics_for", "scalar_text"]

log = logging.getLogger(__name__)


def _is_event_file(name: str) -> bool:
    # TensorBoard's own test (io_wrapper.IsTensorFlowEventsFile): checkpoints and other
    # files written beside the summaries are never opened.
    return "tfevents" in name


def _parts(path: str) -> tuple[str, ...]:
    return tuple(p for p in path.replace(os.sep, "/").split("/") if p)


@dataclass(frozen=True)
class _Metric:
    name: str
    tag_prefix: str
    parent: tuple[str, ...]

    @classmethod
    def parse(cls, name: str) -> _Metric:
        parts = _parts(name)
        if not parts:
            raise ValueError(f"metric name {name!r} has no name after its directory")
        return cls(name, parts[-1], parts[:-1])

    def reads_directory(self, directory: tuple[str, ...]) -> bool:
        return not self.parent or directory[len(directory) - len(self.parent):] == self.parent


def metrics_for(tag: str, directory: str, metric_names: Iterable[str]) -> list[str]:
    """The metrics a value tagged ``tag`` in an event file in ``directory`` belongs to."""
    parts = _parts(os.path.abspath(directory))
    return [m.name for m in map(_Metric.parse, metric_names)
            if m.reads_directory(parts) and tag.startswith(m.tag_prefix)]


def scalar_text(value: summary_pb2.Summary.Value) -> str | None:
    """A summary value as the text the store keeps, or None when it is no numeric scalar.
    Single-precision values keep their shortest form (``0.95``, not ``0.949999988...``)."""
    kind = value.WhichOneof("value")
    if kind == "simple_value":
        return str(np.float32(value.simple_value))
    if kind != "tensor":
        return None
    try:
        array = tensor_util.make_ndarray(value.tensor)
    except (TypeError, ValueError) as exc:
        log.debug("tag %r: tensor not readable: %s", value.tag, exc)
        return None
    if array.ndim != 0 or array.dtype.kind not in "fiu":
        return None
    return str(array[()])


class _EventFile:
    """One event file and how many of its records were read."""

    def __init__(self, path: str, metrics: list[_Metric], refused: dict[str, list[str]] | None = None) -> None:
        self.path = path
        self.metrics = metrics
        self.refused = refused if refused is not None else {}
        self.records = 0
        self._size = -1
        self._ident: tuple[int, int] | None = None
        self._loader: RawEventFileLoader | None = None

    def _grown(self) -> RawEventFileLoader | None:
        """The file's loader when the file grew (or appeared) since the last read, else
        None. A file that shrank or was replaced is read again from its beginning."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        ident = (st.st_dev, st.st_ino)
        if self._loader is not None and (ident != self._ident or st.st_size < self._size):
            log.info("event file %s was replaced or truncated; reading it again", self.path)
            self._loader = None
        if self._loader is None:
            self._loader = RawEventFileLoader(self.path)
            self._ident, self.records = ident, 0
        elif st.st_size == self._size:
            return None
        self._size = st.st_size
        return self._loader

    def poll(self) -> list[MetricLog]:
        """Rows of the events appended since the last poll; a partly written last record
        waits for the next one."""
        rows: list[MetricLog] = []
        try:
            loader = self._grown()
            if loader is not None:
                for event in self._events(loader):
                    rows.extend(self._rows(event))
        except Exception as exc:  # noqa: BLE001 - as upstream: one unreadable file stops no trial
            log.warning("event file %s: stopped reading after record %d: %s", self.path, self.records, exc)
        return rows

    def skip(self, records: int) -> None:
        """Pass over the first ``records`` records without making rows."""
        try:
            loader = self._grown()
            if loader is not None:
                for _ in self._events(loader):
                    if self.records >= records:
                        break
        except Exception as exc:  # noqa: BLE001
            log.warning("event file %s: stopped skipping after record %d: %s", self.path, self.records, exc)
        self._size = -1  # records may follow the skipped ones: read on at the next poll

    def _events(self, loader: RawEventFileLoader) -> Iterator[event_pb2.Event]:
        for record in loader.Load():
            self.records += 1
            try:
                yield event_pb2.Event.FromString(record)
            except DecodeError as exc:  # the CRC held, so the writer wrote it like this
                log.warning("event file %s: record %d is no Event (%s); skipped", self.path, self.records, exc)

    def _rows(self, event: event_pb2.Event) -> list[MetricLog]:
        if not event.HasField("summary"):
            return []
        out: list[MetricLog] = []
        stamp = datetime.fromtimestamp(event.wall_time, UTC)
        for value in event.summary.value:
            names = [m.name for m in self.metrics if value.tag.startswith(m.tag_prefix)]
            text = scalar_text(value) if names else None
            if text is not None and is_non_finite(text):
                self._refuse(names, text, value.tag, event.step)
            elif text is not None:
                out.extend(MetricLog(name, text, stamp, event.step) for name in names)
        return out

    def _refuse(self, names: list[str], text: str, tag: str, step: int) -> None:
        for name in names:
            kept = self.refused.setdefault(name, [])
            if not kept:
                log.warning("event file %s: metric %r (tag %r, step %d): %s is not a finite number and is "
                            "not recorded", self.path, name, tag, step, text)
            if text not in kept and len(kept) < MAX_REFUSED_KEPT:
                kept.append(text)


class EventDirectoryReader:
    """Follows the event files under ``directory`` (and its subdirectories) and turns the
    values of ``metric_names`` into MetricLog rows.

    ``poll`` returns the rows of events written since the last poll. ``progress`` says how
    many records of each file were read (all of them returned by ``poll``); a reader given
    that to ``skip`` continues where the old one stopped. Not thread-safe.
    """

    def __init__(self, directory: str | os.PathLike[str], metric_names: Sequence[str]) -> None:
        if not metric_names:
            raise ValueError("no metric names to read")
        self.directory = os.path.abspath(os.fspath(directory))
        self._metrics = [_Metric.parse(n) for n in metric_names]
        self._files: dict[str, _EventFile] = {}
        self._refused: dict[str, list[str]] = {}

    @property
    def refused(self) -> dict[str, list[str]]:
        """Per metric, the first few values refused as not finite numbers (never rows)."""
        return {name: list(values) for name, values in self._refused.items()}

    def poll(self) -> list[MetricLog]:
        rows: list[MetricLog] = []
        for f in self._scan():
            rows.extend(f.poll())
        return rows

    @property
    def progress(self) -> dict[str, int]:
        """Records read per file, by path relative to the directory."""
        return {os.path.relpath(path, self.directory): f.records for path, f in self._files.items() if f.records}

    def skip(self, progress: Mapping[str, int]) -> None:
        """Pass over the first records of each file without returning their rows."""
        for f in self._scan():
            count = progress.get(os.path.relpath(f.path, self.directory), 0)
            if count > 0:
                f.skip(count)

    def _scan(self) -> list[_EventFile]:
        """The event files that hold a metric, in path order; new ones are remembered."""
        found: list[_EventFile] = []
        for root, dirs, names in os.walk(self.directory):
            dirs.sort()
            events = sorted(n for n in names if _is_event_file(n))
            if not events:
                continue
            parts = _parts(root)
            metrics = [m for m in self._metrics if m.reads_directory(parts)]
            if not metrics:  # no metric reads this directory: never open its files
                continue
            for name in events:
                path = os.path.join(root, name)
                f = self._files.get(path)
                if f is None:
                    f = self._files[path] = _EventFile(path, metrics, self._refused)
                found.append(f)
        return found
