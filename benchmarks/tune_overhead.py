"""Per-trial overhead of katib.tune() next to Optuna's study.optimize and Ray Tune.

    python benchmarks/tune_overhead.py                    # 500 trials, parallel 1 and 2
    python benchmarks/tune_overhead.py --trials 100 --parallel 2 --only katib,optuna
    python benchmarks/tune_overhead.py --only katib,optuna --repeat 5   # median of 5 runs each

The objective is trivial (``x ** 2``, x uniform in [-1, 1], random search), so the time is
the framework's own: per-trial overhead = wall time / trials. Each framework runs in a
fresh subprocess (Ray Tune takes over the process; none sees another's imports) and its
wall time is split into **startup** (everything before the first trial could start:
katib's store and workers, Optuna's study, ``ray.init``) and the **trials** themselves.

- katib.tune: ``parallel_trial_count`` warm worker processes, SQLite store in a scratch
  ``KATIB_HOME``, no progress bar. Every trial is a stored Trial with its metrics, exactly
  as ``katib run`` keeps it.
- Optuna: in-memory study, ``RandomSampler``, ``study.optimize(n_jobs=parallel)``
  (threads, one process: nothing is stored and no process boundary is crossed).
- Ray Tune: ``tune.Tuner`` with ``max_concurrent_trials=parallel`` on a local Ray with
  ``parallel`` CPUs (``pip install "ray[tune]"``; not a project dependency). When it cannot
  be imported the row says so.

Ratios are katib's per-trial time over the other's (below 1: katib is faster). On a busy
(or throttled virtual) machine single runs vary by tens of percent; ``--repeat N`` runs
every framework at every level N times, in rounds (so that load and throttling hit all
alike), and shows the run with the median trials time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FRAMEWORKS = ("katib", "optuna", "ray")


def objective(p: dict[str, Any]) -> float:
    return float(p["x"] ** 2)


# -- one framework, in its own process ------------------------------------------------------
def run_katib(trials: int, parallel: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="katib-bench-") as home:
        os.environ["KATIB_HOME"] = home
        os.environ["KATIB_DB_URL"] = f"sqlite:///{home}/katib.db"
        t0 = time.perf_counter()
        import katib
        from katib import search
        from katib.sdk import local as sdk_local

        first: dict[str, float] = {}
        original = sdk_local.WorkerPool.submit

        def submit(self: Any, *args: Any, **kwargs: Any) -> Any:
            first.setdefault("t", time.perf_counter())  # the first trial starts here
            return original(self, *args, **kwargs)

        sdk_local.WorkerPool.submit = submit  # type: ignore[method-assign]
        result = katib.tune(objective, {"x": search.double(-1, 1)}, objective_type="minimize",
                            max_trial_count=trials, parallel_trial_count=parallel, progress=False)
        t1 = time.perf_counter()
        done = result.counts().get("Succeeded", 0)
    return {"startup": first["t"] - t0, "trials_s": t1 - first["t"], "wall": t1 - t0, "done": done}


def run_optuna(trials: int, parallel: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.RandomSampler(seed=1))
    t1 = time.perf_counter()
    study.optimize(lambda t: objective({"x": t.suggest_float("x", -1, 1)}), n_trials=trials, n_jobs=parallel)
    t2 = time.perf_counter()
    return {"startup": t1 - t0, "trials_s": t2 - t1, "wall": t2 - t0, "done": len(study.trials)}


def run_ray(trials: int, parallel: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    import ray
    from ray import tune

    ray.init(num_cpus=parallel, include_dashboard=False, log_to_driver=False, logging_level="ERROR")

    def trainable(config: dict[str, Any]) -> None:
        tune.report({"loss": objective(config)})

    with tempfile.TemporaryDirectory(prefix="ray-bench-") as storage:
        tuner = tune.Tuner(
            trainable, param_space={"x": tune.uniform(-1, 1)},
            tune_config=tune.TuneConfig(num_samples=trials, max_concurrent_trials=parallel, metric="loss", mode="min",
                                        reuse_actors=True),  # its fastest setting for many short trials
            run_config=tune.RunConfig(storage_path=storage, verbose=0))
        t1 = time.perf_counter()
        results = tuner.fit()
        t2 = time.perf_counter()
        done = sum(1 for r in results if r.error is None)
    ray.shutdown()
    return {"startup": t1 - t0, "trials_s": t2 - t1, "wall": t2 - t0, "done": done}


def one(framework: str, trials: int, parallel: int) -> None:
    runner = {"katib": run_katib, "optuna": run_optuna, "ray": run_ray}[framework]
    print("RESULT " + json.dumps(runner(trials, parallel)), flush=True)


# -- the table ------------------------------------------------------------------------------
def measure(framework: str, trials: int, parallel: int, timeout: float) -> dict[str, Any]:
    env = dict(os.environ, PYTHONWARNINGS="ignore", RAY_DEDUP_LOGS="0", TUNE_DISABLE_AUTO_CALLBACK_LOGGERS="1")
    try:
        done = subprocess.run([sys.executable, __file__, "--one", framework, "--trials", str(trials),
                               "--parallel", str(parallel)], capture_output=True, text=True, timeout=timeout,
                              env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish within {timeout:.0f} s"}
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])  # type: ignore[no-any-return]
    tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
    if "No module named" in done.stderr:
        tail = f"not installed ({tail.split('No module named', 1)[1].strip()})"
    return {"error": tail[:100]}


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median trials time (an error if any run failed)."""
    failed = [r for r in runs if "error" in r]
    if failed:
        return failed[0]
    return sorted(runs, key=lambda r: float(r["trials_s"]))[(len(runs) - 1) // 2]


def table(rows: list[list[str]]) -> str:
    header = ["framework", "parallel", "trials", "startup s", "trials s", "ms/trial (trials)",
              "ms/trial (incl. startup)", "katib ÷ this (trials)", "katib ÷ this (incl. startup)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=500)
    ap.add_argument("--parallel", default="1,2", help="comma-separated parallelism levels (default 1,2)")
    ap.add_argument("--only", default=",".join(FRAMEWORKS), help="frameworks to run (default katib,optuna,ray)")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per framework and level")
    ap.add_argument("--repeat", type=int, default=1, help="rounds of runs; the median run of each is shown")
    ap.add_argument("--one", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    levels = [int(p) for p in args.parallel.split(",") if p]
    if args.one:
        one(args.one, args.trials, levels[0])
        return 0
    wanted = [f for f in FRAMEWORKS if f in args.only.split(",")]
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {(f, p): [] for p in levels for f in wanted}
    for i in range(max(1, args.repeat)):  # rounds over every level and framework: load hits all alike
        for parallel in levels:
            for f in wanted:
                runs[f, parallel].append(measure(f, args.trials, parallel, args.timeout))
        print(f"round {i + 1} done", file=sys.stderr, flush=True)
    rows = []
    for parallel in levels:
        got = {f: median_run(runs[f, parallel]) for f in wanted}
        base = got.get("katib", {})
        for f in wanted:
            r = got[f]
            if "error" in r:
                rows.append([f, str(parallel), "-", "-", "-", "-", "-", "-", r["error"]])
                continue
            per = r["trials_s"] / args.trials * 1000
            per_all = r["wall"] / args.trials * 1000
            ratio = ratio_all = "1.00" if f == "katib" else "-"
            if f != "katib" and "error" not in base and base:
                ratio = f"{base['trials_s'] / r['trials_s']:.2f}"
                ratio_all = f"{base['wall'] / r['wall']:.2f}"
            rows.append([f, str(parallel), str(r["done"]), f"{r['startup']:.2f}", f"{r['trials_s']:.2f}",
                         f"{per:.2f}", f"{per_all:.2f}", ratio, ratio_all])
    repeat = f", median of {args.repeat} runs" if args.repeat > 1 else ""
    print(f"{args.trials} trials of x**2 (random search), {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}{repeat}")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
