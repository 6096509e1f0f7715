"""The gRPC Suggestion service, driven the way upstream's controller drives it: the full
trial list in every GetSuggestions request.

The conformance suite runs for EVERY name in ``suggestion.registry.names()`` (built-ins,
plug-ins and the test doubles of tests.rpc.doubles) across every distribution.
"""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from katib.api.model import (
    Condition,
    Experiment,
    FeasibleSpace,
    Metric,
    Observation,
    ObjectMeta,
    ParameterAssignment,
    ParameterSpec,
    Trial,
    TrialSpec,
    TrialStatus,
)
from katib.api.space import SearchSpace
from katib.errors import SearchSpaceExhausted
from katib.rpc import api_pb2, api_pb2_grpc, converters
from suggestion import registry
from suggestion.base import TrialResult, TrialState
from suggestion.hyperband import LABEL_FILLER
from suggestion.inprocess import InProcessSuggester
from suggestion.service import serve
from suggestion.suggester import Suggester
from tests.rpc.doubles import Stateful, TellCounter, experiment, free_port, mixed_parameters

ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTIONS = ["uniform", "logUniform", "normal", "logNormal"]
# Architecture search takes a nasConfig, not parameters: tests/suggestion/test_enas*.py and
# test_darts*.py hold its conformance suites.
NAS_ALGORITHMS = {"enas", "darts"}
ALGORITHMS = [a for a in registry.names() if a not in NAS_ALGORITHMS]
# Settings an algorithm needs to run at all on the mixed search space.
SETTINGS = {"hyperband": {"r_l": "9", "eta": "3", "resource_name": "layers"}}
# Algorithms that enumerate, so they need a finite space (no step-less double).
FINITE_ONLY = {"grid", "test-finite"}
N = 4


def _require(algorithm: str) -> None:
    """Skip while a built-in algorithm module is not written yet (reported, not hidden:
    the skip reason names it)."""
    try:
        registry.get(algorithm)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("suggestion."):
            pytest.skip(f"{exc.name} is not written yet")
        raise


# --- a minimal upstream-like controller ------------------------------------------------------

def _score(values: dict[str, str]) -> float:
    """A deterministic objective so model-based algorithms have something to fit."""
    return -abs(float(values["layers"]) - 4) - abs(float(values.get("lr", "0.01")) - 0.01) * 10 + float(values["momentum"])


class Controller:
    """Sends what upstream's controller sends: the experiment and every trial, each call."""

    def __init__(self, exp: Experiment) -> None:
        self.exp = exp
        self.message = converters.experiment_to_pb(exp)
        self.trials: list[api_pb2.Trial] = []
        self.state: dict[str, str] = {}  # upstream keeps the reply's algorithm in Suggestion.status

    def request(self, n: int) -> api_pb2.GetSuggestionsRequest:
        request = api_pb2.GetSuggestionsRequest(current_request_number=n, total_request_number=len(self.trials) + n)
        request.experiment.CopyFrom(self.message)
        if self.state:
            merged = converters.merge_settings(self.exp.spec.algorithm, self.state)  # type: ignore[arg-type]
            del request.experiment.spec.algorithm.algorithm_settings[:]
            converters.algorithm_to_pb(merged, request.experiment.spec.algorithm)
        request.trials.extend(self.trials)
        return request

    def ask(self, stub: api_pb2_grpc.SuggestionStub, n: int) -> list[dict[str, str]]:
        reply = stub.GetSuggestions(self.request(n), timeout=120)
        self.state = {s.name: s.value for s in reply.algorithm.algorithm_settings}
        out = []
        for item in reply.parameter_assignments:
            values = {a.name: a.value for a in item.assignments}
            trial = self.trials_add(item.trial_name or f"{self.exp.name}-{len(self.trials)}", values)
            trial.status.condition = api_pb2.TrialStatus.RUNNING
            out.append(values)
        return out

    def trials_add(self, name: str, values: dict[str, str]) -> api_pb2.Trial:
        trial = api_pb2.Trial(name=name)
        trial.spec.objective.CopyFrom(self.message.spec.objective)
        for k, v in values.items():
            trial.spec.parameter_assignments.assignments.add(name=k, value=v)
        trial.status.start_time = f"2024-05-01T10:{len(self.trials) // 60:02d}:{len(self.trials) % 60:02d}Z"
        self.trials.append(trial)
        return trial

    def finish_all(self) -> None:
        for trial in self.trials:
            if trial.status.condition == api_pb2.TrialStatus.RUNNING:
                values = {a.name: a.value for a in trial.spec.parameter_assignments.assignments}
                trial.status.condition = api_pb2.TrialStatus.SUCCEEDED
                trial.status.completion_time = trial.status.start_time
                trial.status.observation.metrics.add(name="accuracy", value=repr(_score(values)))
                trial.status.observation.metrics.add(name="loss", value="0.5")


def _check_reply(space: SearchSpace, reply: list[dict[str, str]], n: int, algorithm: str) -> None:
    # exactly n, hyperband included: upstream's controller rejects any other size
    assert len(reply) == n, f"{algorithm} returned {len(reply)} assignments for a request of {n}"
    points = []
    for values in reply:
        assert set(values) == set(space.names)
        typed = space.parse(values)
        for p in space:
            assert p.contains(typed[p.name]), f"{algorithm}: {p.name}={values[p.name]!r} is outside {p}"
            assert space[p.name].format(typed[p.name]) == values[p.name], "values travel in canonical form"
        points.append(tuple(typed[name] for name in space.names))
    assert len(set(points)) == len(points), f"{algorithm} returned duplicate points in one reply: {reply}"


# --- conformance: every algorithm, every distribution, two rounds --------------------------

@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_two_rounds(stub: api_pb2_grpc.SuggestionStub, algorithm: str, distribution: str) -> None:
    _require(algorithm)
    params = mixed_parameters(distribution, continuous=algorithm not in FINITE_ONLY)
    exp = experiment(f"conf-{algorithm}-{distribution}".lower(), algorithm, params, SETTINGS.get(algorithm))
    space = SearchSpace.from_experiment(exp.spec)
    controller = Controller(exp)
    try:
        stub.ValidateAlgorithmSettings(converters.validate_request(exp), timeout=60)
    except grpc.RpcError as err:
        # An algorithm may refuse a distribution it cannot sample, but it must say so at
        # validation, naming it, and GetSuggestions must refuse it the same way.
        assert distribution != "uniform", f"{algorithm} rejected the uniform space: {err.details()}"
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert distribution in err.details() or "distribution" in err.details(), err.details()
        with pytest.raises(grpc.RpcError) as again:
            controller.ask(stub, N)
        assert again.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        return

    first = controller.ask(stub, N)
    _check_reply(space, first, N, algorithm)
    controller.finish_all()
    second = controller.ask(stub, N)
    _check_reply(space, second, N, algorithm)
    if algorithm in FINITE_ONLY:
        assert not {tuple(sorted(v.items())) for v in first} & {tuple(sorted(v.items())) for v in second}


# --- hyperband under upstream's exact-count contract ----------------------------------------

def test_hyperband_meets_the_exact_count_contract_over_grpc(stub: api_pb2_grpc.SuggestionStub) -> None:
    """Upstream's controller asks for exactly its free slots, rejects a reply of any other
    size and sends no labels back; hyperband still runs every bracket and rung, then ends."""
    params = [ParameterSpec("lr", "double", FeasibleSpace(min="0.001", max="0.1")),
              ParameterSpec("layers", "int", FeasibleSpace(min="1", max="9"))]
    exp = experiment("hb-exact", "hyperband", params, {"r_l": "9", "eta": "3", "resource_name": "layers"},
                     max_trial_count=None, parallel_trial_count=9)
    controller = Controller(exp)
    fillers: set[str] = set()
    parallel, pending, exhausted = 9, 0, False
    for _ in range(200):
        running = [t for t in controller.trials if t.status.condition == api_pb2.TrialStatus.RUNNING]
        for trial in running[:2]:  # the two oldest finish
            values = {a.name: a.value for a in trial.spec.parameter_assignments.assignments}
            trial.status.condition = api_pb2.TrialStatus.SUCCEEDED
            score = float(values["layers"]) / 10 - abs(float(values["lr"]) - 0.01)
            trial.status.observation.metrics.add(name="accuracy", value=repr(score))
        n = parallel - (len(running) - len(running[:2]))
        if n == 0:
            continue
        try:
            reply = stub.GetSuggestions(controller.request(n), timeout=60)
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.OUT_OF_RANGE:
                assert "search space exhausted" in err.details()
                if len(running) - len(running[:2]) == 0:
                    exhausted = True
                    break
                continue
            assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err.details()
            assert len(running) > 2, "hyperband waited with nothing running: it would stall"
            pending += 1
            continue
        assert len(reply.parameter_assignments) == n, "upstream's controller rejects this reply"
        controller.state = {x.name: x.value for x in reply.algorithm.algorithm_settings}
        for item in reply.parameter_assignments:
            values = {a.name: a.value for a in item.assignments}
            trial = controller.trials_add(f"hb-{len(controller.trials)}", values)
            trial.status.condition = api_pb2.TrialStatus.RUNNING
            if item.labels.get(LABEL_FILLER):
                fillers.add(trial.name)
    assert exhausted, "hyperband never said the search space was exhausted"
    layers = [int(next(a.value for a in t.spec.parameter_assignments.assignments if a.name == "layers"))
              for t in controller.trials if t.name not in fillers]
    # bracket 2: 9 at 1 layer, 3 at 3, 1 at 9; bracket 1: 5 at 3, 2 at 9; bracket 0: 3 at 9
    assert sorted(layers) == [1] * 9 + [3] * 8 + [9] * 6
    assert pending > 0  # it did have to wait between rungs, and said so instead of replying short
    assert len(fillers) < parallel * 3


# --- restart: a new server picks up an experiment from the request's trials ----------------

@pytest.mark.parametrize("algorithm", [a for a in ALGORITHMS if not a.startswith("test-")] + ["test-finite"])
def test_restart_mid_experiment(algorithm: str) -> None:
    _require(algorithm)
    port = free_port()
    max_trials = 12
    exp = experiment(f"restart-{algorithm}", algorithm,
                     mixed_parameters(continuous=algorithm not in FINITE_ONLY)[:2 if algorithm == "test-finite" else None],
                     SETTINGS.get(algorithm), max_trial_count=max_trials)
    controller = Controller(exp)

    def rounds(count: int) -> bool:
        """Run up to ``count`` rounds; True once the experiment is complete."""
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = api_pb2_grpc.SuggestionStub(channel)
            for _ in range(count):
                left = max_trials - len(controller.trials)
                if left <= 0:
                    return True
                try:
                    got = controller.ask(stub, min(3, left))
                except grpc.RpcError as err:
                    assert err.code() == grpc.StatusCode.OUT_OF_RANGE, err.details()
                    return True
                assert len(got) == min(3, left)
                controller.finish_all()
        return len(controller.trials) >= max_trials

    first = serve(port, "127.0.0.1", remotes={})
    try:
        assert not rounds(2)
    finally:
        first.stop(None)
    second = serve(port, "127.0.0.1", remotes={})
    try:
        assert rounds(20), "the experiment did not complete after the restart"
    finally:
        second.stop(None)
    names = [t.name for t in controller.trials]
    assert len(names) == len(set(names))
    if algorithm in FINITE_ONLY:
        points = [tuple((a.name, a.value) for a in t.spec.parameter_assignments.assignments) for t in controller.trials]
        assert len(points) == len(set(points)), "a restarted algorithm repeated points it had handed out"


# --- the cache tells only what changed ------------------------------------------------------

def test_only_new_and_changed_trials_are_told(stub: api_pb2_grpc.SuggestionStub) -> None:
    TellCounter.reset()
    controller = Controller(experiment("tell-sizes", "test-counter"))
    controller.ask(stub, 3)   # no trials yet: nothing to tell; trials 0-2 start
    controller.ask(stub, 3)   # 0-2 are new; 3-5 start
    controller.finish_all()
    controller.ask(stub, 3)   # 0-2 changed state and 3-5 are new (finished); 6-8 start
    controller.ask(stub, 3)   # only 6-8 are new, 0-5 are unchanged; 9-11 start
    controller.ask(stub, 0)   # 9-11 are new, no assignments asked
    controller.ask(stub, 0)   # nothing changed at all: no tell
    names = [t.name for t in controller.trials]
    assert TellCounter.tells == [names[0:3], names[0:6], names[6:9], names[9:12]]
    assert TellCounter.instances == 1, "the session was rebuilt between calls"


def test_a_rebuilt_session_is_told_everything_once() -> None:
    TellCounter.reset()
    srv = serve(0, "127.0.0.1", remotes={}, max_sessions=1)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
            stub = api_pb2_grpc.SuggestionStub(channel)
            a = Controller(experiment("lru-a", "test-counter"))
            b = Controller(experiment("lru-b", "test-counter"))
            a.ask(stub, 4)
            a.finish_all()
            b.ask(stub, 2)             # evicts a (one session fits)
            got = a.ask(stub, 2)       # a is rebuilt from its 4 trials and goes on
    finally:
        srv.stop(None)
    assert len(got) == 2
    assert TellCounter.instances == 3
    assert [len(t) for t in TellCounter.tells] == [4]


def test_changed_spec_rebuilds_the_algorithm(stub: api_pb2_grpc.SuggestionStub) -> None:
    TellCounter.reset()
    exp = experiment("spec-change", "test-counter", max_trial_count=10)
    Controller(exp).ask(stub, 1)
    exp.spec.max_trial_count = 20  # upstream allows raising maxTrialCount
    Controller(exp).ask(stub, 1)
    assert TellCounter.instances == 2


def test_algorithm_state_round_trips_without_rebuilds(stub: api_pb2_grpc.SuggestionStub) -> None:
    Stateful.built = 0
    controller = Controller(experiment("stateful", "test-stateful"))
    controller.ask(stub, 1)
    assert controller.state["round"] == "1"
    controller.ask(stub, 1)            # echoes round=1, as upstream's controller does
    assert controller.state["round"] == "2" and Stateful.built == 1
    controller.state = {"round": "1"}  # upstream rejected the last reply and replays it
    controller.ask(stub, 1)
    assert controller.state["round"] == "2" and Stateful.built == 2


def test_concurrent_calls(stub: api_pb2_grpc.SuggestionStub) -> None:
    controllers = [Controller(experiment(f"parallel-{i % 3}", "test-random")) for i in range(12)]
    replies: list[list[dict[str, str]]] = []
    errors: list[BaseException] = []

    def call(c: Controller) -> None:
        try:
            replies.append(c.ask(stub, 5))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(c,)) for c in controllers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    # Calls for one experiment share its algorithm (one at a time), so no point repeats.
    by_experiment: dict[str, list[tuple]] = {}
    for c in controllers:
        by_experiment.setdefault(c.exp.name, []).extend(
            tuple(sorted((a.name, a.value) for a in t.spec.parameter_assignments.assignments)) for t in c.trials)
    for points in by_experiment.values():
        assert len(points) == 20 and len(set(points)) == 20


# --- in-process suggester: same contract without gRPC --------------------------------------

def _domain_trial(name: str, values: dict[str, str], state: str, accuracy: str | None) -> Trial:
    metrics = [Metric("accuracy", min=accuracy, max=accuracy, latest=accuracy)] if accuracy else []
    return Trial(metadata=ObjectMeta(name=name),
                 spec=TrialSpec(parameter_assignments=[ParameterAssignment(k, v) for k, v in values.items()]),
                 status=TrialStatus(start_time="2024-05-01T10:00:00Z", conditions=[Condition(state)],
                                    observation=Observation(metrics)))


def test_in_process_suggester() -> None:
    TellCounter.reset()
    suggester = InProcessSuggester()
    assert isinstance(suggester, Suggester)
    exp = experiment("inproc", "test-counter")
    space = SearchSpace.from_experiment(exp.spec)
    suggester.validate(exp)
    first = suggester.suggest(exp, [], 3)
    trials: list[Trial | TrialResult] = [
        _domain_trial(f"t{i}", space.format(dict(a.values)), "Succeeded", str(i / 10)) for i, a in enumerate(first)]
    trials.append(TrialResult("extra", {"layers": 1, "lr": 0.01, "momentum": 0.5, "activation": "relu", "batch": 16},
                              TrialState.RUNNING))
    second = suggester.suggest(exp, trials, 3)
    suggester.suggest(exp, trials, 3)
    assert len(second) == 3 and TellCounter.tells == [["t0", "t1", "t2", "extra"]]
    finite = experiment("inproc-finite", "test-finite", mixed_parameters(continuous=False)[:1])
    assert len(suggester.suggest(finite, [], 10)) == 9
    with pytest.raises(SearchSpaceExhausted):
        suggester.suggest(finite, [], 1)


# --- process lifecycle ------------------------------------------------------------------------

def _wait_serving(port: int, deadline: float) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                reply = health.Check(health_pb2.HealthCheckRequest(service="manager.v1beta1.Suggestion"), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("the suggestion service never became healthy")
            time.sleep(0.1)


def test_sigterm_finishes_calls_in_flight_then_exits() -> None:
    port = free_port()
    # main() is what `katib suggestion serve` runs; the doubles module adds a slow algorithm.
    script = ("import logging, sys; logging.basicConfig(level=logging.INFO); import tests.rpc.doubles; "
              "from suggestion.service import main; sys.exit(main(sys.argv[1:]))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", script, "--port", str(port), "--host", "127.0.0.1", "--grace", "10"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_serving(port, time.monotonic() + 60)
        controller = Controller(experiment("slow", "test-slow", settings={"delay": "1.5"}))
        result: list[object] = []
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = api_pb2_grpc.SuggestionStub(channel)
            call = threading.Thread(target=lambda: result.append(controller.ask(stub, 2)))
            call.start()
            time.sleep(0.5)  # the call is inside the algorithm now
            proc.send_signal(signal.SIGTERM)
            call.join(30)
        assert proc.wait(30) == 0
        assert len(result) == 1 and len(result[0]) == 2, "the call in flight was cut off"  # type: ignore[arg-type]
        assert "SIGTERM" in proc.stderr.read()  # type: ignore[union-attr]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_python_dash_m_entry_point() -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "suggestion.service", "--port", str(port), "--host", "127.0.0.1"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_serving(port, time.monotonic() + 60)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_module_imports_no_generated_code_outside_katib_rpc() -> None:
    # The servicer speaks protobuf only through katib.rpc (the layering test checks imports;
    # this checks the module really loads that way).
    module = importlib.import_module("suggestion.service")
    assert not any(name.endswith("_pb2") for name in vars(module))
