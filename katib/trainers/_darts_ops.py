"""The candidate operations of a DARTS cell, built from upstream's primitive names.

A primitive is ``<operationType>_<k>x<k>`` (``k`` odd) or ``skip_connection``; ``none`` (the
zero operation) is added by the supernet so an edge can learn to vanish. Operation types:

==========================  ============================================================
``max_pooling``             max pool k x k, then batch norm
``avg_pooling``             average pool k x k, then batch norm
``convolution``             ReLU, conv k x k, batch norm
``separable_convolution``   two depthwise-separable convolutions k x k (as DARTS)
``dilated_convolution``     a depthwise-separable k x k convolution with dilation 2
``skip_connection``         identity (a factorised 1x1 reduction on a reduction edge)
==========================  ============================================================

Every operation keeps the channel count; a stride-2 edge halves height and width.
"""

from __future__ import annotations

import re
from typing import Callable

import torch
from torch import nn

__all__ = ["NONE", "KINDS", "build", "check_primitive", "FactorizedReduce", "StdConv"]

NONE = "none"
_NAME = re.compile(r"^([a-z_]+?)_(\d+)x(\d+)$")


class Zero(nn.Module):
    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, ::self.stride, ::self.stride] * 0.0


class StdConv(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, k: int, stride: int, padding: int) -> None:
        super().__init__(nn.ReLU(), nn.Conv2d(c_in, c_out, k, stride, padding, bias=False),
                         nn.BatchNorm2d(c_out, affine=False))


class FactorizedReduce(nn.Module):
    """Halve height and width without losing every other pixel: two offset 1x1 convolutions."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.relu = nn.ReLU()
        self.conv1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv2 = nn.Conv2d(c_in, c_out - c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = nn.functional.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))  # keeps odd sizes aligned
        return self.bn(torch.cat([self.conv1(x), self.conv2(shifted)], dim=1))


def _sep(c: int, k: int, stride: int, dilation: int) -> nn.Sequential:
    padding = dilation * (k - 1) // 2
    return nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, k, stride, padding, dilation=dilation, groups=c, bias=False),
                         nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c, affine=False))


def _pool(kind: str, c: int, k: int, stride: int) -> nn.Sequential:
    pool: nn.Module = (nn.MaxPool2d(k, stride, k // 2) if kind == "max"
                       else nn.AvgPool2d(k, stride, k // 2, count_include_pad=False))
    return nn.Sequential(pool, nn.BatchNorm2d(c, affine=False))


KINDS: dict[str, Callable[[int, int, int], nn.Module]] = {
    "max_pooling": lambda c, k, s: _pool("max", c, k, s),
    "avg_pooling": lambda c, k, s: _pool("avg", c, k, s),
    "convolution": lambda c, k, s: StdConv(c, c, k, s, k // 2),
    "separable_convolution": lambda c, k, s: nn.Sequential(_sep(c, k, s, 1), _sep(c, k, 1, 1)),
    "dilated_convolution": lambda c, k, s: _sep(c, k, s, 2),
}


def check_primitive(name: str) -> tuple[str, int]:
    """``(operation type, filter size)`` of a primitive; SystemExit naming it if unknown."""
    if name in ("skip_connection", NONE):
        return name, 0
    match = _NAME.match(name)
    known = ", ".join(f"{k}_<k>x<k>" for k in KINDS) + ", skip_connection"
    if not match or match.group(1) not in KINDS or match.group(2) != match.group(3):
        raise SystemExit(f"--search-space: unknown operation {name!r}; this trainer builds {known}")
    size = int(match.group(2))
    if size < 1 or size % 2 == 0:
        raise SystemExit(f"--search-space: {name!r} needs an odd filter size (3, 5, ...) to keep the "
                         "feature map's size")
    return match.group(1), size


def build(name: str, channels: int, stride: int) -> nn.Module:
    kind, size = check_primitive(name)
    if kind == NONE:
        return Zero(stride)
    if kind == "skip_connection":
        return nn.Identity() if stride == 1 else FactorizedReduce(channels, channels)
    return KINDS[kind](channels, size, stride)
