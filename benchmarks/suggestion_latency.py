"""Latency of one suggestion call (n = 3, the parallel trial count) at 10, 100 and 1000
prior trials, per algorithm: over gRPC through ``suggestion.service``, in process, and the
underlying library alone fed the same history (ratio = gRPC / library).

Run:  python benchmarks/suggestion_latency.py [--sizes 10,100,1000] [--repeat 5] [--only tpe,grid]

Each gRPC request carries every trial, as upstream's controller sends them. A call is
measured in steady state: the service has seen the experiment before, and since its last
call the 3 trials it suggested have finished, so the numbers include what every call
costs (decoding the request, finding the new trials, telling them, asking). The first call
for an experiment (cold: the algorithm is built and told all N trials) is reported too.

"Library alone" is what the algorithm would cost without this project: an optuna study
with the same sampler (random, grid, sobol via QMCSampler, tpe, multivariate-tpe, cmaes via
CmaEsSampler) given the N trials with ``add_trial``, then asked 3 times and told the
results; for bayesianoptimization a stock ``skopt.Optimizer`` told the N points in one
``tell`` and asked ``ask(3)`` (its constant liar refits per point). Hyperband has no library.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import random
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import grpc  # noqa: E402
import optuna  # noqa: E402

from katib.api.model import (AlgorithmSetting, AlgorithmSpec, Experiment, ExperimentSpec,  # noqa: E402
                             FeasibleSpace, ObjectiveSpec, ObjectMeta, ParameterSpec)
from katib.api.space import SearchSpace, Value  # noqa: E402
from katib.errors import SearchSpaceExhausted  # noqa: E402
from katib.rpc import api_pb2, api_pb2_grpc, converters  # noqa: E402
from suggestion import registry  # noqa: E402
from suggestion._optuna import _Param  # noqa: E402
from suggestion._common import SpaceCodec  # noqa: E402
from suggestion.base import Algorithm, TrialResult, TrialState  # noqa: E402
from suggestion.service import serve  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.ERROR)  # the baseline CmaEsSampler warns per trial
warnings.filterwarnings("ignore")

ALGORITHMS = ["random", "grid", "sobol", "tpe", "multivariate-tpe", "cmaes", "bayesianoptimization", "hyperband"]
TARGETS = {  # (algorithm, prior trials) -> seconds per gRPC call
    **{(a, 1000): 0.050 for a in ("random", "grid", "sobol", "tpe", "multivariate-tpe")},
    ("bayesianoptimization", 100): 2.0,
}
SKIP = {("bayesianoptimization", 1000): "skipped: GP fit is O(n^3); one call took 56 s in process (RF 1.5 s, ET 1.2 s)"}
N = 3
OBJECTIVE = ObjectiveSpec(type="minimize", objective_metric_name="loss")


def parameters(algorithm: str) -> list[ParameterSpec]:
    """Four parameters like upstream's examples; grid needs steps, hyperband a resource."""
    step = algorithm == "grid"
    params = [
        ParameterSpec("lr", "double", FeasibleSpace(min="0.001", max="0.1", step="0.001" if step else None,
                                                    distribution="logUniform")),
        ParameterSpec("momentum", "double", FeasibleSpace(min="0.5", max="0.99", step="0.01" if step else None)),
        ParameterSpec("num-layers", "int", FeasibleSpace(min="2", max="10")),
        ParameterSpec("optimizer", "categorical", FeasibleSpace(list=["sgd", "adam", "ftrl"])),
    ]
    if algorithm == "hyperband":
        params.append(ParameterSpec("epochs", "int", FeasibleSpace(min="1", max="729")))
    return params


def settings(algorithm: str) -> dict[str, str]:
    base = {"random_state": "0"}
    if algorithm == "hyperband":  # s_max = 6: the first bracket alone has 1093 trials
        base.update(r_l="729", eta="3", resource_name="epochs")
    return base


def experiment(algorithm: str, name: str) -> Experiment:
    return Experiment(metadata=ObjectMeta(name=name), spec=ExperimentSpec(
        parameters=parameters(algorithm), objective=OBJECTIVE,
        algorithm=AlgorithmSpec(algorithm, [AlgorithmSetting(k, v) for k, v in settings(algorithm).items()]),
        parallel_trial_count=729 if algorithm == "hyperband" else N, max_trial_count=100_000))


def loss(values: Mapping[str, Value]) -> float:
    lr, m = float(values["lr"]), float(values["momentum"])  # type: ignore[arg-type]
    layers = float(values["num-layers"])  # type: ignore[arg-type]
    return (math.log10(lr) + 2) ** 2 + (m - 0.9) ** 2 + (layers - 5) ** 2 / 25 + (values["optimizer"] == "sgd") * 0.2 \
        + 1 / float(values.get("epochs", 1))  # type: ignore[arg-type]


def make(algorithm: str, space: SearchSpace) -> Algorithm:
    cls = registry.get(algorithm)
    return cls(space, OBJECTIVE, settings(algorithm), max_trial_count=100_000,
               parallel_trial_count=729 if algorithm == "hyperband" else N)


def history(algorithm: str, space: SearchSpace, count: int) -> list[TrialResult]:
    """``count`` finished trials: random points for every algorithm (on the grid for grid);
    hyperband's own suggestions for hyperband, since its trials must fit its brackets."""
    source = make("hyperband" if algorithm == "hyperband" else "random", space)
    trials: list[TrialResult] = []
    while len(trials) < count:
        batch = source.ask(min(count - len(trials), 500))
        done = [TrialResult(f"prior-{len(trials) + i}", dict(a.values), TrialState.SUCCEEDED, loss(a.values),
                            order=float(len(trials) + i), labels=dict(a.labels)) for i, a in enumerate(batch)]
        source.tell(done)
        trials += done
    return trials


def to_pb(trial: TrialResult, space: SearchSpace, out: Any) -> None:
    converters.trial_result_to_pb(trial, space, OBJECTIVE, out)
    i = int(trial.order)
    out.status.start_time = f"2024-01-{1 + i // 86400:02d}T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z"


# --- the three measurements -----------------------------------------------------------------

def over_grpc(stub: Any, algorithm: str, space: SearchSpace, prior: list[TrialResult], repeat: int,
              tag: str) -> tuple[float, float, float]:
    """(cold, steady median, steady median CPU) seconds of GetSuggestions for one experiment.
    CPU is the process time of client and server (same process) during the call: what the
    call costs on an idle machine, whatever else is running."""
    exp = experiment(algorithm, f"bench-{algorithm}-{len(prior)}-{tag}")
    request = api_pb2.GetSuggestionsRequest(current_request_number=N, total_request_number=len(prior) + N)
    request.experiment.CopyFrom(converters.experiment_to_pb(exp))
    for t in prior:
        to_pb(t, space, request.trials.add())
    times, cpu = [], []
    for call in range(repeat + 1):
        start, start_cpu = time.perf_counter(), time.process_time()
        reply = stub.GetSuggestions(request, timeout=600)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        settings_back = {s.name: s.value for s in reply.algorithm.algorithm_settings}
        del request.experiment.spec.algorithm.algorithm_settings[:]
        request.experiment.spec.algorithm.algorithm_settings.extend(
            api_pb2.AlgorithmSetting(name=k, value=v) for k, v in settings_back.items())
        for item in reply.parameter_assignments:  # the suggested trials run and finish
            values = space.parse({a.name: a.value for a in item.assignments})
            i = len(request.trials)
            to_pb(TrialResult(f"new-{i}", values, TrialState.SUCCEEDED, loss(values), order=float(i),
                              labels=dict(item.labels)), space, request.trials.add())
        request.total_request_number = len(request.trials) + N
    return times[0], statistics.median(times[1:]), statistics.median(cpu[1:])


def in_process(algorithm: str, space: SearchSpace, prior: list[TrialResult], repeat: int) -> float:
    algo = make(algorithm, space)
    algo.tell(prior)
    algo.ask(N)  # warm: the first model fit happens here, as in the gRPC cold call
    times, i = [], len(prior)
    for _ in range(repeat):
        start = time.perf_counter()
        batch = algo.ask(N)
        times.append(time.perf_counter() - start)
        algo.tell([TrialResult(f"new-{i + k}", dict(a.values), TrialState.SUCCEEDED, loss(a.values),
                               order=float(i + k), labels=dict(a.labels)) for k, a in enumerate(batch)])
        i += len(batch)
    return statistics.median(times)


def _optuna_sampler(algorithm: str, space: SearchSpace) -> optuna.samplers.BaseSampler | None:
    s = optuna.samplers
    if algorithm == "random":
        return s.RandomSampler(seed=0)
    if algorithm == "grid":
        return s.GridSampler({p.name: p.grid() for p in space}, seed=0)
    if algorithm == "sobol":
        return s.QMCSampler(qmc_type="sobol", seed=0)
    if algorithm in ("tpe", "multivariate-tpe"):
        return s.TPESampler(seed=0, constant_liar=True, multivariate=algorithm == "multivariate-tpe")
    if algorithm == "cmaes":
        return s.CmaEsSampler(seed=0)
    return None


def library_alone(algorithm: str, space: SearchSpace, prior: list[TrialResult], repeat: int) -> tuple[float, str] | None:
    if algorithm == "bayesianoptimization":
        return skopt_alone(space, prior), "skopt.Optimizer"
    sampler = _optuna_sampler(algorithm, space)
    if sampler is None:
        return None
    params = {d.name: _Param(d) for d in SpaceCodec(space).dims}
    dists = {name: p.distribution for name, p in params.items()}
    study = optuna.create_study(sampler=sampler)
    for t in prior:
        study.add_trial(optuna.trial.create_trial(
            params={n: p.to_optuna(t.assignments[n]) for n, p in params.items()}, distributions=dists, value=t.value))
    study.ask(dists)  # warm-up, like the other columns
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        asked = [study.ask(dists) for _ in range(N)]
        times.append(time.perf_counter() - start)
        for trial in asked:
            study.tell(trial, loss({n: p.from_optuna(trial.params[n]) for n, p in params.items()}))
    return statistics.median(times), f"optuna {type(sampler).__name__}"


def skopt_alone(space: SearchSpace, prior: list[TrialResult]) -> float:
    """Stock skopt as upstream used it (but with the steps/distributions of our mapping)."""
    from skopt import Optimizer  # type: ignore[import-untyped]
    from suggestion.bayesianoptimization import _SkDim

    dims = [_SkDim(d) for d in SpaceCodec(space).dims]
    opt = Optimizer([d.skopt for d in dims], base_estimator="GP", random_state=0)
    xs = [[d.to_skopt(t.assignments[d.dim.name]) for d in dims] for t in prior]
    start = time.perf_counter()
    opt.tell(xs, [t.value for t in prior])
    opt.ask(N)
    return time.perf_counter() - start


# --- table ----------------------------------------------------------------------------------

def fmt(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 0.001:
        return f"{seconds * 1000:.2f} ms"
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--repeat", type=int, default=5, help="steady-state calls per cell (median)")
    parser.add_argument("--only", default="", help="comma-separated algorithms (default: all)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    sizes = [int(s) for s in args.sizes.split(",")]
    algorithms = [a for a in ALGORITHMS if not args.only or a in args.only.split(",")]
    server = serve(0, "127.0.0.1", remotes={})
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}", options=[
        ("grpc.max_send_message_length", 2**31 - 1), ("grpc.max_receive_message_length", 2**31 - 1)])
    stub = api_pb2_grpc.SuggestionStub(channel)
    header = ("| algorithm | prior trials | gRPC call (steady) | its CPU | gRPC call (cold) | in-process ask | "
              "library alone | library | gRPC / library | target |")
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start; optuna {optuna.__version__}; "
          f"n = {N} per call; median of {args.repeat} steady-state calls\n")
    print(header)
    print("|---|---:|---:|---:|---:|---:|---:|---|---:|---|")
    failed = []
    tag = str(random.randrange(10**6))
    for algorithm in algorithms:
        for size in sizes:
            if (algorithm, size) in SKIP:
                print(f"| {algorithm} | {size} | {SKIP[(algorithm, size)]} | | | | | | | |")
                continue
            space = SearchSpace.from_specs(parameters(algorithm))
            prior = history(algorithm, space, size)
            repeat = min(args.repeat, 3) if algorithm == "bayesianoptimization" else args.repeat
            try:
                cold, steady, steady_cpu = over_grpc(stub, algorithm, space, prior, repeat, tag)
                local = in_process(algorithm, space, prior, repeat)
            except SearchSpaceExhausted:
                print(f"| {algorithm} | {size} | search space exhausted | | | | | | | |")
                continue
            lib = library_alone(algorithm, space, prior, repeat)
            lib_time, lib_name = lib if lib else (None, "none")
            ratio = f"{steady / lib_time:.2f}" if lib_time else "-"
            target = TARGETS.get((algorithm, size))
            verdict = "" if target is None else ("ok" if steady < target else "MISSED") + f" (< {fmt(target)})"
            if target is not None and steady >= target:
                failed.append(f"{algorithm}@{size}")
            print(f"| {algorithm} | {size} | {fmt(steady)} | {fmt(steady_cpu)} | {fmt(cold)} | {fmt(local)} | {fmt(lib_time)} | "
                  f"{lib_name} | {ratio} | {verdict} |", flush=True)
    channel.close()
    server.stop(None)
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")
    if failed:
        print(f"\ntargets missed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
