"""katib.visualization's figures next to optuna.visualization's on the same trials.

    python benchmarks/visualization.py                 # 20,000 trials
    python benchmarks/visualization.py --trials 2000
    python benchmarks/visualization.py --store         # also reading them back from SQLite

One experiment of N trials (lr log-uniform, layers int, optimizer categorical; a loss that
depends mostly on lr; every tenth trial failed; 20 reported steps each) is built twice: as
katib Trials converted to ``ExperimentData``, and as an in-memory Optuna study with the same
parameters, values and intermediate values. Then every figure is built:

- **katib dict**: ``katib.visualization.figures`` (what the dashboard sends as JSON);
- **katib Figure**: the public ``plot_*`` function, which wraps that dict in a
  ``plotly.graph_objects.Figure`` (plotly's validation of 20,000 points costs extra);
- **optuna**: ``optuna.visualization.plot_*`` on the study.

Importance: ours is fANOVA on at most 1,000 sampled trials with 16 trees of depth 7; Optuna's
``plot_param_importances`` defaults to PED-ANOVA over every trial. Optuna's fANOVA with its
defaults (64 trees, depth 64) is also timed, on the same 1,000 trials only (on all trials it
runs for minutes). Every figure is built twice and the faster time is shown, so imports
(scipy, sklearn) are not counted; the first conversion and first figures are shown apart.
Ratios are optuna's time over katib's (above 1: katib is faster).
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def best_of(fn: Callable[[], Any], repeat: int = 2) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return min(times)


def read_store(exp: Any, trials: list[Any]) -> None:
    """Store.list_trials + from_experiment (decoding whole Trials) against load_experiment
    (the stored documents, only the fields the plots read, the cycle collector held off)."""
    import os
    import tempfile

    from katib.store import Store
    from katib.visualization.data import ExperimentData, load_experiment
    from tests.visualization import stored

    with tempfile.TemporaryDirectory(prefix="katib-viz-bench-") as home:
        url = f"sqlite:///{home}/katib.db"
        os.environ["KATIB_HOME"] = home
        with Store(url) as store:
            stored.store_experiment(store, exp, trials)
            decoded = best_of(lambda: ExperimentData.from_experiment(exp, store.list_trials(exp.name)))
        loaded = best_of(lambda: load_experiment(exp.name, db_url=url))
    print(f"reading {len(trials):,} trials from SQLite: Store.list_trials + from_experiment {decoded:.2f} s, "
          f"load_experiment {loaded:.2f} s ({decoded / loaded:.1f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20000)
    parser.add_argument("--store", action="store_true",
                        help="also time reading the trials back from a scratch SQLite store")
    args = parser.parse_args()

    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    from optuna.trial import TrialState, create_trial

    import katib.visualization as viz
    from katib.visualization import figures
    from katib.visualization.data import ExperimentData
    from tests.visualization import stored

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    exp = stored.experiment("bench")
    trials = stored.random_trials(exp, args.trials, failed_every=10)
    began = time.perf_counter()
    data = ExperimentData.from_experiment(exp, trials)
    convert = time.perf_counter() - began
    curves = {t.name: [(float(s), (t.value or 1.0) + 1.0 / s) for s in range(1, 21)] for t in data.trials}
    if args.store:
        read_store(exp, trials)

    dists = {"lr": FloatDistribution(1e-4, 0.1, log=True), "layers": IntDistribution(1, 5),
             "optimizer": CategoricalDistribution(["sgd", "adam", "rmsprop"])}
    frozen = []
    for t in data.trials:
        params = {k: t.params[k] for k in dists}
        if t.value is None:
            frozen.append(create_trial(state=TrialState.FAIL, params=params, distributions=dists))
        else:
            frozen.append(create_trial(params=params, distributions=dists, value=t.value,
                                       intermediate_values={s: (t.value or 1.0) + 1.0 / s for s in range(1, 21)}))
    study = optuna.create_study()
    study.add_trials(frozen)
    sample = random.Random(0).sample(data.finished(), min(1000, len(data.finished())))
    small = optuna.create_study()
    small.add_trials([create_trial(params={k: t.params[k] for k in dists}, distributions=dists, value=t.value)
                      for t in sample])

    ov = optuna.visualization
    cold = {}
    for name, build in (("history", lambda: figures.history(data)), ("contour", lambda: figures.contour(data, "lr", "layers")),
                        ("importance", lambda: figures.importance(data))):
        began = time.perf_counter()
        build()
        cold[name] = time.perf_counter() - began
    rows = [
        ("history", lambda: figures.history(data), lambda: viz.plot_optimization_history(data),
         lambda: ov.plot_optimization_history(study)),
        ("parallel coordinates", lambda: figures.parallel_coordinates(data), lambda: viz.plot_parallel_coordinate(data),
         lambda: ov.plot_parallel_coordinate(study)),
        ("slice", lambda: figures.slice_plot(data), lambda: viz.plot_slice(data), lambda: ov.plot_slice(study)),
        ("contour lr x layers", lambda: figures.contour(data, "lr", "layers"),
         lambda: viz.plot_contour(data, ["lr", "layers"]), lambda: ov.plot_contour(study, params=["lr", "layers"])),
        ("importance", lambda: figures.importance(data), lambda: viz.plot_param_importances(data),
         lambda: ov.plot_param_importances(study)),
        ("intermediate values", lambda: figures.intermediate(data, curves),
         lambda: viz.plot_intermediate_values(data, curves=curves), lambda: ov.plot_intermediate_values(study)),
        ("edf", lambda: figures.edf(data), lambda: viz.plot_edf(data), lambda: ov.plot_edf(study)),
    ]
    print(f"{args.trials:,} trials ({len(data.finished()):,} finished); conversion to ExperimentData "
          f"{convert:.2f} s; first builds (imports included): "
          + ", ".join(f"{k} {v:.2f} s" for k, v in cold.items()))
    print()
    print("| figure | katib dict s | katib Figure s | optuna s | optuna / katib Figure |")
    print("|---|---|---|---|---|")
    total = 0.0
    for name, ours, public, theirs in rows:
        if name == "importance":
            from katib.visualization import importance as imp

            def uncached(build: Callable[[], Any]) -> Callable[[], Any]:
                def run() -> Any:
                    imp._cache.clear()  # measure the evaluation, not the cache
                    return build()
                return run

            d, p = best_of(uncached(ours)), best_of(uncached(public))
        else:
            d, p = best_of(ours), best_of(public)
        o = best_of(theirs, 1)
        total += d
        print(f"| {name} | {d:.3f} | {p:.3f} | {o:.3f} | {o / p:.1f}x |")
    fanova = best_of(lambda: optuna.importance.get_param_importances(
        small, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)), 1)
    print(f"| importance, optuna fANOVA defaults on the same {len(sample):,} trials | | | {fanova:.3f} | |")
    print()
    print(f"All katib figure dicts: {total:.2f} s (+ {convert:.2f} s conversion)")
    assert math.isfinite(total)


if __name__ == "__main__":
    main()
