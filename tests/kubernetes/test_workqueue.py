"""The work queue's guarantees (no cluster needed)."""

from __future__ import annotations

import threading
import time

from katib.backends.kubernetes.workqueue import WorkQueue


def test_a_key_is_queued_once() -> None:
    q: WorkQueue[str] = WorkQueue()
    for _ in range(3):
        q.add("a")
    q.add("b")
    assert len(q) == 2
    assert q.get(0) == "a" and q.get(0) == "b" and q.get(0) is None


def test_a_key_in_work_is_not_handed_out_twice_and_comes_back_once() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    assert q.get(0) == "a"
    q.add("a")
    q.add("a")
    assert q.get(0) is None  # still being worked on
    q.done("a")
    assert q.get(0) == "a"
    q.done("a")
    assert q.get(0) is None


def test_delayed_adds_keep_the_earliest_and_do_not_pile_up() -> None:
    q: WorkQueue[str] = WorkQueue()
    for _ in range(50):
        q.add_after("a", 0.2)
    q.add_after("a", 0.05)
    start = time.monotonic()
    assert q.get(1.0) == "a"
    assert time.monotonic() - start < 0.15
    q.done("a")
    assert q.get(0.4) is None  # the later entries were superseded


def test_get_wakes_up_for_an_add_from_another_thread() -> None:
    q: WorkQueue[str] = WorkQueue()
    threading.Timer(0.05, q.add, args=("x",)).start()
    assert q.get(2.0) == "x"


def test_shutdown_releases_waiting_workers() -> None:
    q: WorkQueue[str] = WorkQueue()
    got: list[object] = []
    t = threading.Thread(target=lambda: got.append(q.get()))
    t.start()
    time.sleep(0.05)
    q.shutdown()
    t.join(2)
    assert got == [None]
