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
norm clipped at ``w_grad_clip``) on a training batch. The data set's two splits serve
as DARTS does: the training split fits the weights, the validation split fits the alphas
and measures the accuracy.

After every epoch it prints the epoch's accuracy on the validation split and the best
genotype so far, in the lines Katib's StdOut collector reads::

    Validation-Accuracy=0.912
    Best-Genotype=Genotype(normal=[[('max_pooling_3x3',0),('skip_connection',1)]],normal_concat=range(2,3),reduce=[],reduce_concat=range(2,3))

The genotype is printed without spaces, as upstream does, so it is one token. Data:
scikit-learn's digits by default (no download); ``--data cifar10:PATH`` or ``--data
folder:PATH`` for CIFAR-10 or a folder of images (``katib.trainers.data``). Runs on CPU, or
on the first GPU when there is one. ``num_workers`` is accepted and unused: the data set is
held in memory, so worker processes would only add overhead.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Mapping, NamedTuple, Sequence

from katib.api.nasvalue import parse_nas_value
from katib.trainers import MissingExtraError, data, require_torch

if TYPE_CHECKING:
    import torch

    from katib.trainers._darts_model import Genotype, Supernet
    from katib.trainers.data import ImageData

__all__ = ["main", "parse_value", "search", "Settings", "SearchResult", "format_genotype"]

def parse_value(text: str) -> Any:
    """JSON, upstream's JSON with ``'`` for ``"`` (``{'batch_size': null}``) or a Python
    literal, with the quotes a trial template wraps around it removed.

    The trainer's arguments are a dict, a list and a number, never a string, so every pair
    of matching outer quotes is a wrapper.
    """
    return parse_nas_value(text)


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


def _cycle(data: "ImageData", split: str, size: int | None, generator: "torch.Generator",
           device: "torch.device") -> Iterator[tuple["torch.Tensor", "torch.Tensor"]]:
    """Endless shuffled batches of ``split`` (the validation split is smaller than the
    training split, and every training batch gets an architecture step)."""
    n = len(data.train_y if split == "train" else data.valid_y)
    while True:
        yield from data.batches(split, size or n, generator=generator, device=device)


class SearchResult(NamedTuple):
    genotype: "Genotype"  # the best epoch's
    accuracy: float  # the best epoch's, on the validation split
    supernet: "Supernet"  # as trained, after the last epoch


def search(settings: Settings, primitives: Sequence[str], num_layers: int, data: "ImageData", *,
           seed: int = 0, device: str | None = None, threads: int | None = None) -> SearchResult:
    """Run the bilevel search (the supernet's weights and alphas start from ``seed``); print
    progress and metrics after every epoch.

    ``threads``: CPU threads for PyTorch, by default ``$KATIB_TRIAL_THREADS`` or 1 as for every
    example trial. Trials run side by side, and on small images more threads mostly wait for
    each other (on a busy 2-CPU machine one thread searched ten times faster than two); raise
    it for a trial that runs alone on bigger images.
    """
    torch = require_torch()
    from torch import nn

    torch.set_num_threads(threads or int(os.environ.get("KATIB_TRIAL_THREADS", "1")))

    from katib.trainers._darts_model import Supernet

    torch.manual_seed(seed)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    print(f">>> Training on {dev}: {len(data.train_y)} training and {len(data.valid_y)} validation images "
          f"of {data.name}", flush=True)
    model = Supernet(primitives, num_layers=num_layers, num_nodes=settings.num_nodes,
                     init_channels=settings.init_channels, stem_multiplier=settings.stem_multiplier,
                     in_channels=data.shape[0], num_classes=data.num_classes).to(dev)
    criterion = nn.CrossEntropyLoss()
    w_optim = torch.optim.SGD(list(model.weights()), settings.w_lr, momentum=settings.w_momentum,
                              weight_decay=settings.w_weight_decay)
    alpha_optim = torch.optim.Adam(list(model.alphas()), settings.alpha_lr, betas=(0.5, 0.999),
                                   weight_decay=settings.alpha_weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(w_optim, settings.num_epochs, eta_min=settings.w_lr_min)
    generator = torch.Generator().manual_seed(seed)
    size = settings.batch_size or len(data.train_y)
    valid = _cycle(data, "valid", settings.batch_size, generator, dev)
    steps = -(-len(data.train_y) // size)
    best_accuracy, best = -math.inf, model.genotype()
    for epoch in range(1, settings.num_epochs + 1):
        model.train()
        seen = correct = 0
        for step, (x, y) in enumerate(data.batches("train", size, generator=generator, device=dev)):
            # First-order DARTS: the alphas follow the validation loss at the current weights.
            x_valid, y_valid = next(valid)
            alpha_optim.zero_grad()
            criterion(model(x_valid), y_valid).backward()
            alpha_optim.step()
            w_optim.zero_grad()
            logits = model(x)
            loss = criterion(logits, y)
            loss.backward()
            nn.utils.clip_grad_norm_(list(model.weights()), settings.w_grad_clip)
            w_optim.step()
            seen += len(y)
            correct += int((logits.argmax(1) == y).sum())
            if step % settings.print_step == 0 or step == steps - 1:
                print(f"Train: [{epoch}/{settings.num_epochs}] Step {step:03d}/{steps - 1:03d} "
                      f"Loss {loss.item():.3f} Prec@1 {correct / max(1, seen):.1%}", flush=True)
        schedule.step()
        _recalibrate(model, data.train_x.to(dev), settings.batch_size)
        accuracy = _accuracy(model, data.valid_x.to(dev), data.valid_y.to(dev), settings.batch_size)
        genotype = model.genotype()
        print(f"Valid: [{epoch}/{settings.num_epochs}] Final Prec@1 {accuracy:.4%}", flush=True)
        print(f"Model genotype = {genotype}", flush=True)
        if accuracy > best_accuracy:
            best_accuracy, best = accuracy, genotype
        print(f"Validation-Accuracy={accuracy:.6f}", flush=True)
        print(f"Best-Genotype={format_genotype(best)}", flush=True)
    print(f"Final best Prec@1 = {best_accuracy:.4%}", flush=True)
    return SearchResult(best, best_accuracy, model)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m katib.trainers.darts",
                                     description="Search a DARTS cell and print the best genotype.")
    parser.add_argument("--algorithm-settings", default="{}", help="the darts algorithm's settings (JSON or Python dict)")
    parser.add_argument("--search-space", required=True, help="the candidate operations, e.g. \"['max_pooling_3x3']\"")
    parser.add_argument("--num-layers", default="1", help="number of cells")
    data.add_arguments(parser)
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
    try:
        require_torch()
    except MissingExtraError as exc:
        raise SystemExit(str(exc)) from None
    from katib.trainers import _darts_ops

    for name in primitives:
        _darts_ops.check_primitive(name)
    try:
        images = data.from_args(args, seed=args.seed)
    except data.DataError as exc:
        raise SystemExit(str(exc)) from None
    start = time.monotonic()
    search(settings, primitives, layers, images, seed=args.seed, device=args.device)
    print(f"searched in {time.monotonic() - start:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
