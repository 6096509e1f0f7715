"""A miniature DARTS trial on digits: search a cell and print the best genotype.

Takes upstream's DARTS trial arguments (``--algorithm-settings``, ``--search-space``,
``--num-layers``; values may be JSON or Python literals wrapped in quotes). Every candidate
operation of the search space is scored by a short training run of a network whose shape
the operation decides (a CPU stand-in for DARTS' continuous relaxation); each node of the
cell takes the best operations. After every epoch it prints::

    Best-Genotype=Genotype(normal=[[('max_pooling_3x3', 0)]], normal_concat=range(2, 3), reduce=[[('max_pooling_3x3', 0)]], reduce_concat=range(2, 3))

which upstream's example filter ``([\\w-]+)=(Genotype.*)`` reads as a string metric.

    python3 examples/trials/nas_darts.py --search-space="['max_pooling_3x3', 'skip_connection']" --num-layers=1
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import warnings
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import digits  # noqa: E402
from nas_enas import parse_value  # noqa: E402


def _shape(op: str, layers: int) -> tuple[int, ...]:
    """Hidden layers for an operation name such as ``separable_convolution_3x3``."""
    size = int(m.group(1)) if (m := re.search(r"(\d+)x\d+", op)) else 3
    if "skip" in op:
        return (16,) * layers
    if "pool" in op:
        return (64 // size * 4,) * layers
    width = 16 * size if "dilated" not in op else 24 * size
    return (width,) * layers


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--algorithm-settings", default="{}")
    p.add_argument("--search-space", required=True)
    p.add_argument("--num-layers", default="1")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        settings: dict[str, Any] = parse_value(args.algorithm_settings) or {}
        space = [str(op) for op in parse_value(args.search_space)]
        layers = int(parse_value(args.num_layers))
    except (ValueError, SyntaxError, TypeError) as exc:
        raise SystemExit(f"cannot read the DARTS arguments: {exc}") from exc
    if not space:
        raise SystemExit("--search-space lists no operations")
    epochs = int(settings.get("num_epochs", 1))
    nodes = int(settings.get("num_nodes", 1))
    x_train, x_val, y_train, y_val = digits(seed=args.seed)
    models = {op: MLPClassifier(hidden_layer_sizes=_shape(op, max(1, layers)), solver="adam",
                                learning_rate_init=0.005, random_state=args.seed) for op in space}
    for epoch in range(1, epochs + 1):
        scores = {}
        for op, model in models.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.partial_fit(x_train, y_train, classes=np.arange(10))
            scores[op] = model.score(x_val, y_val)
        ranked = sorted(space, key=lambda o: -scores[o])
        # Each node keeps its two strongest inputs, as DARTS' genotype does.
        cell = [[(ranked[(n + k) % len(ranked)], k) for k in range(min(2, n + 1))] for n in range(nodes)]
        concat = f"range(2, {2 + nodes})"
        print(f"epoch={epoch} Validation-Accuracy={scores[ranked[0]]:.6f}", flush=True)
        print(f"Best-Genotype=Genotype(normal={cell}, normal_concat={concat}, reduce={cell}, reduce_concat={concat})",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
