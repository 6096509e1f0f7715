"""DARTS supernet trainer: the trial side of the ``darts`` algorithm.

Takes upstream's DARTS trial arguments::

    python -m katib.trainers.darts \\
        --algorithm-settings="{'num_epochs': '1', 'w_lr': 0.025, 'batch_size': 128, ...}" \\
        --search-space="['max_pooling_3x3', 'separable_convolution_3x3', 'skip_connection']" \\
        --num-layers=1

(values may be JSON or Python literals, and may keep the literal quotes upstream's trial
template wraps around them). It trains a supernet whose edges mix every operation of the
search space (``katib.trainers._darts_model``) with first-order bilevel optimisation: on each
step the architecture parameters (alphas) take an Adam step (``alpha_lr``,
``alpha_weight_decay``) on a validation batch, then the weights an SGD step (``w_lr``
annealed to ``w_lr_min`` by a cosine schedule, ``w_momentum``, ``w_weight_decay``, gradient
norm clipped at ``w_grad_clip``) on a training batch. The training set is split in halves
as upstream does: one to fit the weights, one to fit the alphas and to measure accuracy.

After every epoch it prints the epoch's accuracy on the validation half and the best
genotype so far, in the lines Katib's StdOut collector reads::

    Validation-Accuracy=0.912
    Best-Genotype=Genotype(normal=[[('max_pooling_3x3',0),('skip_connection',1)]],normal_concat=range(2,3),reduce=[],reduce_concat=range(2,3))

The genotype is printed without spaces, as upstream does, so it is one token. Data:
scikit-learn's digits by default (no download); ``--dataset cifar10 --data-dir PATH`` or
``--dataset folder --data-dir PATH`` for CIFAR-10 or a folder of images. Runs on CPU, or on
the first GPU when there is one. Settings not used here: ``num_workers`` (the data set is
held in memory, so worker processes would only add overhead).
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

if TYPE_CHECKING:
    import torch

    from katib.trainers._darts_model import Genotype, Supernet

__all__ = ["main", "parse_value", "Settings", "format_genotype"]

EXTRA_HINT = "pip install 'katib-lite[nas]'"


def parse_value(text: str) -> Any:
    """JSON or a Python literal, with the quotes a trial template may wrap around it removed.

    The trainer's arguments are a dict, a list and a number, never a string, so every pair
    of matching outer quotes is a wrapper; a value that decodes to a string (JSON inside a
    JSON string) is decoded once more.
    """
    text = text.strip()
    while len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    try:
        value = json.loads(text)
    except ValueError:
        value = ast.literal_eval(text)
    return parse_value(value) if isinstance(value, str) and value.strip() != text else value


@dataclass(frozen=True)
class Settings:
    """The algorithm settings the trainer uses, with upstream's defaults."""

    num_epochs: int = 50
    w_lr: float = 0.025
    w_lr_min: float = 0.001
    w_momentum: float = 0.9
    w_weight_decay: float = 3e-4
    w_grad_clip: float = 5.0
    alpha_lr: float = 3e-4
    alpha_weight_decay: float = 1e-3
    batch_size: int | None = 128  # None: the whole split in one batch
    num_workers: int = 4
    init_channels: int = 16
    print_step: int = 50
    num_nodes: int = 4
    stem_multiplier: int = 3

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> "Settings":
        values: dict[str, Any] = {}
        fields = cls.__dataclass_fields__
        for key, value in raw.items():
            if key not in fields:
                raise SystemExit(f"--algorithm-settings: unknown setting {key!r}; known: {', '.join(fields)}")
            default = fields[key].default
            if value is None or value == "None":
                if key != "batch_size":
                    raise SystemExit(f"--algorithm-settings: {key} needs a value, got None")
                values[key] = None
                continue
            try:
                number = float(value)
                if isinstance(default, float):
                    values[key] = number
                else:
                    if not number.is_integer():
                        raise ValueError
                    values[key] = int(number)
            except (TypeError, ValueError):
                kind = "a number" if isinstance(default, float) else "a whole number"
                raise SystemExit(f"--algorithm-settings: {key} must be {kind}, got {value!r}") from None
        settings = cls(**values)
        for key in ("num_epochs", "init_channels", "print_step", "num_nodes", "stem_multiplier"):
            if getattr(settings, key) < 1:
                raise SystemExit(f"--algorithm-settings: {key} must be at least 1, got {getattr(settings, key)}")
        if settings.batch_size is not None and settings.batch_size < 1:
            raise SystemExit(f"--algorithm-settings: batch_size must be at least 1 or None, got {settings.batch_size}")
        return settings


def format_genotype(genotype: "Genotype") -> str:
    """Upstream's form: the namedtuple's text without spaces (one token for the collector)."""
    return str(genotype).replace(" ", "")


def _import_torch() -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise SystemExit(f"the DARTS trainer needs PyTorch: {EXTRA_HINT}") from None


def _batches(n: int, size: int | None, generator: "torch.Generator") -> list["torch.Tensor"]:
    import torch

    order = torch.randperm(n, generator=generator)
    step = size or n
    return [order[i:i + step] for i in range(0, n, step)]


def _recalibrate(model: "Supernet", x: "torch.Tensor", size: int | None) -> None:
    """Re-estimate every batch norm's statistics at the final weights (one pass over ``x``).

    The running averages gathered while the weights moved lag behind them, which after the
    few steps of a short search makes evaluation meaningless.
    """
    import torch
    from torch import nn

    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a plain average over the pass
    model.train()
    step = size or len(x)
    with torch.no_grad():
        for i in range(0, len(x), step):
            model(x[i:i + step])
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum


def _accuracy(model: "Supernet", x: "torch.Tensor", y: "torch.Tensor", size: int | None) -> float:
    import torch

    model.eval()
    correct = 0
    step = size or len(y)
    with torch.no_grad():
        for i in range(0, len(y), step):
            correct += int((model(x[i:i + step]).argmax(1) == y[i:i + step]).sum())
    return correct / max(1, len(y))


def search(settings: Settings, primitives: Sequence[str], num_layers: int, *, dataset: str = "digits",
           data_dir: str | None = None, limit: int | None = None, seed: int = 0,
           device: str | None = None) -> tuple["Genotype", float]:
    """Run the bilevel search; print progress and metrics; return the best genotype and its
    validation accuracy."""
    import torch
    from torch import nn

    from katib.trainers import _darts_data
    from katib.trainers._darts_model import Supernet

    torch.manual_seed(seed)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    print(f">>> Training on {dev}", flush=True)
    data = _darts_data.load(dataset, data_dir, limit=limit, seed=seed)
    half = len(data.labels) // 2
    x_train, y_train = data.images[:half].to(dev), data.labels[:half].to(dev)
    x_valid, y_valid = data.images[half:].to(dev), data.labels[half:].to(dev)
    model = Supernet(primitives, num_layers=num_layers, num_nodes=settings.num_nodes,
                     init_channels=settings.init_channels, stem_multiplier=settings.stem_multiplier,
                     in_channels=data.channels, num_classes=data.num_classes).to(dev)
    criterion = nn.CrossEntropyLoss()
    w_optim = torch.optim.SGD(list(model.weights()), settings.w_lr, momentum=settings.w_momentum,
                              weight_decay=settings.w_weight_decay)
    alpha_optim = torch.optim.Adam(list(model.alphas()), settings.alpha_lr, betas=(0.5, 0.999),
                                   weight_decay=settings.alpha_weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(w_optim, settings.num_epochs, eta_min=settings.w_lr_min)
    generator = torch.Generator().manual_seed(seed)
    best_accuracy, best = -math.inf, model.genotype()
    for epoch in range(1, settings.num_epochs + 1):
        model.train()
        train_batches = _batches(half, settings.batch_size, generator)
        valid_batches = _batches(len(y_valid), settings.batch_size, generator)
        seen = correct = 0
        for step, (t, v) in enumerate(zip(train_batches, valid_batches)):
            t, v = t.to(dev), v.to(dev)
            # First-order DARTS: the alphas follow the validation loss at the current weights.
            alpha_optim.zero_grad()
            criterion(model(x_valid[v]), y_valid[v]).backward()
            alpha_optim.step()
            w_optim.zero_grad()
            logits = model(x_train[t])
            loss = criterion(logits, y_train[t])
            loss.backward()
            nn.utils.clip_grad_norm_(list(model.weights()), settings.w_grad_clip)
            w_optim.step()
            seen += len(t)
            correct += int((logits.argmax(1) == y_train[t]).sum())
            if step % settings.print_step == 0 or step == len(train_batches) - 1:
                print(f"Train: [{epoch}/{settings.num_epochs}] Step {step:03d}/{len(train_batches) - 1:03d} "
                      f"Loss {loss.item():.3f} Prec@1 {correct / max(1, seen):.1%}", flush=True)
        schedule.step()
        _recalibrate(model, x_train, settings.batch_size)
        accuracy = _accuracy(model, x_valid, y_valid, settings.batch_size)
        genotype = model.genotype()
        print(f"Valid: [{epoch}/{settings.num_epochs}] Final Prec@1 {accuracy:.4%}", flush=True)
        print(f"Model genotype = {genotype}", flush=True)
        if accuracy > best_accuracy:
            best_accuracy, best = accuracy, genotype
        print(f"Validation-Accuracy={accuracy:.6f}", flush=True)
        print(f"Best-Genotype={format_genotype(best)}", flush=True)
    print(f"Final best Prec@1 = {best_accuracy:.4%}", flush=True)
    return best, best_accuracy


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m katib.trainers.darts",
                                     description="Search a DARTS cell and print the best genotype.")
    parser.add_argument("--algorithm-settings", default="{}", help="the darts algorithm's settings (JSON or Python dict)")
    parser.add_argument("--search-space", required=True, help="the candidate operations, e.g. \"['max_pooling_3x3']\"")
    parser.add_argument("--num-layers", default="1", help="number of cells")
    parser.add_argument("--dataset", default="digits", help="digits (default, no download), cifar10 or folder")
    parser.add_argument("--data-dir", help="the CIFAR-10 batches or the image folder")
    parser.add_argument("--limit", type=int, help="use at most this many examples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    args = parser.parse_args(argv)
    try:
        raw = parse_value(args.algorithm_settings) or {}
        primitives = parse_value(args.search_space)
        num_layers = parse_value(args.num_layers)
    except (ValueError, SyntaxError) as exc:
        raise SystemExit(f"cannot read the DARTS arguments (JSON or Python literals expected): {exc}") from None
    if not isinstance(raw, dict):
        raise SystemExit(f"--algorithm-settings must be a dict, got {args.algorithm_settings!r}")
    if not isinstance(primitives, list) or not primitives or not all(isinstance(p, str) for p in primitives):
        raise SystemExit(f"--search-space must be a non-empty list of operation names, got {args.search_space!r}")
    try:
        layers = int(num_layers)
    except (TypeError, ValueError):
        layers = 0
    if layers < 1:
        raise SystemExit(f"--num-layers must be a whole number above 0, got {args.num_layers!r}")
    settings = Settings.from_mapping(raw)
    _import_torch()
    from katib.trainers import _darts_ops

    for name in primitives:
        _darts_ops.check_primitive(name)
    threads = os.environ.get("KATIB_TRIAL_THREADS")
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    start = time.monotonic()
    search(settings, primitives, layers, dataset=args.dataset, data_dir=args.data_dir, limit=args.limit,
           seed=args.seed, device=args.device)
    print(f"searched in {time.monotonic() - start:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
