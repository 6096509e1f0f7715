"""Metrics collection for local trials, per ``metricsCollectorSpec``.

- StdOut: the trial's output (``stdout.log`` in its directory) is read as it grows.
- File: the file the trial writes. Upstream mounts a per-pod volume at the path; locally
  every trial gets its own copy of the path's directory inside the trial directory, and
  the path is rewritten in the command, args and env (``KATIB_METRICS_FILE`` is set too),
  so parallel trials never write into each other's files.
- TensorFlowEvent (needs the ``tfevent`` extra: TensorBoard reads the files): the event
  files under the directory, read as they grow (``katib.metrics.tfevent``). Upstream mounts
  a volume at the directory; locally every trial gets a mirror of the file system under
  ``tfevent/`` in its directory (``/logs/test`` becomes ``<trial>/tfevent/logs/test``) and
  the command is rewritten to write there (``KATIB_TFEVENT_DIR`` names the directory too).
  Training code often takes the directory *above* the collected one (``--log-path=/logs``,
  writing ``/logs/train`` and ``/logs/test``), so when the command names an ancestor of the
  directory, that ancestor is mirrored instead, and the trial's sibling directories stay
  in its own directory as well.
- Push: the trial calls ``katib.report_metrics``, which writes to the store directly.
- None: nothing is collected.
- PrometheusMetric and Custom need a cluster-side collector and are rejected before
  anything runs.

A collector remembers how far it read in ``collected`` beside the log (a byte offset with
digests of the bytes before it and the metrics' report counts, or records per event file),
so a runner that was killed and started again continues where the last one stopped. The
runner stores a batch of rows first and records how far it read after that, so a runner
killed in between reads those rows again: every row carries its position (the metric's
report number in the output, or the event's step), and the store keeps one row per
position, so the repeats are dropped and every report is stored exactly once. ``collected``
is replaced atomically: it always describes one consistent point of the reading.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from katib.api.defaults import DEFAULT_TFEVENT_DIR
from katib.api.model import CollectorKind, Experiment, Trial
from katib.api.observation import MetricLog
from katib.errors import FieldError, ValidationError
from katib.metrics.collector import FileTailer, LineCollector
from katib.metrics.parsers import TEXT

if TYPE_CHECKING:
    from katib.metrics.tfevent import EventDirectoryReader

__all__ = ["LOCAL_KINDS", "TrialCollector", "check_collector", "local_kinds"]

_ALWAYS_LOCAL = (CollectorKind.STDOUT, CollectorKind.FILE, CollectorKind.PUSH, CollectorKind.NONE)
_FIELD = "spec.metricsCollectorSpec.collector.kind"


def _tensorboard_installed() -> bool:
    try:
        import tensorboard  # type: ignore[import-untyped]  # noqa: F401 - light; its loaders load on first use
    except ImportError:
        return False
    return True


def local_kinds() -> tuple[str, ...]:
    """The collector kinds ``katib run`` can collect here."""
    return _ALWAYS_LOCAL + ((CollectorKind.TENSORFLOW_EVENT,) if _tensorboard_installed() else ())


LOCAL_KINDS = local_kinds()


def check_collector(exp: Experiment) -> None:
    spec = exp.spec.metrics_collector_spec
    kind = spec.kind if spec else CollectorKind.STDOUT
    kinds = local_kinds()
    if kind == CollectorKind.TENSORFLOW_EVENT and kind not in kinds:
        raise ValidationError([FieldError(_FIELD, (
            "TensorFlowEvent collection reads event files with TensorBoard, which is not installed: "
            "pip install 'katib-lite[tfevent]'"))])
    if kind not in kinds:
        raise ValidationError([FieldError(_FIELD, (
            f"{kind} collection needs a cluster-side collector and cannot run locally; "
            f"use one of {', '.join(kinds)} for `katib run`, or run the experiment on Kubernetes"))])


class TrialCollector:
    """Reads one trial's metrics incrementally."""

    def __init__(self, kind: str, tailer: FileTailer | None, directory: Path,
                 rewrite_from: str | None = None, rewrite_to: str | None = None,
                 env: dict[str, str] | None = None, *,
                 events: EventDirectoryReader | None = None, mirror: Path | None = None) -> None:
        self.kind = kind
        self.tailer = tailer
        self.events = events
        self.directory = directory
        self._from = rewrite_from
        self._to = rewrite_to
        self._mirror = mirror  # set: paths are rewritten into this mirror of the file system
        self._collected = rewrite_from  # the directory (or file's directory) the trial writes to
        self.env = env or {}
        # Values of each metric read from the output so far: the next one's position.
        self._reported: dict[str, int] = {}
        # (metric, position) of the rows an earlier runner stored: not returned again.
        self._stored: set[tuple[str, int]] = set()

    @property
    def pushes(self) -> bool:
        return self.kind == CollectorKind.PUSH

    @classmethod
    def for_trial(cls, exp: Experiment, trial: Trial, directory: Path, *, resume: bool = False,
                  stored: Iterable[MetricLog] = ()) -> TrialCollector:
        """The trial's collector; with ``resume``, one that continues after what an earlier
        runner recorded as read, and skips the rows in ``stored`` (the trial's rows in the
        store) that it reads again."""
        spec = exp.spec.metrics_collector_spec
        kind = spec.kind if spec else CollectorKind.STDOUT
        objective = exp.spec.objective
        names = objective.metric_names if objective else []
        fmt = TEXT
        filters: list[str] | None = None
        source = spec.source if spec else None
        path = source.file_system_path.path if source and source.file_system_path else None
        if source is not None:
            if source.file_system_path is not None and source.file_system_path.format:
                fmt = source.file_system_path.format
            if source.filter is not None and source.filter.metrics_format:
                filters = list(source.filter.metrics_format)
        if kind in (CollectorKind.PUSH, CollectorKind.NONE):
            return cls(kind, None, directory)
        if kind == CollectorKind.TENSORFLOW_EVENT:
            self = cls._tfevent(directory, path or DEFAULT_TFEVENT_DIR, names)
        elif kind == CollectorKind.STDOUT:
            tailer = FileTailer(directory / "stdout.log", LineCollector(names, fmt, filters))
            self = cls(kind, tailer, directory)
        else:
            path = path or "/var/log/katib/metrics.log"
            remote_dir = os.path.dirname(path)
            local_dir = directory / "metrics"
            local_dir.mkdir(parents=True, exist_ok=True)
            local_path = local_dir / os.path.basename(path)
            tailer = FileTailer(local_path, LineCollector(names, fmt, filters))
            self = cls(kind, tailer, directory, remote_dir, str(local_dir),
                       env={"KATIB_METRICS_FILE": str(local_path)})
        if resume:
            self._stored = {(r.metric_name, r.position) for r in stored if r.position is not None}
            self._skip_collected()
        return self

    @classmethod
    def _tfevent(cls, directory: Path, path: str, names: Sequence[str]) -> TrialCollector:
        # Imported here: TensorBoard's loaders take a third of a second to import.
        from katib.metrics.tfevent import EventDirectoryReader

        remote = posixpath.normpath(path)
        mirror = directory.absolute() / "tfevent"
        local_dir = _mirrored(mirror, remote)
        local_dir.mkdir(parents=True, exist_ok=True)
        return cls(CollectorKind.TENSORFLOW_EVENT, None, directory, remote, str(local_dir),
                   env={"KATIB_TFEVENT_DIR": str(local_dir)},
                   events=EventDirectoryReader(local_dir, names), mirror=mirror)

    # -- the metrics file path, rewritten for a local run ----------------------------------
    def rewrite(self, argv: list[str]) -> list[str]:
        if self._mirror is not None and self._collected:
            # Mirror the shallowest of the directory and its ancestors the command names.
            for ancestor in _ancestors(self._collected):
                if any(_names(a, ancestor) for a in argv):
                    self._from, self._to = ancestor, str(_mirrored(self._mirror, ancestor))
                    break
        return [self.rewrite_text(a) for a in argv]

    def rewrite_text(self, text: str) -> str:
        if not (self._from and self._to and self._from in text):
            return text
        if self._mirror is None:
            return text.replace(self._from, self._to)
        to = self._to
        return re.sub(_BEFORE + re.escape(self._from) + r"(?=/|$|[^\w.\-])", lambda _: to, text)

    # -- reading ----------------------------------------------------------------------------
    def poll(self) -> list[MetricLog]:
        """New rows since the last poll. Call ``commit`` once they are stored."""
        if self.events is not None:
            return self._positioned(self.events.poll())
        return self._positioned(self.tailer.poll()) if self.tailer is not None else []

    def finish(self) -> list[MetricLog]:
        """The last rows, including a final line without a newline."""
        if self.events is not None:
            return self._positioned(self.events.poll())
        if self.tailer is None:
            return []
        return self._positioned(self.tailer.poll() + self.tailer.close())

    def _positioned(self, rows: list[MetricLog]) -> list[MetricLog]:
        """The rows with their positions, less those an earlier runner stored."""
        out = []
        for row in rows:
            if self.events is not None:
                position = row.step
            else:
                position = self._reported.get(row.metric_name, 0) + 1
                self._reported[row.metric_name] = position
            if position is not None and (row.metric_name, position) in self._stored:
                continue
            out.append(dataclasses.replace(row, position=position))
        return out

    @property
    def refused(self) -> dict[str, list[str]]:
        """Per metric, the values read but refused as not finite numbers."""
        if self.events is not None:
            return self.events.refused
        return self.tailer.collector.refused if self.tailer is not None else {}

    def commit(self) -> None:
        """Record that everything returned so far is in the store. A runner killed before
        this reads those lines again (and the store drops them as repeats); one killed after
        it does not."""
        state: Any
        if self.events is not None:
            state = self.events.progress
        elif self.tailer is not None:
            state = {**self.tailer.checkpoint(), "reported": self._reported}
        else:
            return
        # Replaced atomically: a runner killed mid-write leaves the previous, whole record.
        # Not fsynced: an older record after a power loss only means rows read again, which
        # the store drops as repeats, since offset and report counts stay consistent.
        tmp = self._offset_file().with_suffix(".tmp")
        tmp.write_text(json.dumps(state, sort_keys=True))
        os.replace(tmp, self._offset_file())

    def _offset_file(self) -> Path:
        return self.directory / "collected"

    def _skip_collected(self) -> None:
        """Continue after what an earlier runner stored: replay those bytes through the
        collector without returning rows, so report counts (steps) continue correctly."""
        try:
            text = self._offset_file().read_text().strip()
            state = json.loads(text or "{}")
        except (OSError, ValueError):
            return
        if self.events is not None:
            if isinstance(state, dict):
                self.events.skip({str(k): int(v) for k, v in state.items() if isinstance(v, int)})
            return
        if self.tailer is None:
            return
        if isinstance(state, int):  # written by an earlier version: the offset alone
            self.tailer.skip_to(state)
            self._reported = self.tailer.collector.counts
            return
        if not isinstance(state, dict) or not isinstance(state.get("offset"), int):
            return
        reported = state.get("reported")
        if not isinstance(reported, dict):
            return
        # A file rewritten since is read from its beginning; its values are new reports,
        # numbered after the ones stored (so none of them is taken for a repeat).
        self.tailer.skip_to(state["offset"], state)
        self._reported = {str(k): v for k, v in reported.items() if isinstance(v, int)}


# A path named on its own: not the tail of a longer path (``/data/logs`` does not name ``/logs``).
_BEFORE = r"(?<![\w.\-/])"


def _names(text: str, path: str) -> bool:
    """``text`` names ``path`` itself (with or without a trailing slash), not a path below it."""
    return re.search(_BEFORE + re.escape(path) + r"/?(?![\w.\-/])", text) is not None


def _ancestors(path: str) -> list[str]:
    """``path`` and its ancestors, shallowest first, without the root and top-level
    directories (``/var`` or ``/tmp`` named in a command says nothing about the metrics)."""
    parts = PurePosixPath(path).parts
    return [str(PurePosixPath(*parts[:i])) for i in range(min(3, len(parts)), len(parts) + 1)]


def _mirrored(mirror: Path, path: str) -> Path:
    return mirror / path.lstrip("/")
