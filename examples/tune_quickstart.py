"""katib.tune() on scikit-learn's digits: runs on a laptop in seconds, no cluster needed.

    python examples/tune_quickstart.py

Two searches:

1. An SVM whose objective returns the cross-validated accuracy (a float).
2. A linear model trained epoch by epoch that reports its accuracy with
   ``katib.report_metrics`` as it goes, so the median stopping rule can end hopeless
   trials early.

Both are stored like any experiment: ``katib get experiments``, ``katib describe experiment
NAME`` and ``katib get trials NAME`` show them afterwards.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import cross_val_score, train_test_split
from sklearn.svm import SVC

import katib
from katib import search

X, y = load_digits(return_X_y=True)
X = X / 16.0


def svm_accuracy(params: dict[str, Any]) -> float:
    """``params`` arrives typed: {"C": 3.2, "gamma": 0.01, "kernel": "rbf"}."""
    model = SVC(C=params["C"], gamma=params["gamma"], kernel=params["kernel"])
    return float(cross_val_score(model, X, y, cv=3).mean())


def sgd_epochs(params: dict[str, Any]) -> None:
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    model = SGDClassifier(alpha=params["alpha"], penalty=params["penalty"], learning_rate="constant",
                          eta0=params["eta0"], random_state=0)
    classes = np.unique(y)
    for epoch in range(1, params["epochs"] + 1):
        model.partial_fit(X_train, y_train, classes=classes)
        katib.report_metrics({"accuracy": model.score(X_test, y_test)}, step=epoch)


if __name__ == "__main__":
    result = katib.tune(
        svm_accuracy,
        {"C": search.double(0.1, 100, distribution="logUniform"),
         "gamma": search.double(1e-3, 1.0, distribution="logUniform"),
         "kernel": search.categorical(["rbf", "poly"])},
        objective_metric_name="accuracy",  # maximize is the default, as upstream
        max_trial_count=12,
        parallel_trial_count=2,
    )
    print(result.best_parameters, result.best_metrics)

    stopped = katib.tune(
        sgd_epochs,
        {"alpha": search.double(1e-6, 1e-1, distribution="logUniform"),
         "eta0": search.double(1e-4, 1.0, distribution="logUniform"),
         "penalty": search.categorical(["l2", "l1", "elasticnet"]),
         "epochs": 10},  # not a search helper: passed to every trial as is
        objective_metric_name="accuracy",
        algorithm_name="tpe",
        early_stopping={"algorithm_name": "medianstop",
                        "algorithm_settings": {"min_trials_required": 3, "start_step": 3}},
        max_trial_count=12,
        parallel_trial_count=2,
    )
    print(stopped.counts())
    if stopped.dataframe is not None:  # with pandas installed
        frame = stopped.dataframe.sort_values("accuracy", ascending=False)
        print(frame[["state", "alpha", "eta0", "penalty", "accuracy"]].head().to_string(index=False))
