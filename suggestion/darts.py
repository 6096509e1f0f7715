"""DARTS: differentiable architecture search (reference §7.8), wire-compatible with upstream.

The search itself runs inside one trial: the supernet trainer (``python -m
katib.trainers.darts``) relaxes every edge of a cell into a softmax-weighted mix of the
candidate operations and learns those weights by gradient descent. The algorithm only hands
that trial what it needs, as upstream's service does, in three assignments:

- ``algorithm-settings``: every setting with upstream's defaults filled in, as JSON with
  ``'`` for ``"`` (values the user set stay the strings they were given, ``"None"`` becomes
  ``null``), e.g. ``{'num_epochs': '1', 'w_lr': 0.025, ...}``;
- ``search-space``: the candidate operations as a JSON list with ``'`` quotes: one
  ``<operationType>_<k>x<k>`` per filter size ``k`` in the operation's first parameter's
  list, ``skip_connection`` as is (it takes no parameters), e.g.
  ``['max_pooling_3x3', 'skip_connection']``;
- ``num-layers``: ``nasConfig.graphConfig.numLayers``.

Every trial gets the same three values, so a batch of ``n`` holds ``n`` equal assignments:
this is the documented exception to the "n distinct points" rule of ``suggestion.base``
(DARTS' trials are not points of a space). A second trial would repeat the first, so the
experiment must set ``maxTrialCount: 1`` as upstream's examples do; validation requires it.

Unlike upstream's service, unknown setting names are rejected (upstream silently passes
them to the trial), and the operations are checked before anything runs.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Mapping, Sequence

from katib.api.model import NasConfig, ObjectiveSpec, ParameterType
from katib.api.space import SearchSpace
from katib.errors import FieldError, ValidationError
from suggestion.base import Algorithm, Assignment, TrialResult, check_known, parse_float, parse_int

__all__ = ["Darts", "DEFAULTS", "search_space", "algorithm_settings"]

# Upstream's defaults, in upstream's order (the order of the ``algorithm-settings`` dict).
DEFAULTS: dict[str, Any] = {
    "num_epochs": 50,
    "w_lr": 0.025,
    "w_lr_min": 0.001,
    "w_momentum": 0.9,
    "w_weight_decay": 3e-4,
    "w_grad_clip": 5.0,
    "alpha_lr": 3e-4,
    "alpha_weight_decay": 1e-3,
    "batch_size": 128,
    "num_workers": 4,
    "init_channels": 16,
    "print_step": 50,
    "num_nodes": 4,
    "stem_multiplier": 3,
}

# Operations that take no filter size (upstream's trainer builds ``skip_connection`` as is).
PARAMETERLESS = ("skip_connection",)

_NAS = "spec.nasConfig"


def algorithm_settings(settings: Mapping[str, str]) -> dict[str, Any]:
    """Upstream's ``get_algorithm_settings``: defaults overridden by the given texts."""
    merged: dict[str, Any] = dict(DEFAULTS)
    for name, value in settings.items():
        merged[name] = None if value == "None" else value
    return merged


def search_space(nas: NasConfig) -> list[str]:
    """Upstream's ``get_search_space``: the primitive names the supernet mixes."""
    primitives: list[str] = []
    for op in nas.operations:
        kind = op.operation_type or ""
        if kind in PARAMETERLESS:  # named as is, whatever parameters it lists
            primitives.append(kind)
            continue
        for size in op.parameters[0].feasible_space.list or []:
            primitives.append(f"{kind}_{size}x{size}")
    return primitives


def _quoted(value: Any) -> str:
    # Upstream's json.dumps(...).replace('"', "'"): the text goes into a trial template
    # between literal double quotes.
    return json.dumps(value).replace('"', "'")


def _check_nas(nas: NasConfig | None) -> None:
    if nas is None:
        raise ValidationError(FieldError(_NAS, "DARTS searches an architecture: give spec.nasConfig "
                                               "(graphConfig.numLayers and operations) instead of spec.parameters"))
    errors: list[FieldError] = []
    layers = nas.graph_config.num_layers if nas.graph_config else None
    if layers is None or layers < 1:
        errors.append(FieldError(f"{_NAS}.graphConfig.numLayers",
                                 f"must be a whole number of cells above 0, got {layers if layers is not None else 'nothing'}"))
    if not nas.operations:
        errors.append(FieldError(f"{_NAS}.operations", "must list at least one candidate operation, "
                                                       "e.g. max_pooling with filter_size [\"3\"]"))
    for i, op in enumerate(nas.operations):
        path = f"{_NAS}.operations[{i}]"
        kind = op.operation_type or ""
        if not kind:
            errors.append(FieldError(f"{path}.operationType", "must name the operation, e.g. separable_convolution"))
            continue
        if kind in PARAMETERLESS:
            continue
        if not op.parameters:
            errors.append(FieldError(f"{path}.parameters", f"{kind} needs its filter sizes: add a categorical "
                                     "parameter filter_size with a list such as [\"3\", \"5\"] (only "
                                     f"{', '.join(PARAMETERLESS)} takes none)"))
            continue
        first = op.parameters[0]
        ppath = f"{path}.parameters[0]"
        if first.parameter_type not in (ParameterType.CATEGORICAL, ParameterType.DISCRETE):
            errors.append(FieldError(f"{ppath}.parameterType", f"DARTS reads the filter sizes from the first "
                                     f"parameter's list: make it categorical, got {first.parameter_type!r}"))
            continue
        sizes = first.feasible_space.list or []
        if not sizes:
            errors.append(FieldError(f"{ppath}.feasibleSpace.list", "must list at least one filter size, e.g. [\"3\"]"))
        for j, size in enumerate(sizes):
            if not size.isdigit() or int(size) < 1:
                errors.append(FieldError(f"{ppath}.feasibleSpace.list[{j}]",
                                         f"a filter size must be a whole number above 0 (e.g. \"3\"), got {size!r}"))
    if errors:
        raise ValidationError(errors)


class Darts(Algorithm):
    """Hands the one DARTS trial its settings, primitives and layer count (module docstring)."""

    name: ClassVar[str] = "darts"
    settings: ClassVar[Mapping[str, str | None]] = {k: repr(v) if isinstance(v, float) else str(v)
                                                    for k, v in DEFAULTS.items()}

    def __init__(self, space: SearchSpace, objective: ObjectiveSpec, settings: Mapping[str, str], *,
                 max_trial_count: int | None = None, parallel_trial_count: int | None = None) -> None:
        super().__init__(space, objective, settings, max_trial_count=max_trial_count,
                         parallel_trial_count=parallel_trial_count)
        nas = space.nas
        if nas is None:  # validate_settings rejects this; the constructor must not half-work
            raise ValidationError(FieldError(_NAS, "DARTS needs spec.nasConfig"))
        layers = nas.graph_config.num_layers if nas.graph_config else None
        self._values = {
            "algorithm-settings": _quoted(algorithm_settings(settings)),
            "search-space": _quoted(search_space(nas)),
            "num-layers": str(layers or 0),
        }

    @classmethod
    def validate_settings(cls, settings: Mapping[str, str], space: SearchSpace, objective: ObjectiveSpec, *,
                          max_trial_count: int | None = None, parallel_trial_count: int | None = None) -> None:
        check_known(cls.name, settings, cls.settings)
        # Upstream's ranges (reference §7.8).
        parse_int(settings, "num_epochs", 50, min_value=1)
        for key in ("w_lr", "w_lr_min", "alpha_lr", "w_weight_decay", "alpha_weight_decay",
                    "w_momentum", "w_grad_clip"):
            parse_float(settings, key, None, min_value=0.0)
        if settings.get("batch_size") != "None":
            parse_int(settings, "batch_size", 128, min_value=1)
        parse_int(settings, "num_workers", 4, min_value=0)
        for key in ("init_channels", "print_step", "num_nodes", "stem_multiplier"):
            parse_int(settings, key, None, min_value=1)
        _check_nas(space.nas)
        if max_trial_count != 1:
            got = "nothing" if max_trial_count is None else max_trial_count
            raise ValidationError(FieldError("spec.maxTrialCount", (
                f"must be 1 for DARTS, got {got}: one trial searches the whole architecture and a second "
                "would repeat it with the same assignments")))

    def tell(self, trials: Sequence[TrialResult]) -> None:
        """Nothing to learn: the search happens inside the trial."""

    def ask(self, n: int) -> list[Assignment]:
        return [Assignment(dict(self._values)) for _ in range(n)]

