"""The ENAS child-network trainer: builds the network an ENAS suggestion describes, trains it,
and prints its validation accuracy every epoch.

It takes upstream's ENAS trial arguments, so upstream's experiments run it unchanged::

    python -m katib.trainers.enas --num_epochs=1 \\
        --architecture="[[0], [2, 1]]" \\
        --nn_config="{'num_layers': 2, 'input_sizes': [8, 8, 1], 'output_sizes': [10],
                      'embedding': {'0': {'opt_id': 0, 'opt_type': 'convolution',
                                          'opt_params': {'filter_size': '3', 'num_filter': '32', 'stride': '1'}},
                                    '2': {'opt_id': 2, 'opt_type': 'reduction',
                                          'opt_params': {'reduction_type': 'max_pooling', 'pool_size': 2}}}}"

``--architecture`` has one entry per layer: the operation id, then one skip flag per earlier
output (the network's input first). ``--nn_config`` has ``num_layers``, ``input_sizes``
(``[height, width, channels]``), ``output_sizes`` (the last is the number of classes) and the
``embedding`` from operation id to ``opt_type`` and ``opt_params``. Values may be JSON or
Python-quoted (``'``), wrapped in the literal quotes upstream's trial templates put around
them. Each epoch prints a line the StdOut metrics collector reads::

    epoch=1 Training-Loss=0.912345 Training-Accuracy=0.712345 Validation-Accuracy=0.901235

Data: ``--data digits`` (default, no download), ``cifar10:PATH`` or ``folder:PATH`` (see
:mod:`katib.trainers.data`). Runs on the GPU when there is one, on the CPU otherwise, with
``KATIB_TRIAL_THREADS`` threads (1 by default: trials run side by side). The same seed
gives the same result on the same machine.

Weight sharing (ENAS's core idea): with ``--shared-weights DIR`` a child loads, before it
trains, the tensors earlier children of the experiment left in ``DIR`` for the same operation at
the same layer on the same input channels (and the classifier of the same shape); tensors whose
key or shape differ keep their fresh initialisation. After training it writes back every tensor
it used (last writer wins per tensor). It prints, in words the metrics collector ignores::

    shared-weights: loaded 12 of 20 tensors from runs/default/my-enas/enas-shared-weights

By default, when ``KATIB_TRIAL_DIR`` is set (``katib run`` sets it to the trial's directory),
the store is the experiment's ``$KATIB_TRIAL_DIR/../enas-shared-weights``; otherwise (and with
``--shared-weights none``) every child trains from scratch. On Kubernetes, point it at a volume
the experiment's trial pods share. Trials reading and writing side by side take a file lock in
the store; see :mod:`katib.trainers._shared_weights`.

From Python, :func:`train` returns the last epoch's validation accuracy; its ``shared_weights``
is off (None) unless given.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from katib.api.nasvalue import parse_nas_value, unwrap
from katib.trainers import MissingExtraError, require_torch
from katib.trainers.data import DataError, ImageData, add_arguments, load

if TYPE_CHECKING:
    import torch

    from katib.trainers._enas_ops import ChildNetwork

__all__ = ["ArgumentError", "LayerSpec", "OPERATION_TYPES", "parse_value", "layer_specs", "train", "build_network",
           "main"]

OPERATION_TYPES = ("convolution", "separable_convolution", "depthwise_convolution", "reduction")
REDUCTION_TYPES = ("max_pooling", "avg_pooling")
_INT_PARAMS = ("num_filter", "filter_size", "stride", "depth_multiplier", "pool_size")
BATCH_SIZE = 32
LEARNING_RATE = 3e-3

_DEFAULTS: dict[str, int] = {"num_filter": 64, "filter_size": 3, "stride": 1, "depth_multiplier": 1, "pool_size": 2}

Report = Callable[[int, dict[str, float]], None]


@dataclass(frozen=True)
class LayerSpec:
    """One layer: its operation type and parameters (upstream's defaults where not given), and
    the earlier outputs it also reads (indices into [input, layer 1, ...]; the previous layer
    is always read and not listed)."""

    op_type: str
    params: dict[str, Any]
    skips: tuple[int, ...] = ()
    op_id: int | None = None  # the operation's id in nn_config's embedding (names shared weights)

    def int_param(self, name: str) -> int:
        return int(self.params.get(name, _DEFAULTS[name]))


class ArgumentError(ValueError):
    """``--architecture`` or ``--nn_config`` cannot describe a network; the message names the
    argument, the place in it, and the fix."""


def parse_value(text: str | Any, arg: str = "value") -> Any:
    """``text`` as JSON or a Python literal, once the quotes a template wrapped around it are
    removed. Values that are not strings (already parsed) are returned as they are."""
    if not isinstance(text, str):
        return text
    try:
        return parse_nas_value(text)
    except (ValueError, SyntaxError) as exc:
        raise ArgumentError(f"{arg}: {unwrap(text)[:80]!r} is neither JSON nor a Python literal ({exc}); "
                            "pass the value the ENAS suggestion assigned, quoted as the trial template quotes it") from exc


def layer_specs(architecture: Any, nn_config: Any) -> tuple[list[LayerSpec], dict[str, Any]]:
    """The layers of ``architecture`` with their operations from ``nn_config``'s embedding,
    and the parsed nn_config; :class:`ArgumentError` on anything that does not fit."""
    arch = parse_value(architecture, "--architecture")
    config = parse_value(nn_config, "--nn_config")
    if not isinstance(config, Mapping):
        raise ArgumentError(f"--nn_config: must be an object with num_layers, input_sizes, output_sizes "
                            f"and embedding, got {type(config).__name__}")
    if not isinstance(arch, list) or not arch:
        raise ArgumentError("--architecture: must be a list with one entry per layer, "
                            f"[operation id, skip flags...], got {arch!r:.80}")
    num_layers = config.get("num_layers", len(arch))
    if num_layers != len(arch):
        raise ArgumentError(f"--architecture: has {len(arch)} layers but --nn_config num_layers is {num_layers}; "
                            "pass both from the same suggestion")
    embedding = config.get("embedding")
    if not isinstance(embedding, Mapping) or not embedding:
        raise ArgumentError("--nn_config: embedding is missing or empty; it maps each operation id of "
                            "--architecture to {opt_type, opt_params}")
    ops = {str(k): v for k, v in embedding.items()}
    specs: list[LayerSpec] = []
    for index, entry in enumerate(arch):
        where = f"--architecture[{index}]"
        if not isinstance(entry, list) or not entry or not all(isinstance(v, int) for v in entry):
            raise ArgumentError(f"{where}: must be [operation id, skip flags...] of integers, got {entry!r}")
        if len(entry) != index + 1:
            raise ArgumentError(f"{where}: layer {index + 1} takes {index} skip flag(s) (one per earlier output, "
                                f"the input first) after its operation id; got {len(entry) - 1}")
        op = ops.get(str(entry[0]))
        if not isinstance(op, Mapping):
            raise ArgumentError(f"--nn_config: embedding has no operation {entry[0]} (used by {where}); "
                                f"it has {', '.join(sorted(ops))}")
        specs.append(LayerSpec(_op_type(op, entry[0]), _op_params(op, entry[0]),
                               tuple(i for i, flag in enumerate(entry[1:]) if flag), entry[0]))
    return specs, dict(config)


def _op_type(op: Mapping[str, Any], op_id: Any) -> str:
    kind = op.get("opt_type")
    if kind not in OPERATION_TYPES:
        raise ArgumentError(f"--nn_config: embedding[{str(op_id)!r}].opt_type is {kind!r}; "
                            f"use one of {', '.join(OPERATION_TYPES)}")
    return str(kind)


def _op_params(op: Mapping[str, Any], op_id: Any) -> dict[str, Any]:
    raw = op.get("opt_params", {})
    if not isinstance(raw, Mapping):
        raise ArgumentError(f"--nn_config: embedding[{str(op_id)!r}].opt_params must be an object, got {raw!r:.80}")
    params: dict[str, Any] = {}
    for name, value in raw.items():
        where = f"--nn_config: embedding[{str(op_id)!r}].opt_params.{name}"
        if name in _INT_PARAMS:
            try:
                number = float(value)
                if number != int(number) or number < 1:
                    raise ValueError
            except (TypeError, ValueError):
                raise ArgumentError(f"{where} is {value!r}; it must be a whole number of at least 1") from None
            params[name] = int(number)
        elif name == "reduction_type":
            if value not in REDUCTION_TYPES:
                raise ArgumentError(f"{where} is {value!r}; use {' or '.join(REDUCTION_TYPES)}")
            params[name] = value
        else:
            params[name] = value  # unknown parameters are ignored, as upstream's child does
    return params


def build_network(architecture: Any, nn_config: Any, input_shape: Sequence[int] | None = None,
                  num_classes: int | None = None) -> ChildNetwork:
    """The (untrained) child network; shapes default to nn_config's ``input_sizes``
    ([height, width, channels]) and ``output_sizes[-1]``."""
    require_torch()
    from katib.trainers._enas_ops import ChildNetwork

    specs, config = layer_specs(architecture, nn_config)
    if input_shape is None:
        h, w, c = _input_sizes(config) or [8, 8, 1]
        input_shape = (c, h, w)
    classes = num_classes or _num_classes(config) or 10
    c, h, w = (int(v) for v in input_shape)
    return ChildNetwork(specs, (c, h, w), classes)


def _input_sizes(config: Mapping[str, Any]) -> list[int] | None:
    sizes = config.get("input_sizes")
    if sizes is None:
        return None
    if not isinstance(sizes, list) or len(sizes) != 3:
        raise ArgumentError(f"--nn_config: input_sizes is {sizes!r}; it must be [height, width, channels], "
                            "as spec.nasConfig.graphConfig.inputSizes")
    return [int(v) for v in sizes]


def _num_classes(config: Mapping[str, Any]) -> int | None:
    sizes = config.get("output_sizes")
    if not sizes:
        return None
    return int(sizes[-1])


def train(architecture: Any, nn_config: Any, *, num_epochs: int = 1, seed: int = 0,
          data: str | ImageData = "digits", device: str | torch.device | None = None,
          batch_size: int = BATCH_SIZE, learning_rate: float = LEARNING_RATE,
          report: Report | None = None, threads: int | None = None,
          shared_weights: str | Path | None = None) -> float:
    """Build the child network, train it ``num_epochs`` epochs on ``data`` (a ``--data`` spec or
    an :class:`~katib.trainers.data.ImageData` already loaded) and return the last epoch's
    validation accuracy. ``report(epoch, metrics)`` is called after each epoch.

    ``threads`` CPU threads (default ``$KATIB_TRIAL_THREADS`` or 1) while it trains: the child
    networks are small, and more threads than free cores make them many times slower.

    ``shared_weights``: the directory of the shared weight store (see the module docstring);
    None trains from scratch and leaves no trace."""
    torch = require_torch()
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, threads if threads is not None else _env_threads()))
    try:
        return _train(architecture, nn_config, num_epochs=num_epochs, seed=seed, data=data, device=device,
                      batch_size=batch_size, learning_rate=learning_rate, report=report,
                      shared_weights=shared_weights)
    finally:
        torch.set_num_threads(before)


def _env_threads() -> int:
    try:
        return int(os.environ.get("KATIB_TRIAL_THREADS", "1"))
    except ValueError:
        return 1


def _train(architecture: Any, nn_config: Any, *, num_epochs: int, seed: int, data: str | ImageData,
           device: str | torch.device | None, batch_size: int, learning_rate: float,
           report: Report | None, shared_weights: str | Path | None) -> float:
    torch = require_torch()
    if num_epochs < 1:
        raise ArgumentError(f"--num_epochs: must be at least 1, got {num_epochs}")
    specs, config = layer_specs(architecture, nn_config)
    dataset = data if isinstance(data, ImageData) else load(data, input_sizes=_input_sizes(config), seed=seed)
    classes = _num_classes(config) or dataset.num_classes
    if classes < dataset.num_classes:
        raise ArgumentError(f"--nn_config: output_sizes ends in {classes} but the data set {dataset.name!r} has "
                            f"{dataset.num_classes} classes; set spec.nasConfig.graphConfig.outputSizes to "
                            f"[{dataset.num_classes}]")
    dev = torch.device(device) if device is not None else \
        torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(seed)
    from katib.trainers._enas_ops import ChildNetwork

    model = ChildNetwork(specs, dataset.shape, classes).to(dev)
    shared_keys = model.shared_keys()
    if shared_weights is not None:
        from katib.trainers import _shared_weights

        loaded = _shared_weights.load_into(model, shared_keys, shared_weights)
        # No "name=value" here: the StdOut collector would record it as a metric.
        print(f"shared-weights: loaded {len(loaded)} of {len(shared_keys)} tensors from {shared_weights}",
              flush=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    loss_fn = torch.nn.CrossEntropyLoss()
    order = torch.Generator().manual_seed(seed)
    accuracy = 0.0
    for epoch in range(1, num_epochs + 1):
        model.train()
        total_loss, correct, seen = 0.0, 0, 0
        for x, y in dataset.batches("train", batch_size, generator=order, device=dev):
            optimizer.zero_grad()
            logits = model(x)
            loss = loss_fn(logits, y)
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
        accuracy = evaluate(model, dataset, dev)
        if report is not None:
            report(epoch, {"Training-Loss": total_loss / seen, "Training-Accuracy": correct / seen,
                           "Validation-Accuracy": accuracy})
    if shared_weights is not None:
        _shared_weights.save_from(model, shared_keys, shared_weights)
        print(f"shared-weights: saved {len(shared_keys)} tensors to {shared_weights}", flush=True)
    return accuracy


def evaluate(model: torch.nn.Module, dataset: ImageData, device: torch.device) -> float:
    """The share of validation images ``model`` classifies right."""
    torch = require_torch()
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in dataset.batches("valid", 512, device=device):
            correct += int((model(x).argmax(1) == y).sum())
    return correct / len(dataset.valid_y)


def describe(architecture: Any, nn_config: Any) -> list[str]:
    """One readable line per layer (no ``name=value`` pairs: the metrics collector reads stdout)."""
    specs, _ = layer_specs(architecture, nn_config)
    lines = []
    for n, spec in enumerate(specs, 1):
        params = ", ".join(f"{k} {v}" for k, v in sorted(spec.params.items()))
        skips = "".join(f" + skip from {'input' if i == 0 else f'layer {i}'}" for i in spec.skips)
        lines.append(f"layer {n}: {spec.op_type} ({params}){skips}")
    return lines


def _print_metrics(epoch: int, metrics: dict[str, float]) -> None:
    print(f"epoch={epoch} " + " ".join(f"{k}={v:.6f}" for k, v in metrics.items()), flush=True)


def _store(value: str | None) -> Path | None:
    from katib.trainers._shared_weights import resolve_store

    return resolve_store(value)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m katib.trainers.enas",
                                     description="Train the child network an ENAS suggestion describes.")
    parser.add_argument("--architecture", required=True, help="the suggestion's architecture assignment")
    parser.add_argument("--nn_config", required=True, help="the suggestion's nn_config assignment")
    parser.add_argument("--num_epochs", type=int, default=1, help="epochs to train (default 1)")
    parser.add_argument("--num_gpus", type=int, default=None, help="upstream's; 0 keeps to the CPU")
    add_arguments(parser)
    parser.add_argument("--batch_size", type=int, default=BATCH_SIZE)
    parser.add_argument("--learning_rate", type=float, default=LEARNING_RATE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shared-weights", "--shared_weights", dest="shared_weights", default=None, metavar="DIR",
                        help="directory of the experiment's shared weight store, or none to train from scratch "
                             "(default: $KATIB_TRIAL_DIR/../enas-shared-weights when KATIB_TRIAL_DIR is set, "
                             "else none)")
    args = parser.parse_args(argv)
    try:
        require_torch()
        for line in describe(args.architecture, args.nn_config):
            print(line, flush=True)
        specs, config = layer_specs(args.architecture, args.nn_config)
        dataset = load(args.data, input_sizes=_input_sizes(config), seed=args.seed, limit=args.data_limit)
        train(args.architecture, args.nn_config, num_epochs=args.num_epochs, seed=args.seed, data=dataset,
              device="cpu" if args.num_gpus == 0 else None, batch_size=args.batch_size,
              learning_rate=args.learning_rate, report=_print_metrics, shared_weights=_store(args.shared_weights))
    except (MissingExtraError, ArgumentError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
