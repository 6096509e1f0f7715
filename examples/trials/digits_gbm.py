"""Gradient-boosted trees on a binary digits task, logging like the LightGBM CLI.

Stands in for upstream's XGBoostJob/LightGBM trial: same flag names, and after every
``--metric_freq`` trees it prints lines such as::

    Iteration:7, training auc : 0.991234
    Iteration:7, valid_1 auc : 0.978812
    Iteration:7, valid_1 binary_logloss : 0.213300

which upstream's example filter ``(\\w+\\s\\w+)\\s:\\s((-?\\d+)(\\.\\d+)?)`` reads as metrics
``training auc``, ``valid_1 auc``, ``valid_1 binary_logloss``, ...

    python3 examples/trials/digits_gbm.py --learning_rate=0.1 --num_leaves=31 --num_trees=20
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import log_loss, roc_auc_score

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import digits  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--learning_rate", type=float, default=0.1)
    p.add_argument("--num_leaves", type=int, default=31)
    p.add_argument("--num_trees", type=int, default=20)
    p.add_argument("--metric_freq", type=int, default=1)
    p.add_argument("--min_data_in_leaf", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    # LightGBM CLI flags upstream's example passes; accepted so the same command works.
    p.add_argument("--job_type", default="Train")
    p.add_argument("--objective", default="binary")
    p.add_argument("--metric", default="binary_logloss,auc")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.objective != "binary":
        raise SystemExit("only --objective=binary is supported")
    x_train, x_val, y_train, y_val = digits(binary=True, seed=args.seed)
    model = HistGradientBoostingClassifier(
        learning_rate=args.learning_rate, max_iter=args.num_trees, max_leaf_nodes=max(2, args.num_leaves),
        min_samples_leaf=args.min_data_in_leaf, early_stopping=False, random_state=args.seed)
    model.fit(x_train, y_train)
    metrics = [m.strip() for m in args.metric.split(",") if m.strip()]
    stages = zip(model.staged_predict_proba(x_train), model.staged_predict_proba(x_val))
    for i, (p_train, p_val) in enumerate(stages, start=1):
        if i % max(1, args.metric_freq) and i != args.num_trees:
            continue
        for data, y, p in (("training", y_train, p_train), ("valid_1", y_val, p_val)):
            for metric in metrics:
                if metric == "auc":
                    value = roc_auc_score(y, p[:, 1])
                elif metric == "binary_logloss":
                    value = log_loss(y, np.clip(p, 1e-12, 1.0), labels=[0, 1])
                else:
                    continue
                print(f"Iteration:{i}, {data} {metric} : {value:.6f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
