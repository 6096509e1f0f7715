"""The TensorFlowEvent reader on event files written by TensorBoard's own writers."""

from __future__ import annotations

import io
import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorboard")

from tensorboard.backend.event_processing import event_file_loader  # type: ignore[import-untyped]
from tensorboard.compat.proto import event_pb2, summary_pb2  # type: ignore[import-untyped]
from tensorboard.summary.writer.event_file_writer import EventFileWriter  # type: ignore[import-untyped]
from tensorboard.summary.writer.record_writer import RecordWriter  # type: ignore[import-untyped]
from tensorboard.util import tensor_util  # type: ignore[import-untyped]

from katib.metrics.tfevent import EventDirectoryReader, metrics_for

T0 = 1_700_000_000.25


def scalar(tag: str, value: float) -> summary_pb2.Summary.Value:
    return summary_pb2.Summary.Value(tag=tag, simple_value=value)


def tensor(tag: str, value: object, dtype: str | None = None) -> summary_pb2.Summary.Value:
    return summary_pb2.Summary.Value(tag=tag, tensor=tensor_util.make_tensor_proto(value, dtype=dtype))


def event(step: int, *values: summary_pb2.Summary.Value, wall_time: float | None = None) -> event_pb2.Event:
    return event_pb2.Event(wall_time=T0 + step if wall_time is None else wall_time, step=step,
                           summary=summary_pb2.Summary(value=list(values)))


def write(logdir: Path, *events: event_pb2.Event) -> None:
    """Write with TensorBoard's EventFileWriter (a file_version record first, as TensorFlow does)."""
    writer = EventFileWriter(str(logdir))
    for e in events:
        writer.add_event(e)
    writer.close()


def record(e: event_pb2.Event) -> bytes:
    """One framed record, by TensorBoard's RecordWriter."""
    buf = io.BytesIO()
    RecordWriter(buf).write(e.SerializeToString())
    return buf.getvalue()


def rows(reader: EventDirectoryReader) -> list[tuple[str, str, int | None]]:
    return [(r.metric_name, r.value, r.step) for r in reader.poll()]


def test_simple_values_become_rows_with_wall_time_and_step(tmp_path: Path) -> None:
    write(tmp_path, event(1, scalar("accuracy", 0.5), scalar("loss", 2.25), wall_time=T0 + 0.123456),
          event(2, scalar("accuracy", 0.95)))
    got = EventDirectoryReader(tmp_path, ["accuracy", "loss"]).poll()
    assert [(r.metric_name, r.value, r.step) for r in got] == [
        ("accuracy", "0.5", 1), ("loss", "2.25", 1), ("accuracy", "0.95", 2)]  # float32 kept short
    assert got[0].timestamp == datetime.fromtimestamp(T0 + 0.123456, UTC)
    assert got[0].timestamp.tzinfo is UTC and got[0].timestamp.microsecond == 373456
    assert got[2].timestamp == datetime.fromtimestamp(T0 + 2, UTC)


def test_scalar_tensors_count_and_other_tensors_do_not(tmp_path: Path) -> None:
    histogram = summary_pb2.Summary.Value(tag="accuracy_hist", histo=summary_pb2.HistogramProto(min=0, max=1))
    write(tmp_path,
          event(1, tensor("accuracy", 0.75, "float32"), tensor("loss", 0.125, "float64"), tensor("steps", 7, "int64")),
          event(2, tensor("accuracy_per_class", np.array([0.5, 0.25], dtype=np.float32)),
                tensor("accuracy_name", "best"), tensor("accuracy_ok", True), histogram))
    reader = EventDirectoryReader(tmp_path, ["accuracy", "loss", "steps"])
    assert rows(reader) == [("accuracy", "0.75", 1), ("loss", "0.125", 1), ("steps", "7", 1)]


def test_metric_names_with_a_directory_select_subdirectories(tmp_path: Path) -> None:
    for name, acc in [("train", 0.9), ("test", 0.8), ("latest", 0.1), ("eval/test", 0.7)]:
        write(tmp_path / name, event(1, scalar("accuracy", acc), scalar("loss", 1 - acc)))
    reader = EventDirectoryReader(tmp_path, ["test/accuracy", "train/accuracy", "loss"])
    got = sorted(rows(reader))
    # test/accuracy: files in a directory called test, at any depth; "latest" is no "test".
    assert [v for m, v, _ in got if m == "test/accuracy"] == ["0.7", "0.8"]
    assert [v for m, v, _ in got if m == "train/accuracy"] == ["0.9"]
    assert sorted(v for m, v, _ in got if m == "loss") == sorted(str(np.float32(1 - a)) for a in (0.9, 0.8, 0.1, 0.7))


def test_selection_follows_upstream_tag_prefix_and_directory_suffix() -> None:
    names = ["accuracy", "test/accuracy", "a/b/loss"]
    assert metrics_for("accuracy", "/logs/train", names) == ["accuracy"]
    assert metrics_for("accuracy_1", "/logs/test", names) == ["accuracy", "test/accuracy"]  # tag prefix, as upstream
    assert metrics_for("val_accuracy", "/logs/test", names) == []
    assert metrics_for("loss", "/x/a/b", names) == ["a/b/loss"]
    assert metrics_for("loss", "/x/b", names) == []
    assert metrics_for("loss", "/x/ca/b", names) == []  # whole directory names, not string suffixes


def test_polling_returns_only_new_events_from_growing_and_new_files(tmp_path: Path) -> None:
    writer = EventFileWriter(str(tmp_path / "test"))
    reader = EventDirectoryReader(tmp_path, ["accuracy"])
    assert reader.poll() == []  # nothing written yet
    writer.add_event(event(1, scalar("accuracy", 0.5)))
    writer.flush()
    assert rows(reader) == [("accuracy", "0.5", 1)]
    assert reader.poll() == []
    writer.add_event(event(2, scalar("accuracy", 0.625)))
    writer.add_event(event(3, scalar("accuracy", 0.75)))
    writer.flush()
    assert rows(reader) == [("accuracy", "0.625", 2), ("accuracy", "0.75", 3)]
    writer.close()
    write(tmp_path / "more" / "deeper", event(4, scalar("accuracy", 0.875)))
    assert rows(reader) == [("accuracy", "0.875", 4)]
    assert reader.poll() == []


def test_a_file_that_did_not_grow_is_not_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, event(1, scalar("accuracy", 0.5)))
    reader = EventDirectoryReader(tmp_path, ["accuracy"])
    assert len(reader.poll()) == 1
    loads: list[str] = []
    original = event_file_loader.RawEventFileLoader.Load

    def counting(self: event_file_loader.RawEventFileLoader):  # type: ignore[no-untyped-def]
        loads.append(self._file_path)
        return original(self)

    monkeypatch.setattr(event_file_loader.RawEventFileLoader, "Load", counting)
    for _ in range(5):
        assert reader.poll() == []
    assert loads == []


def test_a_partly_written_record_waits_until_it_is_complete(tmp_path: Path) -> None:
    path = tmp_path / "events.out.tfevents.1.host"
    first, second = record(event(1, scalar("accuracy", 0.5))), record(event(2, scalar("accuracy", 0.75)))
    path.write_bytes(first + second[:10])
    reader = EventDirectoryReader(tmp_path, ["accuracy"])
    assert rows(reader) == [("accuracy", "0.5", 1)]
    with open(path, "ab") as f:
        f.write(second[10:-3])
    assert reader.poll() == []
    with open(path, "ab") as f:
        f.write(second[-3:])
    assert rows(reader) == [("accuracy", "0.75", 2)]


def test_skip_continues_where_an_earlier_reader_stopped(tmp_path: Path) -> None:
    path = tmp_path / "run" / "events.out.tfevents.1.host"
    path.parent.mkdir()
    path.write_bytes(record(event(1, scalar("accuracy", 0.5))) + record(event(2, scalar("accuracy", 0.625))))
    first = EventDirectoryReader(tmp_path, ["accuracy"])
    assert len(first.poll()) == 2
    assert first.progress == {os.path.join("run", path.name): 2}
    with open(path, "ab") as f:
        f.write(record(event(3, scalar("accuracy", 0.75))))
    second = EventDirectoryReader(tmp_path, ["accuracy"])
    second.skip(first.progress)
    assert rows(second) == [("accuracy", "0.75", 3)]  # even though the file did not grow since skip
    third = EventDirectoryReader(tmp_path, ["accuracy"])
    third.skip({os.path.join("run", path.name): 3})
    assert third.poll() == []


def test_a_replaced_file_is_read_from_its_beginning(tmp_path: Path) -> None:
    path = tmp_path / "events.out.tfevents.1.host"
    path.write_bytes(record(event(1, scalar("accuracy", 0.5))) + record(event(2, scalar("accuracy", 0.5))))
    reader = EventDirectoryReader(tmp_path, ["accuracy"])
    assert len(reader.poll()) == 2
    path.write_bytes(record(event(1, scalar("accuracy", 0.25))))  # truncated and rewritten
    assert rows(reader) == [("accuracy", "0.25", 1)]
    new = tmp_path / "new"
    new.write_bytes(b"".join(record(event(s, scalar("accuracy", 0.125))) for s in (1, 2, 3)))
    os.replace(new, path)  # another file under the same name, larger than the old one
    assert rows(reader) == [("accuracy", "0.125", s) for s in (1, 2, 3)]


def test_other_files_and_damaged_records_stop_nothing(tmp_path: Path) -> None:
    (tmp_path / "checkpoint").write_bytes(b"\x00garbage that is no record")
    good = record(event(1, scalar("accuracy", 0.5)))
    damaged = bytearray(record(event(2, scalar("accuracy", 0.75))))
    damaged[-1] ^= 0xFF  # payload CRC no longer matches
    (tmp_path / "events.out.tfevents.1.a").write_bytes(good + bytes(damaged))
    (tmp_path / "events.out.tfevents.1.b").write_bytes(record(event(3, scalar("accuracy", 0.875))))
    reader = EventDirectoryReader(tmp_path, ["accuracy"])
    assert rows(reader) == [("accuracy", "0.5", 1), ("accuracy", "0.875", 3)]


def test_a_reader_needs_metric_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        EventDirectoryReader(tmp_path, [])

