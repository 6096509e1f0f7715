"""ENAS against upstream's contract (reference §7.7) and the defects it must not copy:
settings validation over real gRPC, the reply format byte for byte, a controller that
survives restarts, a normal reply before any trial succeeded, distinct batches, learning."""

from __future__ import annotations

import json
import statistics
from typing import Any

import grpc
import pytest

from katib.api.model import (
    AlgorithmSetting,
    AlgorithmSpec,
    Experiment,
    ExperimentSpec,
    FeasibleSpace,
    GraphConfig,
    NasConfig,
    ObjectiveSpec,
    ObjectMeta,
    Operation,
    ParameterSpec,
)
from katib.api.space import SearchSpace
from katib.errors import SettingsError, ValidationError
from katib.rpc import api_pb2, api_pb2_grpc, converters
from suggestion.base import TrialResult, TrialState
from suggestion.service import serve
from tests.nas.conftest import need_torch, requires_torch  # noqa: F401
from tests.rpc.doubles import free_port

pytestmark = pytest.mark.usefixtures("requires_torch")

# The restart tests compare controller states: few steps, but large enough to move the policy.
FAST = {"controller_train_steps": "3", "controller_learning_rate": "0.05"}


def _cat(name: str, *values: str) -> ParameterSpec:
    return ParameterSpec(name, "categorical", FeasibleSpace(list=list(values)))


def nas_config(num_layers: int = 3) -> NasConfig:
    """Op ids as upstream numbers them: 0 conv(3,32) 1 conv(3,64) 2 conv(5,32) 3 conv(5,64)
    4 reduction(max,2) 5 reduction(max,3)."""
    return NasConfig(
        graph_config=GraphConfig(num_layers=num_layers, input_sizes=[32, 32, 3], output_sizes=[10]),
        operations=[
            Operation("convolution", [_cat("filter_size", "3", "5"), _cat("num_filter", "32", "64")]),
            Operation("reduction", [_cat("reduction_type", "max_pooling"),
                                    ParameterSpec("pool_size", "int", FeasibleSpace(min="2", max="3", step="1"))]),
        ],
    )


# What upstream's service puts in nn_config's embedding for each op id of nas_config().
UPSTREAM_OPS = {
    0: {"opt_id": 0, "opt_type": "convolution", "opt_params": {"filter_size": "3", "num_filter": "32"}},
    1: {"opt_id": 1, "opt_type": "convolution", "opt_params": {"filter_size": "3", "num_filter": "64"}},
    2: {"opt_id": 2, "opt_type": "convolution", "opt_params": {"filter_size": "5", "num_filter": "32"}},
    3: {"opt_id": 3, "opt_type": "convolution", "opt_params": {"filter_size": "5", "num_filter": "64"}},
    4: {"opt_id": 4, "opt_type": "reduction", "opt_params": {"reduction_type": "max_pooling", "pool_size": 2}},
    5: {"opt_id": 5, "opt_type": "reduction", "opt_params": {"reduction_type": "max_pooling", "pool_size": 3}},
}


def upstream_nn_config(arc: list[list[int]], num_layers: int = 3) -> str:
    """nn_config as upstream's GetSuggestions writes it (json.dumps, then " -> ')."""
    embedding: dict[int, Any] = {}
    for layer in arc:
        embedding[layer[0]] = UPSTREAM_OPS[layer[0]]
    doc = {"num_layers": num_layers, "input_sizes": [32, 32, 3], "output_sizes": [10], "embedding": embedding}
    return json.dumps(doc).replace('"', "'")


def experiment(name: str = "enas-test", settings: dict[str, str] | None = None, *, num_layers: int = 3,
               objective_type: str = "maximize", nas: NasConfig | None = None) -> Experiment:
    return Experiment(
        metadata=ObjectMeta(name=name),
        spec=ExperimentSpec(
            objective=ObjectiveSpec(type=objective_type, objective_metric_name="accuracy"),
            algorithm=AlgorithmSpec("enas", [AlgorithmSetting(k, v) for k, v in (settings or {}).items()]),
            nas_config=nas if nas is not None else nas_config(num_layers),
            max_trial_count=30, parallel_trial_count=3,
        ),
    )


def make(settings: dict[str, str] | None = None, *, parallel: int | None = None, **kwargs: Any) -> Any:
    from suggestion.enas import ENAS

    exp = experiment(settings=settings, **kwargs)
    space = SearchSpace.from_experiment(exp.spec)
    assert exp.spec.objective is not None
    ENAS.validate_settings(settings or {}, space, exp.spec.objective)
    return ENAS(space, exp.spec.objective, settings or {}, parallel_trial_count=parallel)


# --- the search space and reply format --------------------------------------------------------

def test_reply_format_is_upstreams_byte_for_byte() -> None:
    from suggestion._enas_space import NasSpace, architecture_text

    space = NasSpace(nas_config())
    assert space.num_operations == 6
    arc = [[3], [4, 1], [3, 0, 1]]
    assert architecture_text(arc) == "[[3], [4, 1], [3, 0, 1]]"
    assert space.nn_config_text(arc) == (
        "{'num_layers': 3, 'input_sizes': [32, 32, 3], 'output_sizes': [10], 'embedding': "
        "{'3': {'opt_id': 3, 'opt_type': 'convolution', 'opt_params': {'filter_size': '5', 'num_filter': '64'}}, "
        "'4': {'opt_id': 4, 'opt_type': 'reduction', 'opt_params': {'reduction_type': 'max_pooling', 'pool_size': 2}}}}")


def test_double_parameters_enumerate_by_step_as_upstream() -> None:
    from suggestion._enas_space import NasSpace

    nas = nas_config()
    nas.operations = [Operation("dropout", [ParameterSpec("rate", "double", FeasibleSpace(min="0.1", max="0.3",
                                                                                          step="0.1"))])]
    space = NasSpace(nas)
    assert [op.opt_params["rate"] for op in space.operations] == pytest.approx([0.1, 0.2, 0.3])


# --- settings validation: in-process and over real gRPC ----------------------------------------

BAD_SETTINGS = [
    ({"controller_hidden_size": "0"}, "controller_hidden_size"),
    ({"controller_hidden_size": "None"}, "controller_hidden_size"),
    ({"controller_temperature": "0"}, "controller_temperature"),
    ({"controller_temperature": "warm"}, "controller_temperature"),
    ({"controller_tanh_const": "-1"}, "controller_tanh_const"),
    ({"controller_entropy_weight": "0"}, "controller_entropy_weight"),
    ({"controller_baseline_decay": "0"}, "controller_baseline_decay"),
    ({"controller_baseline_decay": "1.5"}, "controller_baseline_decay"),
    ({"controller_baseline_decay": "None"}, "controller_baseline_decay"),
    ({"controller_learning_rate": "2"}, "controller_learning_rate"),
    ({"controller_skip_target": "0"}, "controller_skip_target"),
    ({"controller_skip_weight": "-0.1"}, "controller_skip_weight"),
    ({"controller_train_steps": "0"}, "controller_train_steps"),
    ({"controller_train_steps": "2.5"}, "controller_train_steps"),
    ({"controller_log_every_steps": "0"}, "controller_log_every_steps"),
    ({"num_epochs": "5"}, "num_epochs"),  # a DARTS setting is unknown here
]

GOOD_SETTINGS = [
    {},
    {"controller_temperature": "None", "controller_tanh_const": "None", "controller_entropy_weight": "None",
     "controller_skip_weight": "None"},
    {"controller_hidden_size": "32", "controller_baseline_decay": "1", "controller_learning_rate": "1",
     "controller_skip_target": "1", "controller_train_steps": "1", "controller_log_every_steps": "1"},
]


@pytest.mark.parametrize("settings,setting", BAD_SETTINGS)
def test_bad_setting_is_named(settings: dict[str, str], setting: str) -> None:
    with pytest.raises(SettingsError) as err:
        make(settings)
    assert err.value.setting == setting


@pytest.mark.parametrize("settings", GOOD_SETTINGS)
def test_upstream_settings_are_accepted(settings: dict[str, str]) -> None:
    make(settings).ask(1)


@pytest.mark.parametrize("settings,setting", BAD_SETTINGS)
def test_bad_setting_is_invalid_argument_over_grpc(stub: api_pb2_grpc.SuggestionStub, settings: dict[str, str],
                                                   setting: str) -> None:
    with pytest.raises(grpc.RpcError) as err:
        stub.ValidateAlgorithmSettings(converters.validate_request(experiment(settings=settings)), timeout=60)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert setting in err.value.details()


def test_good_settings_validate_over_grpc(stub: api_pb2_grpc.SuggestionStub) -> None:
    for settings in GOOD_SETTINGS:
        stub.ValidateAlgorithmSettings(converters.validate_request(experiment(settings=settings)), timeout=60)


def _nas_without(change: str) -> NasConfig:
    nas = nas_config()
    assert nas.graph_config is not None
    if change == "operations":
        nas.operations = []
    elif change == "parameters":
        nas.operations[1].parameters = []
    elif change == "list":
        nas.operations[0].parameters[0].feasible_space.list = []
    elif change == "layers":
        nas.graph_config.num_layers = 0
    elif change == "input":
        nas.graph_config.input_sizes = []
    elif change == "step":
        nas.operations[1].parameters[1] = ParameterSpec("rate", "double", FeasibleSpace(min="0.1", max="0.5"))
    return nas


@pytest.mark.parametrize("change,field", [
    ("operations", "spec.nasConfig.operations"),
    ("parameters", "spec.nasConfig.operations[1].parameters"),
    ("list", "spec.nasConfig.operations[0].parameters[0].feasibleSpace.list"),
    ("layers", "spec.nasConfig.graphConfig.numLayers"),
    ("input", "spec.nasConfig.graphConfig.inputSizes"),
    ("step", "spec.nasConfig.operations[1].parameters[1].feasibleSpace.step"),
])
def test_bad_nas_config_is_invalid_argument_over_grpc(stub: api_pb2_grpc.SuggestionStub, change: str,
                                                      field: str) -> None:
    with pytest.raises(grpc.RpcError) as err:
        stub.ValidateAlgorithmSettings(converters.validate_request(experiment(nas=_nas_without(change))), timeout=60)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in err.value.details()


def test_parameters_instead_of_nas_config_is_refused(stub: api_pb2_grpc.SuggestionStub) -> None:
    exp = experiment()
    exp.spec.nas_config = None
    exp.spec.parameters = [_cat("x", "a", "b")]
    with pytest.raises(grpc.RpcError) as err:
        stub.ValidateAlgorithmSettings(converters.validate_request(exp), timeout=60)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "spec.nasConfig" in err.value.details()


def test_without_torch_validation_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from katib.backends.local import prepare

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else real(name, *a))
    with pytest.raises(ValidationError) as err:
        prepare(experiment_from_example(), local=False)
    assert err.value.errors[0].path == "spec.algorithm.algorithmName"
    assert "pip install 'katib-lite[nas]'" in str(err.value)


def experiment_from_example() -> Experiment:
    from pathlib import Path

    from katib.api.loader import load_experiment

    return load_experiment(Path(__file__).resolve().parents[2] / "examples/nas/enas-cpu.yaml")


def test_katib_validate_names_a_bad_setting() -> None:
    from katib.backends.local import prepare

    exp = experiment_from_example()
    assert exp.spec.algorithm is not None
    exp.spec.algorithm.algorithm_settings = [AlgorithmSetting("controller_temperature", "-2")]
    with pytest.raises(ValidationError) as err:
        prepare(exp, local=False)
    assert err.value.errors[0].path == "spec.algorithm.algorithmSettings"
    assert "controller_temperature" in str(err.value)


# --- replies over gRPC ------------------------------------------------------------------------

class Controller:
    """Upstream's controller: the experiment and every trial in each request."""

    def __init__(self, exp: Experiment) -> None:
        self.message = converters.experiment_to_pb(exp)
        self.trials: list[api_pb2.Trial] = []

    def request(self, n: int) -> api_pb2.GetSuggestionsRequest:
        request = api_pb2.GetSuggestionsRequest(current_request_number=n, total_request_number=len(self.trials) + n)
        request.experiment.CopyFrom(self.message)
        request.trials.extend(self.trials)
        return request

    def ask(self, stub: api_pb2_grpc.SuggestionStub, n: int) -> list[dict[str, str]]:
        reply = stub.GetSuggestions(self.request(n), timeout=120)
        out = []
        for item in reply.parameter_assignments:
            values = {a.name: a.value for a in item.assignments}
            trial = api_pb2.Trial(name=f"t{len(self.trials)}")
            trial.spec.objective.CopyFrom(self.message.spec.objective)
            for k, v in values.items():
                trial.spec.parameter_assignments.assignments.add(name=k, value=v)
            trial.status.start_time = f"2024-05-01T10:00:{len(self.trials):02d}Z"
            trial.status.condition = api_pb2.TrialStatus.RUNNING
            self.trials.append(trial)
            out.append(values)
        return out

    def finish(self, index: int, value: float | None) -> None:
        trial = self.trials[index]
        if value is None:
            trial.status.condition = api_pb2.TrialStatus.FAILED
            return
        trial.status.condition = api_pb2.TrialStatus.SUCCEEDED
        trial.status.observation.metrics.add(name="accuracy", value=repr(value))


def score(architecture: str) -> float:
    """A made-up objective: convolutions with 64 filters score best."""
    arc = json.loads(architecture)
    return sum(1.0 if layer[0] in (1, 3) else 0.2 for layer in arc) / len(arc)


def test_reply_shape_over_grpc(stub: api_pb2_grpc.SuggestionStub) -> None:
    controller = Controller(experiment("enas-shape", FAST))
    reply = controller.ask(stub, 3)
    assert len(reply) == 3
    for values in reply:
        assert list(values) == ["architecture", "nn_config"]
        arc = json.loads(values["architecture"])
        assert len(arc) == 3 and [len(layer) for layer in arc] == [1, 2, 3]
        assert values["architecture"] == json.dumps(arc)  # upstream's spacing
        assert values["nn_config"] == upstream_nn_config(arc)


def test_no_succeeded_trial_is_a_normal_reply(stub: api_pb2_grpc.SuggestionStub) -> None:
    """Upstream returns a Python list here, which fails the call."""
    controller = Controller(experiment("enas-all-failed", FAST))
    controller.ask(stub, 2)
    controller.finish(0, None)
    controller.finish(1, None)
    reply = controller.ask(stub, 2)
    assert len(reply) == 2 and all(json.loads(v["architecture"]) for v in reply)


def test_restarted_service_suggests_what_the_old_one_would_have() -> None:
    port = free_port()
    controller = Controller(experiment("enas-restart", FAST))
    first = serve(port, "127.0.0.1", remotes={})
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = api_pb2_grpc.SuggestionStub(channel)
            for _ in range(3):
                start = len(controller.trials)
                got = controller.ask(stub, 3)
                # out of start order: the last started finishes first
                for i in reversed(range(3)):
                    controller.finish(start + i, score(got[i]["architecture"]))
            expected = stub.GetSuggestions(controller.request(4), timeout=120)
    finally:
        first.stop(None)
    second = serve(port, "127.0.0.1", remotes={})
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            again = api_pb2_grpc.SuggestionStub(channel).GetSuggestions(controller.request(4), timeout=120)
    finally:
        second.stop(None)
    assert again == expected
    assert len({item.assignments[0].value for item in again.parameter_assignments}) == 4


# --- restart in-process, batches, learning -------------------------------------------------

def result(name: str, values: Any, order: int, value: float | None, state: str = TrialState.SUCCEEDED) -> TrialResult:
    return TrialResult(name, dict(values), state if value is not None else TrialState.RUNNING, value, order=order)


@pytest.mark.parametrize("parallel", [None, 2, 3])
def test_rebuilt_from_history_suggests_the_same(parallel: int | None) -> None:
    """A long-lived instance told trials as they finish (out of start order) and a fresh one
    told everything at once hold the same controller: same next suggestions. (Rounds close
    every ``parallel`` finished trials; with 2, closed and provisional rounds alternate.)"""
    live = make(FAST, parallel=parallel)
    trials: list[TrialResult] = []
    for round_ in range(4):
        batch = live.ask(3)
        start = len(trials)
        running = [result(f"t{start + i}", a.values, start + i, None) for i, a in enumerate(batch)]
        trials += running
        live.tell(running)
        for i in (2, 0, 1):  # finish out of order, one tell each
            done = result(f"t{start + i}", batch[i].values, start + i, score(str(batch[i].values["architecture"])))
            trials[start + i] = done
            live.tell([done])
            live.ask(1)  # each call trains on the partial history it has
    rebuilt = make(FAST, parallel=parallel)
    rebuilt.tell(trials)
    expected = [a.values for a in live.ask(5)]
    assert [a.values for a in rebuilt.ask(5)] == expected
    # the same trials with other values: the same sampling seeds, another controller
    other = make(FAST, parallel=parallel)
    other.tell([result(t.name, t.assignments, int(t.order), 1.0 - (t.value or 0.0)) for t in trials])
    assert [a.values for a in other.ask(5)] != expected, "the controller's training changed nothing"


def test_batches_are_distinct_and_new() -> None:
    algo = make(FAST)
    first = [a.values["architecture"] for a in algo.ask(8)]
    algo.tell([result(f"t{i}", {"architecture": a}, i, 0.5) for i, a in enumerate(first)])
    second = [a.values["architecture"] for a in algo.ask(8)]
    assert len(set(first)) == 8 and len(set(second)) == 8
    assert not set(first) & set(second)


def test_a_space_smaller_than_the_batch_repeats() -> None:
    """One layer and two op ids hold two architectures; a batch of three still has three."""
    nas = nas_config(num_layers=1)
    nas.operations = nas.operations[1:]  # reduction: op ids 0 and 1
    algo = make(FAST, nas=nas)
    got = [a.values["architecture"] for a in algo.ask(3)]
    assert len(got) == 3 and set(got) == {"[[0]]", "[[1]]"}


def test_the_controller_learns_which_operation_scores_well() -> None:
    """Trials with op 3 in the first layer score 1, the rest 0: after training, the policy
    puts more probability on op 3 than before, and samples it more often."""
    settings = {"controller_learning_rate": "0.01", "controller_train_steps": "20"}
    algo = make(settings, num_layers=1)
    before = algo.policy_probabilities()
    trials = [result(f"t{i}", {"architecture": f"[[{i % 6}]]"}, i, 1.0 if i % 6 == 3 else 0.0) for i in range(12)]
    algo.tell(trials)
    after = algo.policy_probabilities()
    assert after[3] > before[3] + 0.1, (before, after)
    assert after[3] == max(after)
    assert statistics.mean(after[:3] + after[4:]) < statistics.mean(before[:3] + before[4:])


def test_minimize_rewards_lower_values() -> None:
    settings = {"controller_learning_rate": "0.01", "controller_train_steps": "20"}
    algo = make(settings, num_layers=1, objective_type="minimize")
    trials = [result(f"t{i}", {"architecture": f"[[{i % 6}]]"}, i, 0.1 if i % 6 == 4 else 2.0) for i in range(12)]
    algo.tell(trials)
    after = algo.policy_probabilities()
    assert after[4] == max(after)


def test_katib_run_restarted_suggests_the_same() -> None:
    """In-process (``katib run``): the runner's trials carry the architecture to the
    algorithm, and a new process rebuilt from the stored trials continues identically."""
    from katib.api.model import Condition, Metric, Observation, ParameterAssignment, Trial, TrialSpec, TrialStatus
    from suggestion.inprocess import InProcessSuggester

    exp = experiment("enas-local", FAST)
    live = InProcessSuggester()
    trials: list[Trial] = []
    for _ in range(3):
        for a in live.suggest(exp, trials, 2):
            n = len(trials)
            trials.append(Trial(
                metadata=ObjectMeta(name=f"t{n}"),
                spec=TrialSpec(parameter_assignments=[ParameterAssignment(k, str(v)) for k, v in a.values.items()]),
                status=TrialStatus(start_time=f"2024-05-01T10:00:{n:02d}Z")))
        for t in trials:
            if t.status.state != "Succeeded":
                arc = next(p.value for p in t.spec.parameter_assignments if p.name == "architecture")
                t.status.conditions = [Condition(type="Succeeded", status="True")]
                t.status.observation = Observation(metrics=[Metric("accuracy", latest=repr(score(arc)))])
    expected = [a.values for a in live.suggest(exp, trials, 3)]
    assert [a.values for a in InProcessSuggester().suggest(exp, trials, 3)] == expected
    assert [a.values for a in InProcessSuggester().suggest(exp, trials[:4], 3)] != expected


def test_katib_validate_refuses_an_operation_without_parameters() -> None:
    from katib.backends.local import prepare

    exp = experiment_from_example()
    assert exp.spec.nas_config is not None
    exp.spec.nas_config.operations[2].parameters = []
    with pytest.raises(ValidationError) as err:
        prepare(exp, local=False)
    assert [e.path for e in err.value.errors] == ["spec.nasConfig.operations[2].parameters"]
    assert "at least one parameter" in str(err.value)
