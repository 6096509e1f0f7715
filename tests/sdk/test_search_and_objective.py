"""katib.search helpers and the trial command (katib.sdk.objective) without running a search."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import pytest

from katib import search
from katib.api.model import Experiment
from katib.sdk import objective
from katib.sdk.experiment import ExperimentArgs, plan_parameters
from katib.sdk.kube import kubernetes_command, runner_source


def test_helpers_build_upstream_parameter_specs() -> None:
    spec = search.double(0.001, 0.1, step=0.001, distribution="logUniform")
    assert spec.to_dict() == {"name": "", "parameterType": "double", "feasibleSpace": {
        "min": "0.001", "max": "0.1", "step": "0.001", "distribution": "logUniform"}}
    assert search.int(1, 8, step=2).feasible_space.to_dict() == {"min": "1", "max": "8", "step": "2",
                                                                 "distribution": "uniform"}
    assert search.categorical(["a", True, 3]).feasible_space.list == ["a", "true", "3"]
    assert search.discrete([1, 2.5]).feasible_space.list == ["1", "2.5"]
    assert search.int is not int and isinstance(search.int(1, 2).feasible_space.min, str)


@pytest.mark.parametrize("call, message", [
    (lambda: search.double(1, 0), "katib.search.double: min (1) must not be above max (0)"),
    (lambda: search.double(0, "1"), "katib.search.double: max must be a number"),
    (lambda: search.double(0, 1, step=0), "katib.search.double: step must be above 0"),
    (lambda: search.double(0, 1, step=2), "step (2) is larger than max - min"),
    (lambda: search.double(0, 1, distribution="logUniform"), "min must be above 0 for distribution 'logUniform'"),
    (lambda: search.double(0, 1, distribution="gaussian"), "distribution must be one of uniform, logUniform"),
    (lambda: search.double(0, float("inf")), "max must be finite"),
    (lambda: search.int(1.5, 3), "katib.search.int: min must be a whole number"),
    (lambda: search.int(True, 3), "katib.search.int: min must be a number"),
    (lambda: search.categorical([]), "katib.search.categorical: list must hold at least one value"),
    (lambda: search.categorical("abc"), "katib.search.categorical: list must be a list"),
    (lambda: search.categorical(["a", "a"]), "list[1] repeats list[0]"),
    (lambda: search.categorical([None]), "list[0] must be a str, int, float or bool"),
    (lambda: search.discrete([1, "x"]), "katib.search.discrete: list[1] must be a finite number"),
])
def test_helpers_name_the_bad_argument(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


def test_argv_values_survive_any_characters_and_arrive_typed() -> None:
    plan = plan_parameters({"lr": search.double(0, 1), "n": search.int(1, 3),
                            "s": search.categorical(['say "hi"', "--", "a\nb", "$(HOME)"]),
                            "flag": search.categorical([True, False]), "k": search.discrete([1, 2])})
    args = plan.trial_args()
    values = {"lr": "0.25", "n": "2", "s": "a\nb", "flag": "false", "k": "2"}
    argv = ["--metric", "loss"] + [values[a[len("${trialParameters."):-1]] if a.startswith("${") else a
                                   for a in args]
    options, params = objective.parse_argv(argv)
    assert options["metric"] == "loss"
    assert params == {"lr": 0.25, "n": 2, "s": "a\nb", "flag": False, "k": 2}
    assert [type(v) for v in params.values()] == [float, int, str, bool, int]
    with pytest.raises(ValueError, match="parameter 'n': cannot read 'x' as int"):
        objective.parse_argv(["--", json.dumps({"n": "int"}), "n", "x"])


@pytest.mark.parametrize("value, lines", [
    (0.5, ["loss=0.5"]), (3, ["loss=3"]), (None, []), ({"a": 1.5, "b": 2}, ["a=1.5", "b=2"]),
])
def test_return_values_become_collector_lines(value: Any, lines: list[str]) -> None:
    assert objective.result_lines(value, "loss") == lines


@pytest.mark.parametrize("value, said", [
    (float("nan"), "returned nan;"), (float("inf"), "returned inf;"), (-float("inf"), "returned -inf;"),
    (10 ** 400, "returned the int 10000"), ("0.5", "returned the str '0.5';"), (b"1", "the bytes b'1'"),
    ([0.5], "the list [0.5];"), (True, "the bool True;"),
    ({"loss": float("nan")}, "returned {'loss': nan}; every value of the dict must be a finite number"),
    ({"loss": 0.3, "acc": "high"}, "returned {'acc': the str 'high'}"),
], ids=["nan", "inf", "-inf", "huge-int", "str", "bytes", "list", "bool", "dict-nan", "dict-str"])
def test_a_return_value_that_is_no_finite_number_fails_saying_what_it_was(
        value: Any, said: str, capfd: pytest.CaptureFixture[str]) -> None:
    assert objective.run_objective(lambda p: value, {}, "loss") == 1
    captured = capfd.readouterr()
    assert said in captured.err and "return a finite number (the objective metric)" in captured.err
    assert "Traceback" not in captured.err and "loss=" not in captured.out  # nothing recorded, no noise


def test_a_return_value_that_is_no_metric_fails_with_a_hint(capfd: pytest.CaptureFixture[str]) -> None:
    assert objective.run_objective(lambda p: "high", {}, "loss") == 1
    assert "a dict of finite numbers, or None when the objective prints" in capfd.readouterr().err
    assert objective.run_objective(lambda p: {"loss": "x"}, {}, "loss") == 1
    assert objective.run_objective(lambda p: exec("raise SystemExit(4)"), {}, "loss") == 4


def test_returning_none_is_allowed_and_noted_in_the_output(capfd: pytest.CaptureFixture[str]) -> None:
    assert objective.run_objective(lambda p: None, {}, "loss") == 0
    assert "katib: the objective returned None" in capfd.readouterr().err


def _pod_argv(command: list[str], values: dict[str, str]) -> list[str]:
    """What a kubelet runs: Katib substituted the placeholders, ``$$`` became ``$``."""
    out = []
    for item in command:
        for name, value in values.items():
            item = item.replace("${trialParameters.%s}" % name, value)
        out.append(item.replace("$$", "$"))
    return out


def shipped(p: dict[str, Any]) -> dict[str, Any]:
    import json as j  # a shipped function imports what it uses

    print("got " + j.dumps({k: type(v).__name__ for k, v in p.items()}, sort_keys=True))
    return {"loss": p["lr"] * p["n"], "cost$": 1}


def test_the_pod_command_runs_the_function_by_source_with_typed_parameters() -> None:
    plan = plan_parameters({"lr": search.double(0, 1), "n": search.int(1, 3), "opt": search.categorical(["a$b"]),
                            "epochs": 2})
    command = kubernetes_command(shipped, plan, ExperimentArgs(name="x", namespace="default",
                                                                objective_metric_name="loss"))
    assert command[:3] == ["python3", "-u", "-c"] and "${trialParameters." not in command[3]
    argv = _pod_argv(command, {"lr": "0.5", "n": "3", "opt": "a$b"})
    argv[0] = sys.executable
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env={"KATIB_METRICS_SINK": "stdout"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        'got {"epochs": "int", "lr": "float", "n": "int", "opt": "str"}', "loss=1.5", "cost$=1"]


def test_the_pod_command_can_ship_a_closure_pickled() -> None:
    scale = 10
    plan = plan_parameters({"x": search.double(0, 1)})
    command = kubernetes_command(lambda p: p["x"] * scale, plan, ExperimentArgs(name="x", namespace="default"),
                                 transport="source")  # a lambda has no source of its own: pickled
    assert "--objective-pickle" in command and command[command.index("--python-version") + 1] == \
        f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert command[command.index("--pip") + 1] == "cloudpickle"
    argv = _pod_argv(command, {"x": "0.25"})
    argv[0] = sys.executable
    i = argv.index("--pip")
    del argv[i:i + 2]  # cloudpickle is installed here; no pip run in a test
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "objective=2.5"


def test_report_metrics_works_in_a_pod_without_the_katib_package(tmp_path: Any) -> None:
    source = tmp_path / "runner.py"
    source.write_text(runner_source())
    code = ("def f(p):\n    import katib\n    katib.report_metrics({'loss': p['x']})\n"
            "    katib.report_metrics({'loss': p['x'] / 2}, step=7)\n")
    # -S: no site-packages, as in an image without this package
    done = subprocess.run([sys.executable, "-I", "-S", str(source), "--objective-source", code, "--objective-name", "f",
                           "--", '{"x":"float"}', "x", "0.5"], capture_output=True, text=True, timeout=60,
                          env={"KATIB_METRICS_SINK": "stdout"}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["step=1 loss=0.5", "step=7 loss=0.25"]


def test_the_experiment_is_valid_and_round_trips() -> None:
    from katib.backends.local import prepare
    from katib.sdk.experiment import build_experiment

    plan = plan_parameters({"lr": search.double(0, 1)})
    args = ExperimentArgs(name="roundtrip", namespace="team", objective_metric_name="loss", objective_type="minimize",
                          max_trial_count=4, parallel_trial_count=2, early_stopping=True, retain_trials=True,
                          algorithm_settings={"random_state": 3})
    exp = build_experiment(args, plan, ["python3", "-m", "katib.sdk.objective", *plan.trial_args()], image="img",
                           env=[{"name": "A", "value": "1"}], resources_per_trial={"limits": {"cpu": "1"}})
    prepare(exp, local=False)
    again = Experiment.from_dict(exp.to_dict())
    assert again.to_dict() == exp.to_dict()
    container = exp.spec.trial_template.trial_spec["spec"]["template"]["spec"]["containers"][0]
    assert container["env"] == [{"name": "A", "value": "1"}, {"name": "KATIB_METRICS_SINK", "value": "stdout"}]
    assert exp.spec.early_stopping.algorithm_name == "medianstop" and exp.spec.trial_template.retain is True
    assert exp.spec.algorithm.settings == {"random_state": "3"}
