"""LineCollector (incremental, chunked output) and FileTailer (a growing file)."""

from __future__ import annotations

import os
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

from katib.api.observation import UNAVAILABLE
from katib.metrics.collector import FileTailer, LineCollector
from katib.metrics.parsers import JSON


class Clock:
    """A clock that ticks one millisecond per call, so stamps are distinct and ordered."""

    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


def test_chunks_split_anywhere_give_the_same_rows() -> None:
    text = "epoch=1 loss=0.5 acc=0.1\nhello\nloss=0.4\r\nacc=0.2\rloss=0.3\n"
    whole = LineCollector(["loss", "acc"]).feed(text)
    for size in (1, 2, 3, 7):
        c = LineCollector(["loss", "acc"])
        rows = []
        for i in range(0, len(text), size):
            rows += c.feed(text[i:i + size])
        rows += c.close()
        assert [(r.metric_name, r.value, r.step) for r in rows] == [
            (r.metric_name, r.value, r.step) for r in whole
        ]
    assert [(r.metric_name, r.value, r.step) for r in whole] == [
        ("loss", "0.5", 1), ("acc", "0.1", 1), ("loss", "0.4", 2), ("acc", "0.2", 2),
        ("loss", "0.3", 3),
    ]


def test_step_is_explicit_when_given_else_the_metrics_report_count() -> None:
    c = LineCollector(["loss"])
    rows = c.feed("loss=1\nloss=2\nstep=10 loss=3\nloss=4\n")
    assert [r.step for r in rows] == [1, 2, 10, 4]
    assert c.counts == {"loss": 4}


def test_partial_last_line_waits_for_close() -> None:
    c = LineCollector(["loss"])
    assert c.feed("loss=1\nloss=2") and c.close()[0].value == "2"


def test_bytes_with_multibyte_characters_split_across_chunks() -> None:
    data = "métrique loss=0.5\n".encode()
    c = LineCollector(["loss"])
    rows = []
    for b in data:
        rows += c.feed(bytes([b]))
    assert [r.value for r in rows] == ["0.5"]


def test_lines_are_stamped_when_fed_unless_they_carry_a_time() -> None:
    clock = Clock()
    c = LineCollector(["loss"], clock=clock)
    first = c.feed("loss=1\n")
    second = c.feed("2020-01-01T00:00:00Z loss=2\nloss=3\n")
    assert first[0].timestamp < second[1].timestamp
    assert second[0].timestamp == datetime(2020, 1, 1, tzinfo=timezone.utc)
    assert first[0].timestamp.year == 2030


def test_json_collector() -> None:
    c = LineCollector(["loss"], JSON)
    rows = c.feed('{"loss": 1.5, "step": 4}\n{"loss": 1.25}\n')
    assert [(r.value, r.step) for r in rows] == [("1.5", 4), ("1.25", 2)]


def test_unavailable_row_only_when_the_objective_never_appeared() -> None:
    c = LineCollector(["loss", "acc"])
    c.feed("acc=0.5\n")
    row = c.unavailable()
    assert row is not None and (row.metric_name, row.value) == ("loss", UNAVAILABLE)
    assert row.timestamp.year > 1
    c.feed("loss=1\n")
    assert c.unavailable() is None


def test_very_long_line_without_newline_is_not_buffered_forever() -> None:
    c = LineCollector(["loss"])
    rows = c.feed("loss=1 " + "x" * (1 << 20) + " ")
    assert [r.value for r in rows] == ["1"]


def test_file_tailer_follows_a_growing_file(tmp_path: Path) -> None:
    path = tmp_path / "metrics.log"
    tailer = FileTailer(path, LineCollector(["loss"]))
    assert tailer.poll() == []  # not created yet
    with open(path, "w") as f:
        f.write("loss=1\nlo")
        f.flush()
        assert [r.value for r in tailer.poll()] == ["1"]
        f.write("ss=2\n")
        f.flush()
        assert [r.value for r in tailer.poll()] == ["2"]
        f.write("loss=3")
        f.flush()
        assert tailer.poll() == []
    assert [r.value for r in tailer.close()] == ["3"]


def test_file_tailer_restarts_on_truncation_and_replacement(tmp_path: Path) -> None:
    path = tmp_path / "metrics.log"
    path.write_text("loss=1\nloss=2\n")
    tailer = FileTailer(path, LineCollector(["loss"]))
    assert len(tailer.poll()) == 2
    path.write_text("loss=9\n")  # truncated and rewritten: shorter than what we read
    assert [r.value for r in tailer.poll()] == ["9"]
    other = tmp_path / "new.log"
    other.write_text("loss=7\nloss=8\nloss=10\n")
    os.replace(other, path)  # rotated: a new inode
    assert [r.value for r in tailer.poll()] == ["7", "8", "10"]
    tailer.close()


def test_file_tailer_follow_yields_until_stopped(tmp_path: Path) -> None:
    path = tmp_path / "metrics.log"
    stop = threading.Event()
    tailer = FileTailer(path, LineCollector(["loss"]))
    seen: list[str] = []

    def consume() -> None:
        for batch in tailer.follow(stop, interval=0.01):
            seen.extend(r.value for r in batch)

    thread = threading.Thread(target=consume)
    thread.start()
    with open(path, "w") as f:
        for i in range(5):
            f.write(f"loss={i}\n")
            f.flush()
        f.write("loss=9")
    stop.set()
    thread.join(5)
    assert seen == ["0", "1", "2", "3", "4", "9"]


def test_file_tailer_reads_a_same_size_rewrite_in_place(tmp_path: Path) -> None:
    """A trial that rewrites its metrics file with its latest value: every version counts,
    so the minimum over the trial is the real one."""
    path = tmp_path / "metrics.log"
    path.write_text("accuracy=0.7\n")
    tailer = FileTailer(path, LineCollector(["accuracy"]))
    assert [(r.value, r.step) for r in tailer.poll()] == [("0.7", 1)]
    path.write_text("accuracy=0.1\n")  # truncate and write: same inode, same size
    assert [(r.value, r.step) for r in tailer.poll()] == [("0.1", 2)]
    with open(path, "r+") as f:  # seek(0) and write over it, no truncation
        f.write("accuracy=0.4\n")
    assert [(r.value, r.step) for r in tailer.poll()] == [("0.4", 3)]
    assert tailer.poll() == []  # nothing changed: nothing new
    tailer.close()


def test_file_tailer_reads_a_longer_rewrite_from_its_beginning(tmp_path: Path) -> None:
    path = tmp_path / "metrics.log"
    path.write_text("loss=0.5\nloss=0.4\n")
    tailer = FileTailer(path, LineCollector(["loss"]))
    assert len(tailer.poll()) == 2
    with open(path, "r+") as f:
        f.write("loss=0.3\nloss=0.2\nloss=0.1\n")
    assert [r.value for r in tailer.poll()] == ["0.3", "0.2", "0.1"]
    tailer.close()


def test_file_tailer_notices_a_rewrite_of_the_last_line_of_a_long_file(tmp_path: Path) -> None:
    path = tmp_path / "metrics.log"
    path.write_text("loss=0.500\n" * 500)  # longer than the compared head
    tailer = FileTailer(path, LineCollector(["loss"]))
    assert len(tailer.poll()) == 500
    with open(path, "r+") as f:
        f.seek(499 * 11)
        f.write("loss=0.100\n")
    rows = tailer.poll()
    assert len(rows) == 500 and min(float(r.value) for r in rows) == 0.1
    tailer.close()


def test_file_tailer_takes_a_rewrite_that_keeps_what_was_read_as_an_append(tmp_path: Path) -> None:
    """Trials that write their whole history again each epoch report each value once."""
    path = tmp_path / "metrics.log"
    path.write_text("loss=1\n")
    tailer = FileTailer(path, LineCollector(["loss"]))
    assert [r.value for r in tailer.poll()] == ["1"]
    path.write_text("loss=1\nloss=2\n")
    assert [r.value for r in tailer.poll()] == ["2"]
    path.write_text("loss=1\nloss=2\nloss=3\n")
    assert [r.value for r in tailer.poll()] == ["3"]
    tailer.close()


def test_file_tailer_resumes_from_a_checkpoint_unless_the_file_was_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "metrics.log"
    path.write_text("loss=1\nloss=2\nlo")
    first = FileTailer(path, LineCollector(["loss"]))
    assert len(first.poll()) == 2
    check = first.checkpoint()
    assert check["offset"] == 14  # the partial line is not committed
    first.close()

    with open(path, "a") as f:
        f.write("ss=3\n")
    again = FileTailer(path, LineCollector(["loss"]))
    assert again.skip_to(check["offset"], check)
    assert [(r.value, r.step) for r in again.poll()] == [("3", 3)]  # the count continues
    again.close()

    path.write_text("loss=7\nloss=8\nloss=9\n")  # rewritten while no reader was there
    later = FileTailer(path, LineCollector(["loss"]))
    assert not later.skip_to(check["offset"], check)
    assert [r.value for r in later.poll()] == ["7", "8", "9"]
    later.close()
