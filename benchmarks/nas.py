"""ENAS against random architecture sampling: same nasConfig, trial budget and child trainer.

    python benchmarks/nas.py                         # 3 seeds x 30 trials, 4 layers (~10 min on 2 CPUs)
    python benchmarks/nas.py --seeds 1 --trials 12   # quick
    python benchmarks/nas.py --settings controller_learning_rate=5e-5,controller_temperature=5   # upstream's defaults

Both searches draw from the same space (examples/nas/enas-cpu.yaml's operations, 32 op ids,
``--layers`` layers, skip connections) in the same encoding (``architecture`` and
``nn_config`` as the suggestion service sends them), in batches of ``--parallel``:

- **enas**: ``suggestion.enas.ENAS`` with the experiment seed, told each batch's validation
  accuracies before it is asked for the next batch, exactly as ``katib run`` drives it.
- **random**: op ids and skip flags uniform and independent, the same encoding.

Every architecture is trained by ``katib.trainers.enas.train`` (the trial image's child
trainer) on scikit-learn's digits for ``--epochs`` epochs with one fixed training seed, so
an architecture always gets the same accuracy: the accuracies are cached per architecture
and shared by both methods (the output says how many distinct networks were trained).

Printed per method: the best accuracy and the median over all trials (each the median over
seeds), and the median of the last half of the trials, where a search that learns should
be ahead. The ratio is enas / random.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from katib.api.loader import load_experiment  # noqa: E402
from katib.api.model import ObjectiveSpec  # noqa: E402
from katib.api.space import SearchSpace  # noqa: E402
from suggestion._enas_space import NasSpace, architecture_text  # noqa: E402
from suggestion.base import TrialResult, TrialState  # noqa: E402

EXAMPLE = ROOT / "examples/nas/enas-cpu.yaml"
# Settings the benchmark runs ENAS with (see benchmarks/README.md for why not upstream's).
BENCH_SETTINGS = {"controller_learning_rate": "0.01", "controller_temperature": "None",
                  "controller_train_steps": "20", "controller_baseline_decay": "0.9"}

Evaluate = Callable[[str, str], float]


def space(layers: int) -> SearchSpace:
    exp = load_experiment(EXAMPLE)
    assert exp.spec.nas_config is not None and exp.spec.nas_config.graph_config is not None
    exp.spec.nas_config.graph_config.num_layers = layers
    return SearchSpace.from_experiment(exp.spec)


def trainer(epochs: int, cache_file: Path | None = None) -> tuple[Evaluate, dict[str, float]]:
    """``evaluate(architecture, nn_config) -> validation accuracy``, cached per architecture
    (and in ``cache_file`` across runs with the same layers and epochs, when given)."""
    try:
        from katib.trainers import data as datasets
        from katib.trainers.enas import train
    except ImportError as exc:
        raise SystemExit(f"benchmarks/nas.py needs the ENAS child trainer (katib.trainers.enas) and PyTorch: "
                         f"pip install -e '.[nas]' ({exc})") from exc

    loaded = datasets.load("digits", input_sizes=[8, 8, 1], seed=0)
    cache: dict[str, float] = {}
    if cache_file is not None and cache_file.exists():
        cache.update(json.loads(cache_file.read_text()))

    def evaluate(architecture: str, nn_config: str) -> float:
        if architecture not in cache:
            cache[architecture] = train(architecture, nn_config, num_epochs=epochs, seed=0, data=loaded)
            if cache_file is not None:
                cache_file.write_text(json.dumps(cache))
        return cache[architecture]

    return evaluate, cache


def run_enas(search: SearchSpace, seed: int, trials: int, parallel: int, settings: dict[str, str],
             evaluate: Evaluate) -> list[float]:
    from suggestion.enas import ENAS

    objective = ObjectiveSpec(type="maximize", objective_metric_name="Validation-Accuracy")
    ENAS.validate_settings(settings, search, objective, parallel_trial_count=parallel)
    algo = ENAS(search, objective, settings, parallel_trial_count=parallel, seed=seed)
    scores: list[float] = []
    while len(scores) < trials:
        batch = algo.ask(min(parallel, trials - len(scores)))
        told = []
        for a in batch:
            value = evaluate(str(a.values["architecture"]), str(a.values["nn_config"]))
            told.append(TrialResult(f"t{len(scores)}", dict(a.values), TrialState.SUCCEEDED, value,
                                    order=len(scores)))
            scores.append(value)
        algo.tell(told)
    return scores


def run_random(search: SearchSpace, seed: int, trials: int, evaluate: Evaluate) -> list[float]:
    nas = NasSpace(search.nas)
    rng = random.Random(seed)
    scores = []
    for _ in range(trials):
        arc = [[rng.randrange(nas.num_operations)] + [rng.randrange(2) for _ in range(i)]
               for i in range(nas.num_layers)]
        scores.append(evaluate(architecture_text(arc), nas.nn_config_text(arc)))
    return scores


def summary(runs: list[list[float]]) -> dict[str, float]:
    return {
        "best": statistics.median(max(r) for r in runs),
        "median": statistics.median(statistics.median(r) for r in runs),
        "last_half": statistics.median(statistics.median(r[len(r) // 2:]) for r in runs),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--trials", type=int, default=30)
    p.add_argument("--parallel", type=int, default=3)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--settings", default=",".join(f"{k}={v}" for k, v in BENCH_SETTINGS.items()),
                   help="ENAS settings, name=value,... (default: %(default)s; '' for upstream's defaults)")
    p.add_argument("--json", action="store_true", help="also print the raw scores as JSON")
    p.add_argument("--cache", type=Path, help="JSON file keeping accuracies across runs (same --layers/--epochs)")
    args = p.parse_args(argv)
    settings = dict(item.split("=", 1) for item in args.settings.split(",") if item)
    search = space(args.layers)
    evaluate, cache = trainer(args.epochs, args.cache)
    cached = len(cache)
    started = time.monotonic()
    runs: dict[str, list[list[float]]] = {"enas": [], "random": []}
    for seed in range(args.seeds):
        runs["enas"].append(run_enas(search, seed, args.trials, args.parallel, settings, evaluate))
        runs["random"].append(run_random(search, seed, args.trials, evaluate))
        print(f"seed {seed}: enas last half {statistics.median(runs['enas'][-1][args.trials // 2:]):.4f}, "
              f"random {statistics.median(runs['random'][-1][args.trials // 2:]):.4f}", flush=True)
    stats = {name: summary(r) for name, r in runs.items()}
    nas = NasSpace(search.nas)
    print(f"\nENAS vs random sampling: {args.layers} layers, {nas.num_operations} op ids, {args.trials} trials "
          f"(batches of {args.parallel}), {args.seeds} seeds, child trainer katib.trainers.enas on digits, "
          f"{args.epochs} epoch(s)")
    print(f"ENAS settings: {settings or 'upstream defaults'}")
    print(f"accuracies cached per architecture (fixed training seed, shared by both methods): "
          f"{len(cache)} distinct networks ({len(cache) - cached} trained in this run); {time.monotonic() - started:.0f} s; "
          f"{platform.machine()}, {platform.python_version()}")
    print("\n| method | best | median | median of last half |")
    print("|---|---|---|---|")
    for name in ("enas", "random"):
        s = stats[name]
        print(f"| {name} | {s['best']:.4f} | {s['median']:.4f} | {s['last_half']:.4f} |")
    ratio = {k: stats["enas"][k] / stats["random"][k] for k in ("best", "median", "last_half")}
    print(f"| ratio enas/random | {ratio['best']:.3f} | {ratio['median']:.3f} | {ratio['last_half']:.3f} |")
    if args.json:
        print(json.dumps(runs))
    return 0 if stats["enas"]["last_half"] > stats["random"]["last_half"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
