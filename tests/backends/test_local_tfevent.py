"""TensorFlowEvent collection on the local backend: `katib run` reads TensorBoard event
files that real trials write, each trial in its own copy of the metrics directory."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from katib.api.defaults import set_defaults
from katib.api.model import Experiment, Trial
from katib.backends.local.collect import TrialCollector, check_collector, local_kinds
from katib.cli import main
from katib.errors import ValidationError
from katib.store import Store
from tests.backends.localexp import experiment, write

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "kubeflow-training-operator" / "tfjob-with-summaries.yaml"

needs_tensorboard = pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None,
                                       reason="needs the tfevent extra: pip install 'katib-lite[tfevent]'")

# Writes train/ and test/ summaries under --logdir with TensorBoard's own writer, one
# event per epoch, slowly enough that the runner polls while the files grow.
TRIAL = """
import sys, time
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter
x, logdir = float(sys.argv[1]), sys.argv[2]
writers = {d: EventFileWriter(logdir + "/" + d) for d in ("train", "test")}
for step in range(1, 4):
    for d, w in writers.items():
        acc = 1 - (x - 0.3) ** 2 - (0.2 if d == "test" else 0.1) / step
        w.add_event(event_pb2.Event(wall_time=time.time(), step=step, summary=summary_pb2.Summary(value=[
            summary_pb2.Summary.Value(tag="accuracy", simple_value=acc),
            summary_pb2.Summary.Value(tag="loss", simple_value=1 - acc)])))
        w.flush()
    time.sleep(0.1)
for w in writers.values():
    w.close()
"""


def collector_doc(name: str, path: str | None, command_dir: str, objective: dict[str, Any] | None = None) -> dict[str, Any]:
    source = {"source": {"fileSystemPath": {"path": path, "kind": "Directory"}}} if path else {}
    return experiment(name, max_trials=2, parallel=2,
                      objective=objective or {"type": "maximize", "objectiveMetricName": "accuracy"},
                      collector={"collector": {"kind": "TensorFlowEvent"}, **source},
                      command=["python3", "-c", TRIAL, "${trialParameters.x}", command_dir])


def observations(name: str) -> dict[str, list[Any]]:
    store = Store()
    return {t.name: store.get_observations(t.name) for t in store.list_trials(name)}


@needs_tensorboard
@pytest.mark.slow
def test_the_tfjob_with_summaries_example_collects_accuracy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # type: ignore[import-untyped]

    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["spec"].update(maxTrialCount=2, parallelTrialCount=2, maxFailedTrialCount=1)
    monkeypatch.chdir(REPO)  # the example runs examples/trials/digits_tfevent.py
    assert main(["run", str(write(tmp_path, doc)), "-q"]) == 0
    store = Store()
    trials = store.list_trials("tfjob-digits-with-summaries")
    assert [t.status.state for t in trials] == ["Succeeded", "Succeeded"]
    for t in trials:
        logs = store.get_observations(t.name)
        assert [(r.metric_name, r.step) for r in logs] == [("accuracy", 1), ("accuracy", 2), ("accuracy", 3)]
        # The trial wrote under its own directory (--log-path named the parent of the
        # collected directory), test/ was read and train/ was not.
        base = (Path(os.environ["KATIB_HOME"], "runs", "default", "tfjob-digits-with-summaries", t.name)
                / "tfevent" / "var" / "log" / "katib" / "digits-with-summaries")
        assert (base / "train").is_dir()
        # What upstream's collector reads from the same files, value for value.
        acc = EventAccumulator(str(base / "test"))
        acc.Reload()
        expected = [(e.step, str(np.float32(e.value)), datetime.fromtimestamp(e.wall_time, UTC))
                    for e in acc.Scalars("accuracy")]
        assert [(r.step, r.value, r.timestamp) for r in logs] == expected
        assert any(r.timestamp.microsecond for r in logs)  # the event's wall time, not whole seconds
        folded = t.status.observation.metric("accuracy") if t.status.observation else None
        assert folded is not None and folded.latest == logs[-1].value
    assert not Path("/var/log/katib/digits-with-summaries").exists()


@needs_tensorboard
def test_default_directory_and_metrics_named_by_subdirectory(tmp_path: Path) -> None:
    objective = {"type": "maximize", "objectiveMetricName": "test/accuracy", "additionalMetricNames": ["train/loss"]}
    doc = collector_doc("tfevent-default-dir", None, "/var/log/katib/tfevent", objective)
    assert main(["run", str(write(tmp_path, doc)), "-q"]) == 0
    store = Store()
    for t in store.list_trials("tfevent-default-dir"):
        assert t.status.state == "Succeeded"
        x = float(t.spec.assignments["x"])
        logs = store.get_observations(t.name)
        got = {(r.metric_name, r.step): float(r.value) for r in logs}
        assert sorted(got) == [(m, s) for m in ("test/accuracy", "train/loss") for s in (1, 2, 3)]
        for step in (1, 2, 3):
            assert got["test/accuracy", step] == pytest.approx(1 - (x - 0.3) ** 2 - 0.2 / step, abs=1e-6)
            assert got["train/loss", step] == pytest.approx((x - 0.3) ** 2 + 0.1 / step, abs=1e-6)
    assert not Path("/var/log/katib/tfevent").exists()


def _collector(tmp_path: Path, doc: dict[str, Any], resume: bool = False) -> TrialCollector:
    exp = set_defaults(Experiment.from_dict(doc))
    return TrialCollector.for_trial(exp, Trial(), tmp_path / "trial", resume=resume)


@needs_tensorboard
def test_the_command_is_rewritten_into_a_mirror_in_the_trial_directory(tmp_path: Path) -> None:
    doc = collector_doc("rewrite", "/logs/run/test", "/logs/run")
    mirror = tmp_path.absolute() / "trial" / "tfevent"
    c = _collector(tmp_path, doc)
    assert c.env == {"KATIB_TFEVENT_DIR": str(mirror / "logs/run/test")}
    assert (mirror / "logs/run/test").is_dir()  # exists before the trial starts, like upstream's volume
    # The command names the parent of the collected directory: the parent is mirrored.
    assert c.rewrite(["--log-path=/logs/run", "--extra=/logs/run/x", "/data/logs/run", "/logs/running"]) == [
        f"--log-path={mirror}/logs/run", f"--extra={mirror}/logs/run/x", "/data/logs/run", "/logs/running"]
    c = _collector(tmp_path, doc)
    assert c.rewrite(["--dir", "/logs/run/test/", "sh -c 'w /logs/run/test'"]) == [
        "--dir", f"{mirror}/logs/run/test/", f"sh -c 'w {mirror}/logs/run/test'"]
    c = _collector(tmp_path, doc)
    assert c.rewrite(["--cache=/logs", "--out=/logs/run/test"]) == ["--cache=/logs", f"--out={mirror}/logs/run/test"]


@needs_tensorboard
def test_a_resumed_collector_returns_no_event_twice(tmp_path: Path) -> None:
    from tensorboard.compat.proto import event_pb2, summary_pb2  # type: ignore[import-untyped]
    from tensorboard.summary.writer.event_file_writer import EventFileWriter  # type: ignore[import-untyped]

    doc = collector_doc("resume", "/logs/test", "/logs")
    first = _collector(tmp_path, doc)
    writer = EventFileWriter(first.env["KATIB_TFEVENT_DIR"])

    def add(step: int) -> None:
        writer.add_event(event_pb2.Event(wall_time=1.5 + step, step=step, summary=summary_pb2.Summary(
            value=[summary_pb2.Summary.Value(tag="accuracy", simple_value=step / 10)])))
        writer.flush()

    add(1)
    add(2)
    assert [r.step for r in first.poll()] == [1, 2]
    first.commit()
    add(3)  # read by the first runner, never stored: it was killed before commit
    assert [r.step for r in first.poll()] == [3]
    assert json.loads((tmp_path / "trial" / "collected").read_text()) == {
        next(Path(first.env["KATIB_TFEVENT_DIR"]).iterdir()).name: 3}  # the file_version record counts
    second = _collector(tmp_path, doc, resume=True)
    add(4)
    writer.close()
    assert [r.step for r in second.finish()] == [3, 4]


def test_without_tensorboard_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard raises ImportError
    assert "TensorFlowEvent" not in local_kinds()
    exp = Experiment.from_dict(collector_doc("no-tb", "/logs/test", "/logs"))
    with pytest.raises(ValidationError) as info:
        check_collector(exp)
    assert "pip install 'katib-lite[tfevent]'" in str(info.value)
    assert info.value.errors[0].path == "spec.metricsCollectorSpec.collector.kind"


@needs_tensorboard
def test_with_tensorboard_tensorflow_event_is_a_local_kind() -> None:
    assert "TensorFlowEvent" in local_kinds()
    check_collector(Experiment.from_dict(collector_doc("tb", "/logs/test", "/logs")))
