"""`katib run` end to end on the local backend: real processes, a real SQLite store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from katib.cli import main
from katib.store import Store
from tests.backends.localexp import experiment, write


def run(tmp_path: Path, doc: Any, *extra: str) -> int:
    return main(["run", str(write(tmp_path, doc)), "-q", *extra])


def trials(name: str) -> list[Any]:
    return Store().list_trials(name)


def condition(name: str) -> tuple[str, str]:
    exp = Store().get_experiment(name)
    assert exp.status is not None
    c = [c for c in exp.status.conditions if c.status == "True"][-1]
    return c.type, c.reason or ""


@pytest.mark.parametrize("kind", ["Job", "TrainJob", "PyTorchJob", "TFJob", "XGBoostJob", "MPIJob"])
def test_every_trial_kind_runs_its_primary_container(tmp_path: Path, kind: str) -> None:
    name = f"kind-{kind.lower()}"
    assert run(tmp_path, experiment(name, kind=kind, max_trials=2)) == 0
    ts = trials(name)
    assert [t.status.state for t in ts] == ["Succeeded", "Succeeded"]
    for t in ts:
        x = float(t.spec.assignments["x"])
        acc = t.status.observation.metric("accuracy")
        # max strategy for a maximize objective: the last epoch's value, computed from x
        assert float(acc.max) == pytest.approx(1 - (x - 0.3) ** 2 - 0.1 / 3, abs=1e-5)
    assert condition(name) == ("Succeeded", "ExperimentMaxTrialsReached")


def test_config_map_trial_template_from_the_same_file(tmp_path: Path) -> None:
    exp = experiment("from-configmap", max_trials=2)
    template = exp["spec"]["trialTemplate"].pop("trialSpec")
    exp["spec"]["trialTemplate"]["configMap"] = {"configMapName": "templates", "configMapNamespace": "default",
                                                 "templatePath": "job.yaml"}
    exp["spec"]["trialTemplate"]["successCondition"] = 'status.conditions.#(type=="Complete")#|#(status=="True")#'
    exp["spec"]["trialTemplate"]["failureCondition"] = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "templates", "namespace": "default"},
          "data": {"job.yaml": json.dumps(template)}}
    assert run(tmp_path, [cm, exp]) == 0
    assert [t.status.state for t in trials("from-configmap")] == ["Succeeded"] * 2


def test_values_with_quotes_backslashes_and_newlines_reach_the_trial_intact(tmp_path: Path) -> None:
    tricky = ['say "hi"', "back\\slash", "two\nlines", "it's {json}"]
    code = ("import sys; v = sys.argv[1]; expected = " + repr(tricky) +
            "; print('accuracy=%d' % expected.index(v))")
    exp = experiment("tricky-values", algorithm="grid", max_trials=4, command=["python3", "-c", code, "${trialParameters.v}"],
                     parameters=[{"name": "v", "parameterType": "categorical", "feasibleSpace": {"list": tricky}}],
                     trial_parameters=[{"name": "v", "reference": "v"}])
    assert run(tmp_path, exp) == 0
    ts = trials("tricky-values")
    got = {t.spec.assignments["v"]: t.status.observation.metric("accuracy").latest for t in ts}
    assert got == {v: str(i) for i, v in enumerate(tricky)}


def test_meta_references_and_env_are_substituted(tmp_path: Path) -> None:
    code = "import os, sys; print('accuracy=1' if sys.argv[1] == os.environ['KATIB_TRIAL_NAME'] and os.environ['K'] == 'Job' else 'accuracy=0')"
    exp = experiment("meta-refs", max_trials=1, parallel=1, command=["python3", "-c", code, "${trialParameters.name}"],
                     trial_parameters=[{"name": "x", "reference": "x"}, {"name": "name", "reference": "${trialSpec.Name}"},
                                       {"name": "kind", "reference": "${trialSpec.Kind}"}],
                     env=[{"name": "K", "value": "${trialParameters.kind}"}, {"name": "X", "value": "${trialParameters.x}"}])
    assert run(tmp_path, exp) == 0
    (t,) = trials("meta-refs")
    assert t.status.observation.metric("accuracy").latest == "1"


def test_custom_metrics_format_regex(tmp_path: Path) -> None:
    code = "import sys; x = float(sys.argv[1]); print('{metricName: accuracy, metricValue: %.4f}' % (1 - x))"
    exp = experiment("custom-format", max_trials=2, command=["python3", "-c", code, "${trialParameters.x}"],
                     objective={"type": "maximize", "objectiveMetricName": "accuracy"},
                     collector={"collector": {"kind": "StdOut"},
                                "source": {"filter": {"metricsFormat": [r"{metricName: ([\w|-]+), metricValue: ((-?\d+)(\.\d+)?)}"]}}})
    assert run(tmp_path, exp) == 0
    for t in trials("custom-format"):
        assert float(t.status.observation.metric("accuracy").latest) == pytest.approx(1 - float(t.spec.assignments["x"]), abs=1e-4)


@pytest.mark.parametrize("fmt", ["TEXT", "JSON"])
def test_file_collector_text_and_json(tmp_path: Path, fmt: str) -> None:
    line = ("json.dumps({'accuracy': 1 - x, 'loss': 'x', 'step': 1})" if fmt == "JSON"
            else "'accuracy=%f' % (1 - x)")
    code = ("import sys, json, os; x = float(sys.argv[1]); path = sys.argv[2]; "
            "os.makedirs(os.path.dirname(path), exist_ok=True); "
            f"open(path, 'a').write({line} + '\\n'); print('accuracy=-5 on stdout is ignored')")
    exp = experiment(f"file-{fmt.lower()}", max_trials=2,
                     command=["python3", "-c", code, "${trialParameters.x}", "/var/log/katib/metrics.log"],
                     objective={"type": "maximize", "objectiveMetricName": "accuracy"},
                     collector={"collector": {"kind": "File"},
                                "source": {"fileSystemPath": {"path": "/var/log/katib/metrics.log", "kind": "File",
                                                              "format": fmt}}})
    assert run(tmp_path, exp) == 0
    for t in trials(f"file-{fmt.lower()}"):
        # numeric JSON values count (upstream ignores them, §13 item 7)
        assert float(t.status.observation.metric("accuracy").latest) == pytest.approx(1 - float(t.spec.assignments["x"]), abs=1e-5)


def test_push_collector_report_metrics(tmp_path: Path) -> None:
    code = ("import sys, katib; x = float(sys.argv[1])\n"
            "for step in range(1, 4): katib.report_metrics({'accuracy': 1 - x - 0.1 / step}, step=step)")
    exp = experiment("push-metrics", max_trials=2, command=["python3", "-c", code, "${trialParameters.x}"],
                     objective={"type": "maximize", "objectiveMetricName": "accuracy"},
                     collector={"collector": {"kind": "Push"}})
    assert run(tmp_path, exp) == 0
    store = Store()
    for t in trials("push-metrics"):
        logs = store.get_observations(t.name, "accuracy")
        assert [r.step for r in logs] == [1, 2, 3]
        # millisecond (or finer) timestamps: three reports within a moment are distinct
        assert len({r.timestamp for r in logs}) == 3
        assert t.status.state == "Succeeded"


def test_failed_trials_end_the_experiment_at_max_failed(tmp_path: Path) -> None:
    exp = experiment("fails", max_trials=10, parallel=1, command=["python3", "-c", "import sys; print('boom'); sys.exit(3)", "${trialParameters.x}"],
                     extra_spec={"maxFailedTrialCount": 2})
    assert run(tmp_path, exp) == 1
    ts = trials("fails")
    assert [t.status.state for t in ts] == ["Failed", "Failed"]
    message = [c.message for c in ts[0].status.conditions if c.type == "Failed"][0]
    assert "exited with status 3" in message and "boom" in message
    assert condition("fails") == ("Failed", "ExperimentFailed")


def test_missing_objective_is_metrics_unavailable(tmp_path: Path) -> None:
    exp = experiment("no-metric", max_trials=1, parallel=1, command=["python3", "-c", "print('nothing here')", "${trialParameters.x}"])
    assert run(tmp_path, exp) == 0
    assert [t.status.state for t in trials("no-metric")] == ["MetricsUnavailable"]


def test_goal_reached_stops_running_trials(tmp_path: Path) -> None:
    slow_or_fast = ("import sys, time; x = float(sys.argv[1])\n"
                    "if x < 0.5: print('accuracy=0.99', flush=True)\n"
                    "else: time.sleep(60)")
    exp = experiment("goal", max_trials=2, parallel=2, algorithm="grid",
                     parameters=[{"name": "x", "parameterType": "double",
                                  "feasibleSpace": {"min": "0.1", "max": "0.9", "step": "0.8"}}],
                     command=["python3", "-c", slow_or_fast, "${trialParameters.x}"],
                     objective={"type": "maximize", "goal": 0.95, "objectiveMetricName": "accuracy"})
    assert run(tmp_path, exp) == 0
    assert condition("goal") == ("Succeeded", "ExperimentGoalReached")
    states = sorted(t.status.state for t in trials("goal"))
    assert states == ["Killed", "Succeeded"]  # the 60 s trial was stopped, not left running


def test_exhausted_grid_ends_as_suggestion_end_reached(tmp_path: Path) -> None:
    exp = experiment("grid-end", algorithm="grid", max_trials=None, parallel=2,
                     parameters=[{"name": "x", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "3"}}])
    assert run(tmp_path, exp) == 0
    ts = trials("grid-end")
    assert sorted(t.spec.assignments["x"] for t in ts) == ["1", "2", "3"]
    assert condition("grid-end") == ("Succeeded", "ExperimentSuggestionEndReached")


def test_malformed_file_exits_2_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exp = experiment("bad", max_trials=3)
    exp["spec"]["parameters"][0]["feasibleSpace"] = {"min": "5", "max": "1"}
    exp["spec"]["parallelTrialCount"] = "lots"
    assert run(tmp_path, exp) == 2
    err = capsys.readouterr().err
    assert "spec.parallelTrialCount" in err
    with pytest.raises(Exception):
        Store().get_experiment("bad")  # nothing was created


def test_invalid_algorithm_setting_is_rejected_before_anything_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exp = experiment("bad-setting", algorithm="random", settings={"random_stat": "3"})
    assert run(tmp_path, exp) == 2
    err = capsys.readouterr().err
    assert "spec.algorithm.algorithmSettings" in err and "random_stat" in err


def test_get_and_describe_read_the_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, experiment("readback", max_trials=2)) == 0
    capsys.readouterr()
    assert main(["get", "experiments", "-o", "json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    (item,) = [i for i in listing["items"] if i["metadata"]["name"] == "readback"]
    assert item["apiVersion"] == "kubeflow.org/v1beta1" and item["kind"] == "Experiment"
    assert item["status"]["trials"] == 2 and item["status"]["trialsSucceeded"] == 2
    assert item["status"]["currentOptimalTrial"]["bestTrialName"].startswith("readback-")
    assert main(["get", "trials", "readback", "-o", "yaml"]) == 0
    import yaml

    trials_doc = yaml.safe_load(capsys.readouterr().out)
    assert len(trials_doc["items"]) == 2
    assert trials_doc["items"][0]["spec"]["parameterAssignments"][0]["name"] == "x"
    assert trials_doc["items"][0]["status"]["observation"]["metrics"][0]["name"] == "accuracy"
    assert main(["describe", "experiment", "readback"]) == 0
    text = capsys.readouterr().out
    assert "ExperimentMaxTrialsReached" in text and "Best trial:" in text
    assert main(["get", "trials", "does-not-exist"]) == 2




def test_katib_run_with_a_remote_suggestion_service(tmp_path: Path) -> None:
    from suggestion.service import serve

    server = serve(0, "127.0.0.1")
    try:
        exp = experiment("remote-random", max_trials=3)
        assert run(tmp_path, exp, "--suggestion-address", f"random=127.0.0.1:{server.port}") == 0
        ts = trials("remote-random")
        assert len(ts) == 3 and all(t.status.state == "Succeeded" for t in ts)
        assert len({t.spec.assignments["x"] for t in ts}) == 3
    finally:
        server.stop(0)
    # the address is used: with no server there, the run cannot get suggestions (it waits
    # --suggestion-timeout seconds for one to come up, then gives up)
    exp = experiment("remote-down", max_trials=1)
    assert run(tmp_path, exp, "--suggestion-address", f"random=127.0.0.1:{server.port}",
               "--suggestion-timeout", "1") != 0


def test_file_collector_path_given_in_env_moves_with_the_trial(tmp_path: Path) -> None:
    code = ("import os, sys; path = os.environ['METRICS_PATH']; os.makedirs(os.path.dirname(path), exist_ok=True); "
            "open(path, 'a').write('accuracy=%s\\n' % (1 - float(sys.argv[1])))")
    exp = experiment("file-env", max_trials=2, command=["python3", "-c", code, "${trialParameters.x}"],
                     objective={"type": "maximize", "objectiveMetricName": "accuracy"},
                     env=[{"name": "METRICS_PATH", "value": "/var/log/katib/metrics.log"}],
                     collector={"collector": {"kind": "File"},
                                "source": {"fileSystemPath": {"path": "/var/log/katib/metrics.log", "kind": "File"}}})
    assert run(tmp_path, exp) == 0
    ts = trials("file-env")
    assert [t.status.state for t in ts] == ["Succeeded"] * 2  # each trial found its own file
