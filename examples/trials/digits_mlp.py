"""Train a small neural network on scikit-learn's digits and report metrics every epoch.

The trial most examples run. It takes the hyperparameters upstream's MNIST trials take
(learning rate, layers, optimizer, momentum, batch size, epochs) plus a few more, trains for
real with ``MLPClassifier.partial_fit`` one epoch at a time (so early stopping sees a
curve), and prints after each epoch::

    epoch=3 loss=0.3121 accuracy=0.9130 Train-accuracy=0.9420 Validation-accuracy=0.9130

(``--format json`` / ``custom`` and ``--log-path`` for the File collector examples). A whole
run takes a second or two.

    python3 examples/trials/digits_mlp.py --lr=0.01 --num-layers=2 --optimizer=adam --epochs=5
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import tempfile
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import log_loss
from sklearn.neural_network import MLPClassifier

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import FORMATS, MetricsWriter, digits  # noqa: E402

OPTIMIZERS = ("sgd", "adam", "nesterov", "momentum", "ftrl")


def whole(text: str) -> int:
    """An int flag that also takes "3.0" (some algorithms send ints as floats)."""
    return int(float(text))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lr", type=float, default=0.01, help="learning rate")
    p.add_argument("--num-layers", type=whole, default=1, help="hidden layers")
    p.add_argument("--hidden", "--hidden-units", type=whole, default=32, help="units per hidden layer")
    p.add_argument("--optimizer", default="sgd", choices=OPTIMIZERS,
                   help="sgd, adam, nesterov/momentum (sgd with momentum); ftrl is served by adam")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--alpha", type=float, default=1e-4, help="L2 penalty")
    p.add_argument("--batch-size", type=whole, default=64)
    p.add_argument("--epochs", "--num-epochs", type=whole, default=5)
    p.add_argument("--num-examples", default=None, help="use only the first N examples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--format", default="text", choices=FORMATS)
    p.add_argument("--log-path", default=None, help="write metrics to this file instead of stdout")
    p.add_argument("--checkpoint", default=None,
                   help="directory to resume from and save to (population based training)")
    p.add_argument("--epoch-delay", type=float, default=0.0, help="sleep this long after each epoch")
    p.add_argument("--show-env", default=None, metavar="PREFIX",
                   help="print the environment variables starting with PREFIX (e.g. TRIAL_) first")
    return p.parse_args(argv)


def build(args: argparse.Namespace) -> MLPClassifier:
    solver = "adam" if args.optimizer in ("adam", "ftrl") else "sgd"
    return MLPClassifier(
        hidden_layer_sizes=(max(1, args.hidden),) * max(1, args.num_layers),
        solver=solver,
        learning_rate_init=args.lr,
        momentum=0.0 if args.optimizer == "sgd" else args.momentum,
        nesterovs_momentum=args.optimizer == "nesterov",
        alpha=args.alpha,
        batch_size=args.batch_size,
        random_state=args.seed,
    )


def load_checkpoint(directory: str | None, args: argparse.Namespace) -> tuple[MLPClassifier | None, int]:
    """A model saved by an earlier trial (PBT exploits its parent's checkpoint), or None."""
    if not directory:
        return None, 0
    path = os.path.join(directory, "checkpoint.pkl")
    try:
        with open(path, "rb") as f:
            model, done = pickle.load(f)
    except FileNotFoundError:
        return None, 0
    except Exception as exc:  # noqa: BLE001 - a bad checkpoint means "start fresh", not "fail"
        print(f"note: ignoring unreadable checkpoint {path}: {exc}", file=sys.stderr)
        return None, 0
    model.learning_rate_init = args.lr  # PBT explores: the new learning rate applies from now on
    if getattr(model, "_optimizer", None) is not None:
        model._optimizer.learning_rate = args.lr
    return model, int(done)


def save_checkpoint(directory: str | None, model: MLPClassifier, done: int) -> None:
    if not directory:
        return
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            pickle.dump((model, done), f)
        os.replace(tmp, os.path.join(directory, "checkpoint.pkl"))  # atomic: parallel trials never see half a file
    except OSError as exc:
        print(f"note: cannot save a checkpoint in {directory}: {exc}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.show_env:
        for key in sorted(k for k in os.environ if k.startswith(args.show_env)):
            print(f"{key}={os.environ[key]!r}", flush=True)
    x_train, x_val, y_train, y_val = digits(args.num_examples, args.seed)
    classes = np.arange(10)
    model, done = load_checkpoint(args.checkpoint, args)
    model = model or build(args)
    out = MetricsWriter(args.format, args.log_path)
    try:
        for epoch in range(done + 1, done + args.epochs + 1):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.partial_fit(x_train, y_train, classes=classes)
            proba = np.nan_to_num(model.predict_proba(x_val), nan=0.1)
            out.report({
                "loss": float(log_loss(y_val, np.clip(proba, 1e-9, 1.0), labels=classes)),
                "accuracy": float(model.score(x_val, y_val)),
                "Train-accuracy": float(model.score(x_train, y_train)),
                "Validation-accuracy": float(model.score(x_val, y_val)),
            }, step=epoch)
            if args.epoch_delay:
                time.sleep(args.epoch_delay)
        save_checkpoint(args.checkpoint, model, done + args.epochs)
    finally:
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
