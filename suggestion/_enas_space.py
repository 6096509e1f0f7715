"""ENAS's search space and reply format, as upstream's ENAS suggestion service has them.

Each operation of ``nasConfig.operations`` expands into the cartesian product of its
parameters' values; every combination is one operation id, numbered from 0 in the order of
the operations, then of ``itertools.product`` over the parameters as listed (the last
parameter varies fastest). An architecture holds, per layer ``i``, ``[op_id, skip_0, ...,
skip_{i-1}]``: the operation and one 0/1 flag per earlier layer that feeds it.

The trial gets two assignments, ``architecture`` and ``nn_config``, JSON with every ``"``
replaced by ``'`` (upstream's trial templates put them inside a JSON string unescaped).
No torch here: validation and the reply format work without the ``nas`` extra.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any, Sequence

from katib.api.model import NasConfig, ParameterSpec, ParameterType
from katib.api.nasvalue import parse_nas_value
from katib.errors import FieldError, ValidationError

__all__ = ["Operation", "NasSpace", "MAX_OPERATIONS", "architecture_text", "parse_architecture"]

# A softmax over more op ids than this is no longer a search an LSTM can learn within a
# trial budget, and the nn_config embedding would grow with it.
MAX_OPERATIONS = 10_000

Architecture = list[list[int]]
OptValue = str | int | float


@dataclass(frozen=True)
class Operation:
    """One op id: an operation type with one value for each of its parameters."""

    opt_id: int
    opt_type: str
    opt_params: dict[str, OptValue]

    def to_dict(self) -> dict[str, Any]:
        return {"opt_id": self.opt_id, "opt_type": self.opt_type, "opt_params": dict(self.opt_params)}


def _values(spec: ParameterSpec, path: str) -> list[OptValue]:
    """A parameter's values as upstream enumerates them: list items as text, int ranges as
    ints, double ranges by step as floats."""
    fs = spec.feasible_space
    kind = spec.parameter_type
    if kind in (ParameterType.CATEGORICAL, ParameterType.DISCRETE):
        # Upstream drops discrete parameters from the product; their values are kept here,
        # as text like categorical ones.
        if not fs.list:
            raise ValidationError(FieldError(f"{path}.feasibleSpace.list", "must list at least one value"))
        return list(fs.list)
    if kind not in (ParameterType.INT, ParameterType.DOUBLE):
        raise ValidationError(FieldError(f"{path}.parameterType", f"must be categorical, discrete, int or double, "
                                                                  f"got {kind!r}"))
    try:
        if kind == ParameterType.INT:
            low, high = int(float(fs.min or "")), int(float(fs.max or ""))
            step = int(float(fs.step)) if fs.step not in (None, "") else 1
        else:
            low_f, high_f = float(fs.min or ""), float(fs.max or "")
            step_f = float(fs.step) if fs.step not in (None, "") else 0.0
    except ValueError:
        raise ValidationError(FieldError(f"{path}.feasibleSpace", "min, max and step must be numbers")) from None
    if kind == ParameterType.INT:
        if step <= 0:
            raise ValidationError(FieldError(f"{path}.feasibleSpace.step", f"must be above 0, got {step}"))
        if (high - low) // step + 1 > MAX_OPERATIONS:
            raise ValidationError(FieldError(f"{path}.feasibleSpace", _too_many()))
        return list(range(low, high + 1, step))
    if step_f <= 0:
        raise ValidationError(FieldError(f"{path}.feasibleSpace.step", "ENAS enumerates every value of an operation's "
                                         "parameters: set a step above 0 for a double"))
    count = int((high_f - low_f) / step_f + 1e-9) + 1
    if count > MAX_OPERATIONS:
        raise ValidationError(FieldError(f"{path}.feasibleSpace", _too_many()))
    return [low_f + i * step_f for i in range(max(count, 0))]


def _too_many() -> str:
    return (f"gives more than {MAX_OPERATIONS} operation ids; list fewer values or use a larger step")


class NasSpace:
    """The op ids of a nasConfig and the graph around them. Raises ValidationError naming
    the field (``spec.nasConfig...``) when the nasConfig cannot be searched."""

    def __init__(self, nas: NasConfig | None, path: str = "spec.nasConfig") -> None:
        if nas is None:
            raise ValidationError(FieldError(path, "ENAS searches architectures: give spec.nasConfig "
                                                   "(graphConfig and operations) instead of spec.parameters"))
        graph = nas.graph_config
        gpath = f"{path}.graphConfig"
        if graph is None or not graph.num_layers or graph.num_layers < 1:
            got = "nothing" if graph is None or graph.num_layers is None else graph.num_layers
            raise ValidationError(FieldError(f"{gpath}.numLayers", f"must be a whole number above 0, got {got}"))
        for key, sizes in (("inputSizes", graph.input_sizes), ("outputSizes", graph.output_sizes)):
            if not sizes:
                raise ValidationError(FieldError(f"{gpath}.{key}", "must list at least one size: ENAS builds the "
                                                 "network from it (e.g. inputSizes [32, 32, 3], outputSizes [10])"))
        self.num_layers = int(graph.num_layers)
        self.input_sizes = [int(s) for s in graph.input_sizes]
        self.output_sizes = [int(s) for s in graph.output_sizes]
        if not nas.operations:
            raise ValidationError(FieldError(f"{path}.operations", "must list at least one operation"))
        self.operations: list[Operation] = []
        for i, op in enumerate(nas.operations):
            opath = f"{path}.operations[{i}]"
            if not op.operation_type:
                raise ValidationError(FieldError(f"{opath}.operationType", "must be specified (e.g. convolution)"))
            if not op.parameters:
                raise ValidationError(FieldError(f"{opath}.parameters", "must list at least one parameter "
                                                 "(e.g. filter_size with a list of sizes)"))
            names = [p.name or "" for p in op.parameters]
            values = [_values(p, f"{opath}.parameters[{j}]") for j, p in enumerate(op.parameters)]
            for combo in itertools.product(*values):
                if len(self.operations) >= MAX_OPERATIONS:
                    raise ValidationError(FieldError(f"{path}.operations", _too_many()))
                self.operations.append(Operation(len(self.operations), op.operation_type, dict(zip(names, combo))))

    @property
    def num_operations(self) -> int:
        return len(self.operations)

    def nn_config_text(self, architecture: Architecture) -> str:
        """Upstream's ``nn_config`` assignment for ``architecture``: the graph and the
        operations its layers use (in layer order, each once)."""
        embedding: dict[int, dict[str, Any]] = {}
        for layer in architecture:
            embedding[layer[0]] = self.operations[layer[0]].to_dict()
        config = {"num_layers": self.num_layers, "input_sizes": self.input_sizes,
                  "output_sizes": self.output_sizes, "embedding": embedding}
        return json.dumps(config).replace('"', "'")

    def check(self, architecture: Any) -> Architecture | None:
        """``architecture`` if it is one of this space's (shape, op ids, 0/1 skips), else None."""
        if not isinstance(architecture, list) or len(architecture) != self.num_layers:
            return None
        for i, layer in enumerate(architecture):
            if not isinstance(layer, list) or len(layer) != i + 1:
                return None
            if any(not isinstance(v, int) or isinstance(v, bool) for v in layer):
                return None
            if not 0 <= layer[0] < self.num_operations or any(v not in (0, 1) for v in layer[1:]):
                return None
        return architecture


def architecture_text(architecture: Sequence[Sequence[int]]) -> str:
    """Upstream's ``architecture`` assignment: ``[[op], [op, skip], ...]``."""
    return json.dumps([list(layer) for layer in architecture]).replace('"', "'")


def parse_architecture(text: str) -> Any:
    """The decoded ``architecture`` assignment of a trial (quotes a template may have wrapped
    around it removed), or None when it does not parse."""
    try:
        return parse_nas_value(text)
    except (ValueError, SyntaxError):
        return None
