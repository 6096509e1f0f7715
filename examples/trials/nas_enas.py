"""Build and train the network an ENAS suggestion describes, on digits.

Takes upstream's ENAS trial arguments: ``--architecture`` (one list per layer: the
operation id, then skip-connection flags to earlier layers) and ``--nn_config`` (number of
layers, input/output sizes, and an ``embedding`` from operation id to operation type and
parameters). Values may arrive JSON-quoted, Python-quoted (``'``) and wrapped in the
literal quotes upstream's template puts around them. Convolutions and pooling are mapped to
dense layers of matching width so the search runs on CPU in a second; it prints::

    Validation-Accuracy=0.9425

    python3 examples/trials/nas_enas.py --num_epochs=1 --architecture="[[0], [1, 0]]" \\
        --nn_config="{'num_layers': 2, 'embedding': {'0': {'opt_type': 'convolution', 'opt_params': {'num_filter': '32'}}}}"
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import warnings
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import digits  # noqa: E402


def parse_value(text: str) -> Any:
    """JSON or a Python literal, with the quotes a template may wrap around it removed."""
    text = text.strip()
    while len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    try:
        return json.loads(text)
    except ValueError:
        return ast.literal_eval(text)


def layer_widths(architecture: list[Any], config: dict[str, Any]) -> list[int]:
    """One dense layer per architecture layer; width from the operation's parameters."""
    embedding = {str(k): v for k, v in (config.get("embedding") or {}).items()}
    widths: list[int] = []
    width = 64
    for layer in architecture:
        op_id = layer[0] if isinstance(layer, list) and layer else layer
        op = embedding.get(str(op_id), {})
        params = op.get("opt_params", {}) if isinstance(op, dict) else {}
        kind = op.get("opt_type", "convolution") if isinstance(op, dict) else "convolution"
        if kind == "reduction":
            width = max(8, width // int(params.get("pool_size", 2)))
        else:
            width = int(params.get("num_filter", width))
            width = max(8, width * int(params.get("depth_multiplier", 1)) // max(1, int(params.get("stride", 1))))
        skips = sum(1 for s in (layer[1:] if isinstance(layer, list) else []) if int(s))
        widths.append(width + 8 * skips)  # skip connections widen the layer they feed
    return widths or [64]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--architecture", required=True)
    p.add_argument("--nn_config", required=True)
    p.add_argument("--num_epochs", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        architecture = parse_value(args.architecture)
        config = parse_value(args.nn_config)
    except (ValueError, SyntaxError) as exc:
        raise SystemExit(f"cannot read --architecture/--nn_config: {exc}") from exc
    widths = layer_widths(architecture, config)
    print(f"layers: {widths}", flush=True)
    x_train, x_val, y_train, y_val = digits(seed=args.seed)
    model = MLPClassifier(hidden_layer_sizes=tuple(widths), solver="adam", learning_rate_init=0.02,
                          random_state=args.seed)
    for epoch in range(1, args.num_epochs + 1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.partial_fit(x_train, y_train, classes=np.arange(10))
        print(f"epoch={epoch} Training-Accuracy={model.score(x_train, y_train):.6f} "
              f"Validation-Accuracy={model.score(x_val, y_val):.6f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
