"""Train on digits and write TensorBoard summaries, like upstream's mnist-with-summaries.

Validation scalars (``accuracy``, ``loss``) go to ``<log-path>/test``, training scalars to
``<log-path>/train``; the TensorFlowEvent collector reads the ``test`` directory. Epochs
are also printed as ``name=value`` text.

    python3 examples/trials/digits_tfevent.py --learning-rate=0.01 --batch-size=32 --log-path=/tmp/logs
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import log_loss
from sklearn.neural_network import MLPClassifier

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import digits  # noqa: E402
from _tfevents import EventFileWriter  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--learning-rate", "--lr", type=float, default=0.01)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--log-path", required=True, help="directory for the train/ and test/ event files")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    x_train, x_val, y_train, y_val = digits(seed=args.seed)
    classes = np.arange(10)
    model = MLPClassifier(hidden_layer_sizes=(64,), solver="adam", learning_rate_init=args.learning_rate,
                          batch_size=args.batch_size, random_state=args.seed)
    train = EventFileWriter(os.path.join(args.log_path, "train"))
    test = EventFileWriter(os.path.join(args.log_path, "test"))
    try:
        for epoch in range(1, args.epochs + 1):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.partial_fit(x_train, y_train, classes=classes)
            results = {}
            for name, (x, y, writer) in {"train": (x_train, y_train, train), "test": (x_val, y_val, test)}.items():
                proba = np.clip(np.nan_to_num(model.predict_proba(x), nan=0.1), 1e-9, 1.0)
                values = {"accuracy": float(model.score(x, y)), "loss": float(log_loss(y, proba, labels=classes))}
                writer.scalars(epoch, values)
                results[name] = values
            print(f"epoch={epoch} accuracy={results['test']['accuracy']:.6f} loss={results['test']['loss']:.6f} "
                  f"train-accuracy={results['train']['accuracy']:.6f}", flush=True)
    finally:
        train.close()
        test.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
