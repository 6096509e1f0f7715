"""The DARTS supernet: cells whose edges mix every candidate operation.

Each cell has two inputs (the outputs of the two previous cells) and ``num_nodes``
intermediate nodes; node ``i`` sums one mixed edge from each of the ``i + 2`` earlier states,
and the cell outputs its intermediate nodes concatenated. An edge's output is the
softmax(alpha)-weighted sum of all primitives, with one alpha row per edge, shared by every
normal cell (``alpha_normal``) and by every reduction cell (``alpha_reduce``).

Reduction cells (stride 2 on the input edges, channels doubled) sit where DARTS puts them
for ``num_layers`` cells: at 1/3 and 2/3 of the depth; with 2 layers the second cell
reduces; a single layer is one normal cell (and ``reduce`` of the genotype stays empty).
"""

from __future__ import annotations

from collections import namedtuple
from typing import Iterator, Sequence, cast

import torch
from torch import nn
from torch.nn import functional as F

from katib.trainers import _darts_ops as ops

__all__ = ["Genotype", "Supernet", "reduction_layers"]

# The genotype as upstream prints it: ``Genotype(normal=[[('op', 0), ...], ...], normal_concat=range(2, 6), ...)``.
Genotype = namedtuple("Genotype", "normal normal_concat reduce reduce_concat")


def reduction_layers(num_layers: int) -> set[int]:
    if num_layers == 1:
        return set()
    if num_layers == 2:
        return {1}
    return {num_layers // 3, 2 * num_layers // 3}


class MixedOp(nn.Module):
    def __init__(self, primitives: Sequence[str], channels: int, stride: int) -> None:
        super().__init__()
        self.ops = nn.ModuleList(ops.build(p, channels, stride) for p in primitives)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return sum((w * op(x) for w, op in zip(weights, self.ops)), torch.zeros(()))


class Cell(nn.Module):
    def __init__(self, primitives: Sequence[str], num_nodes: int, c_prev_prev: int, c_prev: int, c: int,
                 reduction: bool, reduction_prev: bool) -> None:
        super().__init__()
        self.reduction = reduction
        self.pre0: nn.Module = (ops.FactorizedReduce(c_prev_prev, c) if reduction_prev
                                else ops.StdConv(c_prev_prev, c, 1, 1, 0))
        self.pre1 = ops.StdConv(c_prev, c, 1, 1, 0)
        self.edges = nn.ModuleList(
            nn.ModuleList(MixedOp(primitives, c, 2 if reduction and j < 2 else 1) for j in range(i + 2))
            for i in range(num_nodes))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: Sequence[torch.Tensor]) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        for node_edges, w in zip(self.edges, weights):
            inputs = zip(cast(nn.ModuleList, node_edges), states)  # one edge from each earlier state
            states.append(sum((edge(s, w[j]) for j, (edge, s) in enumerate(inputs)), torch.zeros(())))
        return torch.cat(states[2:], dim=1)


class Supernet(nn.Module):
    """``primitives`` are the search space's names; ``none`` is appended as DARTS does."""

    def __init__(self, primitives: Sequence[str], *, num_layers: int, num_nodes: int, init_channels: int,
                 stem_multiplier: int, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.primitives = [*primitives, ops.NONE]
        self.num_nodes = num_nodes
        self.has_reduction = num_layers > 1
        c = stem_multiplier * init_channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        c_prev_prev, c_prev, c = c, c, init_channels
        reductions = reduction_layers(num_layers)
        self.cells = nn.ModuleList()
        reduction_prev = False
        for layer in range(num_layers):
            reduction = layer in reductions
            if reduction:
                c *= 2
            self.cells.append(Cell(self.primitives, num_nodes, c_prev_prev, c_prev, c, reduction, reduction_prev))
            reduction_prev = reduction
            c_prev_prev, c_prev = c_prev, c * num_nodes
        self.classifier = nn.Linear(c_prev, num_classes)
        n_ops = len(self.primitives)
        self.alpha_normal = nn.ParameterList(nn.Parameter(1e-3 * torch.randn(i + 2, n_ops)) for i in range(num_nodes))
        self.alpha_reduce = nn.ParameterList(nn.Parameter(1e-3 * torch.randn(i + 2, n_ops))
                                             for i in range(num_nodes if self.has_reduction else 0))

    def alphas(self) -> Iterator[nn.Parameter]:
        yield from self.alpha_normal
        yield from self.alpha_reduce

    def weights(self) -> Iterator[nn.Parameter]:
        alpha_ids = {id(p) for p in self.alphas()}
        return (p for p in self.parameters() if id(p) not in alpha_ids)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normal = [F.softmax(a, dim=-1) for a in self.alpha_normal]
        reduce = [F.softmax(a, dim=-1) for a in self.alpha_reduce]
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, reduce if cell.reduction else normal)
        return self.classifier(F.adaptive_avg_pool2d(s1, 1).flatten(1))

    def _gene(self, alphas: Sequence[torch.Tensor], k: int = 2) -> list[list[tuple[str, int]]]:
        gene = []
        for alpha in alphas:
            weights = F.softmax(alpha.detach(), dim=-1)[:, :-1]  # the last primitive is "none"
            best, which = weights.max(dim=1)
            edges = torch.topk(best, min(k, len(best))).indices.tolist()
            gene.append([(self.primitives[int(which[e])], int(e)) for e in edges])
        return gene

    def genotype(self) -> Genotype:
        """Each node keeps its ``k = 2`` strongest incoming edges, each edge its strongest
        operation other than ``none``."""
        concat = range(2, 2 + self.num_nodes)
        return Genotype(normal=self._gene(list(self.alpha_normal)), normal_concat=concat,
                        reduce=self._gene(list(self.alpha_reduce)), reduce_concat=concat)
