"""Metrics from logs: incremental feeding, restarts without duplicated rows (no cluster)."""

from __future__ import annotations

from collections.abc import Sequence

from katib.api.model import ObjectiveSpec, Trial, TrialSpec
from katib.api.observation import MetricLog
from katib.backends.kubernetes.collect import TrialMetrics

LOG = b"epoch=1 accuracy=0.5 loss=0.5\nnoise\nepoch=2 accuracy=0.7 loss=0.3\nepoch=3 accuracy=0.6 loss=0.4\n"


class FakeDB:
    def __init__(self) -> None:
        self.rows: dict[str, list[MetricLog]] = {}

    def report(self, trial_name: str, rows: Sequence[MetricLog]) -> None:
        self.rows.setdefault(trial_name, []).extend(rows)

    def get(self, trial_name: str, metric_name: str = "") -> list[MetricLog]:
        return [r for r in self.rows.get(trial_name, []) if not metric_name or r.metric_name == metric_name]

    def delete(self, trial_name: str) -> None:
        self.rows.pop(trial_name, None)


def _trial() -> Trial:
    t = Trial()
    t.metadata.name = "t1"
    t.spec = TrialSpec(objective=ObjectiveSpec(type="maximize", objective_metric_name="accuracy",
                                               additional_metric_names=["loss"]))
    return t


def test_feeding_a_growing_log_yields_each_row_once() -> None:
    tm = TrialMetrics.for_trial(_trial())
    first = tm.feed("pod", LOG[:40], finished=False)  # ends inside the second line
    rest = tm.feed("pod", LOG, finished=True)
    assert [(r.metric_name, r.value) for r in first] == [("accuracy", "0.5"), ("loss", "0.5")]
    assert len(first) + len(rest) == 6
    obs = tm.observation()
    acc = obs.metric("accuracy")
    assert acc is not None and (acc.min, acc.max, acc.latest) == ("0.5", "0.7", "0.6")
    assert tm.feed("pod", LOG + b"accuracy=0.9\n", finished=True) == []  # closed


def test_a_restarted_controller_stores_only_what_the_db_lacks() -> None:
    db = FakeDB()
    before = TrialMetrics.for_trial(_trial())
    before.store(db, before.feed("pod", LOG[:67], finished=False))  # two epochs, then the controller dies
    assert len(db.rows["t1"]) == 4
    after = TrialMetrics.for_trial(_trial())  # a new process reads the whole log again
    after.store(db, after.feed("pod", LOG, finished=True))
    assert [(r.metric_name, r.value) for r in db.rows["t1"]] == [
        ("accuracy", "0.5"), ("loss", "0.5"), ("accuracy", "0.7"), ("loss", "0.3"),
        ("accuracy", "0.6"), ("loss", "0.4")]
    # Its observation comes from the full log, not from the DB.
    assert after.observation().metric("accuracy").max == "0.7"  # type: ignore[union-attr]


def test_a_log_that_starts_over_is_read_anew() -> None:
    tm = TrialMetrics.for_trial(_trial())
    tm.feed("pod", LOG, finished=False)
    rows = tm.feed("pod", b"accuracy=0.1\n", finished=False)
    assert [(r.metric_name, r.value) for r in rows] == [("accuracy", "0.1")]


def test_unavailable_when_the_objective_never_appeared() -> None:
    tm = TrialMetrics.for_trial(_trial())
    tm.feed("pod", b"loss=0.3\n", finished=True)
    row = tm.unavailable_row()
    assert row is not None and (row.metric_name, row.value) == ("accuracy", "unavailable")
    tm.feed("other-pod", b"accuracy=0.3\n", finished=True)
    assert tm.unavailable_row() is None
