"""The straightforward dataclass <-> dict conversion ``katib.api._serde`` replaced (kept
as a test oracle): ``tests/api/test_serde.py`` checks that the per-class plans decode,
report errors and encode exactly as this does. Deliberate changes of behaviour are made
here too: null list items and map values are errors, integers are int32, and messages
name types in YAML's words."""

# ruff: noqa
# mypy: ignore-errors
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar, Union

from katib.errors import FieldError

T = TypeVar("T")

_HINTS: dict[type, dict[str, Any]] = {}


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def wire_name(f: dataclasses.Field[Any]) -> str:
    return str(f.metadata.get("json", camel(f.name)))


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


_TYPE_WORDS = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
_KINDS = {type(None): "null", bool: "true/false", int: "integer", float: "number", str: "string", list: "list",
          dict: "object"}


def _kind(value: Any) -> str:
    return _KINDS.get(type(value), type(value).__name__)


def _shown(value: Any) -> str:
    if isinstance(value, int) and value.bit_length() > 240:
        return "a number of more than 60 digits"
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:54]}...{text[-3:]}"


def _expected(tp: Any) -> str:
    tp, _ = _strip_optional(tp)
    if typing.get_origin(tp) is list:
        return "a list"
    if typing.get_origin(tp) is dict or dataclasses.is_dataclass(tp):
        return "an object"
    return _TYPE_WORDS.get(tp, "a value")


def _items(item_tp: Any, pairs: Any, errors: list[FieldError]) -> list[tuple[Any, Any]]:
    """(key, decoded) of (key, path, value) pairs, nulls and undecodable values left out."""
    out = []
    for key, path, v in pairs:
        if v is None and _strip_optional(item_tp)[0] is not Any:
            errors.append(FieldError(path, f"must be {_expected(item_tp)}, got null; remove the entry or fill it in"))
            continue
        decoded = _decode(item_tp, v, path, errors)
        if decoded is not None or v is None:
            out.append((key, decoded))
    return out


def _decode(tp: Any, value: Any, path: str, errors: list[FieldError]) -> Any:
    tp, optional = _strip_optional(tp)
    if value is None:
        return None
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, dict):
            errors.append(FieldError(path, f"must be an object, got {_kind(value)}"))
            return None
        return from_dict(tp, value, path, errors)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, list):
            errors.append(FieldError(path, f"must be a list, got {_kind(value)}"))
            return []
        return [v for _, v in _items(item_tp, ((i, f"{path}[{i}]", v) for i, v in enumerate(value)), errors)]
    if origin is dict:
        if not isinstance(value, dict):
            errors.append(FieldError(path, f"must be an object, got {_kind(value)}"))
            return {}
        _, val_tp = typing.get_args(tp)
        return dict(_items(val_tp, ((str(k), _join(path, str(k)), v) for k, v in value.items()), errors))
    if tp is str:
        # Upstream stores every number as a string; YAML authors often write them bare.
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            try:
                return _number_text(value)
            except ValueError:
                errors.append(FieldError(path, f"must be a string, got {_shown(value)}"))
                return None
        if not isinstance(value, str):
            errors.append(FieldError(path, f"must be a string, got {_kind(value)}"))
            return None
        return value
    if tp is bool:
        if not isinstance(value, bool):
            errors.append(FieldError(path, f"must be true or false, got {_kind(value)}"))
            return None
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            errors.append(FieldError(path, f"must be an integer, got {_kind(value)}"))
            return None
        try:
            number = value if isinstance(value, int) else float(value)
            if number != int(number):
                raise ValueError
        except (ValueError, OverflowError):
            errors.append(FieldError(path, f"must be an integer, got {_shown(value)}"))
            return None
        if not -(2**31) <= int(number) < 2**31:
            errors.append(FieldError(path, f"must be an integer from -2147483648 to 2147483647, got {_shown(value)}"))
            return None
        return int(number)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            errors.append(FieldError(path, f"must be a number, got {_kind(value)}"))
            return None
        try:
            return float(value)
        except (ValueError, OverflowError):
            errors.append(FieldError(path, f"must be a number, got {_shown(value)}"))
            return None
    return value


def _number_text(value: int | float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return repr(value)
    return str(value)


def from_dict(cls: type[T], data: dict[str, Any], path: str = "", errors: list[FieldError] | None = None) -> T:
    """Decode ``data`` into ``cls``. Without an ``errors`` list, raise ValidationError on problems."""
    from katib.errors import ValidationError

    own = errors is None
    errs: list[FieldError] = [] if errors is None else errors
    if not isinstance(data, dict):
        errs.append(FieldError(path, f"must be an object, got {_kind(data)}"))
        data = {}
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    known: set[str] = set()
    extra_field = None
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.metadata.get("extra"):
            extra_field = f
            continue
        key = wire_name(f)
        known.add(key)
        if key in data:
            decoded = _decode(hints[f.name], data[key], _join(path, key), errs)
            if decoded is not None:
                kwargs[f.name] = decoded
    unknown = {k: v for k, v in data.items() if k not in known}
    if extra_field is not None:
        kwargs[extra_field.name] = unknown
    else:
        for key in unknown:
            choices = ", ".join(sorted(known))
            errs.append(FieldError(_join(path, key), f"unknown field; known fields here are: {choices}"))
    obj = cls(**kwargs)
    if own and errs:
        raise ValidationError(errs)
    return obj


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_dict(value)
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    return value


def to_dict(obj: Any) -> dict[str, Any]:
    """Encode a dataclass with wire names, leaving out unset (None) fields and empty
    lists/dicts that default to empty, as Go's ``omitempty`` does."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.metadata.get("extra"):
            out.update(_encode(value or {}))
            continue
        if value is None:
            continue
        if (isinstance(value, (list, dict)) and not value) and not f.metadata.get("keep_empty"):
            continue
        out[wire_name(f)] = _encode(value)
    return out
