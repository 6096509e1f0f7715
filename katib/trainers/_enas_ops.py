"""The ENAS child network in PyTorch, built as upstream's trial builds it.

Layer ``l`` (1-based) takes the previous layer's output and, for each skip flag ``i`` set
in its architecture entry, the output of layer ``i`` (0 being the network's input); those
are zero-padded to the largest height and width and concatenated along channels, then fed
to the layer's operation:

* ``convolution``: ReLU, convolution (``num_filter``, ``filter_size``, ``stride``, "same"
  padding), batch norm;
* ``separable_convolution``: ReLU, depthwise convolution (``depth_multiplier``) then a 1x1
  to ``num_filter``, batch norm;
* ``depthwise_convolution``: ReLU, depthwise convolution (``depth_multiplier``), batch norm;
* ``reduction``: ``max_pooling`` or ``avg_pooling`` of ``pool_size`` (stride ``stride`` or
  the pool size); a dimension already 1 is not reduced (identity), and a pool larger than
  what is left shrinks to it.

The last layer's output goes through a ReLU, is averaged over space, dropped out (0.4) and
mapped to the classes. Parameter defaults are upstream's (64 filters, size 3, stride 1,
multiplier 1, max pooling of 2). This module imports torch at the top: import it only after ``require_torch()``.

For ENAS weight sharing, :meth:`ChildNetwork.shared_keys` names every tensor (parameters and
batch-norm running statistics) by what makes it reusable across child networks: the layer, its
operation id and its input channels (``layer2.op1.in17.3.weight``), and the classifier by its
shape (``classifier.16x10.weight``). The network has no separate stem: the first layer reads
the images.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

if TYPE_CHECKING:
    from katib.trainers.enas import LayerSpec

__all__ = ["ChildNetwork"]


class _SamePad(nn.Module):
    """TensorFlow's "same" padding: output size ceil(input / stride), for any kernel and stride."""

    def __init__(self, kernel: int, stride: int) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads: list[int] = []
        for size in (x.shape[3], x.shape[2]):  # F.pad wants the last dimension first
            total = max((math.ceil(size / self.stride) - 1) * self.stride + self.kernel - size, 0)
            pads += [total // 2, total - total // 2]
        return F.pad(x, pads) if any(pads) else x


class _Pool(nn.Module):
    def __init__(self, kind: str, size: int, stride: int | None) -> None:
        super().__init__()
        self.kind, self.size, self.stride = kind, size, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2], x.shape[3]
        if h == 1 or w == 1:
            return x  # upstream: an input that cannot be reduced passes through
        kernel = (min(self.size, h), min(self.size, w))
        stride = kernel if self.stride is None else (self.stride, self.stride)
        pool = F.max_pool2d if self.kind == "max_pooling" else F.avg_pool2d
        return pool(x, kernel, stride)


def _conv_block(spec: LayerSpec, in_ch: int) -> tuple[nn.Module, int]:
    k, s, dm = spec.int_param("filter_size"), spec.int_param("stride"), spec.int_param("depth_multiplier")
    if spec.op_type == "convolution":
        out = spec.int_param("num_filter")
        convs: list[nn.Module] = [nn.Conv2d(in_ch, out, k, s, bias=False)]
    elif spec.op_type == "separable_convolution":
        out = spec.int_param("num_filter")
        convs = [nn.Conv2d(in_ch, in_ch * dm, k, s, groups=in_ch, bias=False), nn.Conv2d(in_ch * dm, out, 1, bias=False)]
    else:  # depthwise_convolution
        out = in_ch * dm
        convs = [nn.Conv2d(in_ch, out, k, s, groups=in_ch, bias=False)]
    return nn.Sequential(nn.ReLU(), _SamePad(k, s), *convs, nn.BatchNorm2d(out)), out


class ChildNetwork(nn.Module):
    """The network of ``layers`` on ``input_shape`` (channels, height, width) images."""

    def __init__(self, layers: list[LayerSpec], input_shape: tuple[int, int, int], num_classes: int,
                 dropout: float = 0.4) -> None:
        super().__init__()
        if not layers:
            raise ValueError("a child network needs at least one layer")
        self.skips = [spec.skips for spec in layers]
        channels = [input_shape[0]]
        ops: list[nn.Module] = []
        self._op_prefixes: list[str] = []
        for n, spec in enumerate(layers, 1):
            in_ch = channels[-1] + sum(channels[i] for i in spec.skips)
            op_name = f"op{spec.op_id}" if spec.op_id is not None else spec.op_type
            self._op_prefixes.append(f"layer{n}.{op_name}.in{in_ch}")
            if spec.op_type == "reduction":
                stride = spec.params.get("stride")
                kind = str(spec.params.get("reduction_type", "max_pooling"))
                ops.append(_Pool(kind, spec.int_param("pool_size"), None if stride is None else int(stride)))
                channels.append(in_ch)
            else:
                op, out = _conv_block(spec, in_ch)
                ops.append(op)
                channels.append(out)
        self.ops = nn.ModuleList(ops)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(channels[-1], num_classes)

    def shared_keys(self) -> dict[str, str]:
        """Each state-dict name mapped to its key in the shared weight store: the same
        operation at the same layer on the same input channels gets the same key in every
        child network of an experiment (the index inside the operation's block is fixed by its
        type); the classifier is keyed by its input and output sizes."""
        keys: dict[str, str] = {}
        for name in self.state_dict():
            head, _, rest = name.partition(".")
            if head == "ops":
                index, _, tail = rest.partition(".")
                keys[name] = f"{self._op_prefixes[int(index)]}.{tail}"
            elif head == "classifier":
                keys[name] = f"classifier.{self.classifier.in_features}x{self.classifier.out_features}.{rest}"
        return keys

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [x]
        for op, skips in zip(self.ops, self.skips):
            outputs.append(op(_concat([outputs[-1], *(outputs[i] for i in skips)])))
        # The last block ends in batch norm (no non-linearity); ReLU before pooling, as ENAS's
        # child networks do, or a one-layer network would be linear in its input.
        pooled = F.relu(outputs[-1]).mean(dim=(2, 3))
        return self.classifier(self.dropout(pooled))  # logits: the loss applies the softmax


def _concat(inputs: list[torch.Tensor]) -> torch.Tensor:
    """Inputs zero-padded (centred, the odd pixel at the end) to the largest height and width,
    then stacked along channels, as upstream's ``concat``."""
    if len(inputs) == 1:
        return inputs[0]
    h = max(t.shape[2] for t in inputs)
    w = max(t.shape[3] for t in inputs)
    padded = []
    for t in inputs:
        dh, dw = h - t.shape[2], w - t.shape[3]
        padded.append(F.pad(t, [dw // 2, dw - dw // 2, dh // 2, dh - dh // 2]) if dh or dw else t)
    return torch.cat(padded, dim=1)
