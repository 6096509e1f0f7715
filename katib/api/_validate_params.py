"""Search-space rules: ``spec.parameters`` (reference §4.2 rule 14) and ``spec.nasConfig``.

Upstream only checks types, distributions and which feasibleSpace fields are present. We
also check what the algorithms need (reference §13 item 11): numbers parse, int bounds are
whole numbers, min is not above max, step is positive and fits the range, lists are
non-empty without duplicates, log distributions have min > 0, names are unique, and the
NAS graph has a shape. ``min == max`` stays legal: upstream's hyperband example fixes its
resource parameter that way.
"""

from __future__ import annotations

import math
import re

from katib.api.model import Distribution, NasConfig, ParameterSpec, ParameterType
from katib.errors import FieldError

__all__ = ["check_parameters", "check_nas_config"]

_INT = re.compile(r"[+-]?\d+")
_LIST_TYPES = (ParameterType.CATEGORICAL, ParameterType.DISCRETE)
_RANGE_TYPES = (ParameterType.INT, ParameterType.DOUBLE)
SKIP_CONNECTION = "skip_connection"  # DARTS's one operation without parameters


def _number(text: str | None, path: str, what: str, integer: bool, errors: list[FieldError]) -> float | None:
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        errors.append(FieldError(path, f"{what} must be a number, got {text!r}"))
        return None
    if not math.isfinite(value):
        errors.append(FieldError(path, f"{what} must be a finite number, got {text!r}"))
        return None
    if integer and not _INT.fullmatch(text.strip()):
        hint = f"; write {int(value)}" if value.is_integer() else "; use a double parameter for fractions"
        errors.append(FieldError(path, f"{what} must be a whole number for an int parameter, got {text!r}{hint}"))
        return None
    return value


def _fmt(value: float) -> str:
    return f"{value:.12g}"  # 0.1 - 0.01 prints as 0.09, not 0.09000000000000001


def _check_range(p: ParameterSpec, path: str, errors: list[FieldError]) -> None:
    fs = p.feasible_space
    fpath = f"{path}.feasibleSpace"
    is_int = p.parameter_type == ParameterType.INT
    if fs.list:
        errors.append(FieldError(f"{fpath}.list", f"feasibleSpace.list is not supported for parameterType: "
                                 f"{p.parameter_type}; give min and max, or make the parameter discrete"))
    for key, text in (("min", fs.min), ("max", fs.max)):
        if not text:
            errors.append(FieldError(f"{fpath}.{key}", f"feasibleSpace.{key} must be specified for "
                                     f"parameterType: {p.parameter_type}"))
    low = _number(fs.min, f"{fpath}.min", "min", is_int, errors)
    high = _number(fs.max, f"{fpath}.max", "max", is_int, errors)
    step = _number(fs.step, f"{fpath}.step", "step", is_int, errors)
    if low is not None and high is not None and low > high:
        errors.append(FieldError(f"{fpath}.min", f"min ({fs.min}) must be below max ({fs.max}); swap them"))
    if step is not None:
        if step <= 0:
            errors.append(FieldError(f"{fpath}.step", f"step must be greater than 0, got {fs.step!r}"))
        elif low is not None and high is not None and high > low and step > high - low:
            errors.append(FieldError(f"{fpath}.step", f"step ({fs.step}) is larger than the range max - min "
                                     f"({_fmt(high - low)}); use a step of at most {_fmt(high - low)}"))
    if fs.distribution in (Distribution.LOG_UNIFORM, Distribution.LOG_NORMAL) and low is not None and low <= 0:
        errors.append(FieldError(f"{fpath}.min", f"{fs.distribution} needs min > 0, got {fs.min}: the logarithm "
                                 "of zero or a negative number does not exist; raise min or use uniform"))


def _check_list(p: ParameterSpec, path: str, errors: list[FieldError]) -> None:
    fs = p.feasible_space
    fpath = f"{path}.feasibleSpace"
    if fs.min or fs.max or fs.step:
        errors.append(FieldError(fpath, f"feasibleSpace .max, .min and .step is not supported for parameterType: "
                                 f"{p.parameter_type}; list the values in feasibleSpace.list"))
    values = fs.list or []
    if not values:
        errors.append(FieldError(f"{fpath}.list", f"must list at least one value for a {p.parameter_type} parameter"))
    seen: dict[str, int] = {}
    for i, value in enumerate(values):
        if value in seen:
            errors.append(FieldError(f"{fpath}.list[{i}]", f"duplicate value {value!r} (also list[{seen[value]}]); "
                                     "remove it"))
            continue
        seen[value] = i
        if p.parameter_type == ParameterType.DISCRETE:
            try:
                ok = math.isfinite(float(value))
            except ValueError:
                ok = False
            if not ok:
                errors.append(FieldError(f"{fpath}.list[{i}]", f"discrete values must be numbers, got {value!r}; "
                                         "use a categorical parameter for text values"))


def _check_parameter(p: ParameterSpec, path: str, errors: list[FieldError]) -> None:
    if not p.name:
        errors.append(FieldError(f"{path}.name", "must be specified: trialParameters refer to parameters by name"))
    if p.parameter_type not in ParameterType.ALL:
        errors.append(FieldError(f"{path}.parameterType", f"parameterType: {p.parameter_type} is not supported; "
                                 f"use one of {', '.join(ParameterType.ALL)}"))
    fs = p.feasible_space
    if fs.distribution and fs.distribution not in Distribution.ALL:
        errors.append(FieldError(f"{path}.feasibleSpace.distribution",
                                 f"distribution: {fs.distribution} is not supported; use one of "
                                 f"{', '.join(Distribution.ALL)}"))
    if not (fs.min or fs.max or fs.step or fs.list or fs.distribution):
        if p.parameter_type in _LIST_TYPES:
            errors.append(FieldError(f"{path}.feasibleSpace", "feasibleSpace must be specified: list at "
                                     f"least one value for a {p.parameter_type} parameter, e.g. list: ['3', '5']"))
        else:
            errors.append(FieldError(f"{path}.feasibleSpace", "feasibleSpace must be specified: give min and max"
                                     + (f" for a {p.parameter_type} parameter" if p.parameter_type else "")))
        return
    if p.parameter_type in _RANGE_TYPES:
        _check_range(p, path, errors)
    elif p.parameter_type in _LIST_TYPES:
        _check_list(p, path, errors)


def check_parameters(parameters: list[ParameterSpec], path: str) -> list[FieldError]:
    """Every problem of a parameter list; ``path`` is e.g. ``spec.parameters``."""
    errors: list[FieldError] = []
    first: dict[str, int] = {}
    for i, p in enumerate(parameters):
        ppath = f"{path}[{i}]"
        _check_parameter(p, ppath, errors)
        if p.name and p.name in first:
            errors.append(FieldError(f"{ppath}.name", f"duplicate parameter name {p.name!r} (also {path}[{first[p.name]}]); "
                                     "parameter names must be unique"))
        elif p.name:
            first[p.name] = i
    return errors


def check_nas_config(nas: NasConfig, path: str, algorithm: str | None) -> list[FieldError]:
    """Shape of a NAS search space. Upstream leaves this to the NAS services (reference §1.5).

    ``inputSizes``/``outputSizes`` are required for ENAS, which builds the network from them;
    DARTS fixes its own input (its upstream examples give neither).
    """
    errors: list[FieldError] = []
    gpath = f"{path}.graphConfig"
    graph = nas.graph_config
    if graph is None:
        errors.append(FieldError(gpath, "must be specified with numLayers (and inputSizes/outputSizes for ENAS)"))
    else:
        if graph.num_layers is None or graph.num_layers <= 0:
            got = "nothing" if graph.num_layers is None else graph.num_layers
            errors.append(FieldError(f"{gpath}.numLayers", f"must be a whole number above 0, got {got}"))
        for key, sizes in (("inputSizes", graph.input_sizes), ("outputSizes", graph.output_sizes)):
            if not sizes and algorithm == "enas":
                errors.append(FieldError(f"{gpath}.{key}", f"must list at least one size: ENAS builds the network's "
                                         f"{'input' if key == 'inputSizes' else 'output'} from it (e.g. [32, 32, 3])"))
            for i, size in enumerate(sizes):
                if size is None or size <= 0:
                    errors.append(FieldError(f"{gpath}.{key}[{i}]", f"sizes must be above 0, got {size}"))
    if not nas.operations:
        errors.append(FieldError(f"{path}.operations", "must list at least one operation"))
    first: dict[str, int] = {}
    for i, op in enumerate(nas.operations):
        opath = f"{path}.operations[{i}]"
        if not op.operation_type:
            errors.append(FieldError(f"{opath}.operationType", "must be specified (e.g. convolution)"))
        elif op.operation_type in first:
            errors.append(FieldError(f"{opath}.operationType", f"duplicate operationType {op.operation_type!r} "
                                     f"(also operations[{first[op.operation_type]}]); merge them"))
        else:
            first[op.operation_type] = i
        if not op.parameters and (algorithm == "enas" or op.operation_type != SKIP_CONNECTION):
            # The operation's parameters are what its variants are made of (ENAS: one op id per
            # combination; DARTS: one primitive per filter size): none means no variant at all.
            errors.append(FieldError(f"{opath}.parameters", (
                "must list at least one parameter, e.g. filter_size with feasibleSpace.list ['3', '5']"
                + ("" if algorithm == "enas" else f"; only {SKIP_CONNECTION} takes none (DARTS)"))))
        errors.extend(check_parameters(op.parameters, f"{opath}.parameters"))
    return errors
