"""Dataclass <-> JSON-shaped dict conversion with upstream's camelCase names.

Each dataclass field's wire name is its ``json`` metadata or the camelCase of its name.
Decoding collects every type problem as a FieldError with its path instead of stopping at
the first, so ``katib validate`` can report them all at once.

What a class's fields mean on the wire (wire name, how to decode its type, flags) is
worked out once per class and kept in a ``_Plan``: the store decodes and encodes every
trial it reads or writes, and resolving type hints, wire names and ``typing`` origins per
field per call was most of that cost. ``tests/api/test_serde.py`` checks the results
against the straightforward implementation this replaced.
"""

from __future__ import annotations

import dataclasses
import threading
import types
import typing
from typing import Any, Callable, NamedTuple, TypeVar, Union

from katib.errors import FieldError

T = TypeVar("T")

# Decodes a value that is not None; ``path`` names it in errors. None from a decoder means
# "leave the field at its default" (a type problem was recorded, or the value was null).
_Decoder = Callable[[Any, str, list[FieldError]], Any]


class _Field(NamedTuple):
    name: str
    key: str  # the wire name
    decode: _Decoder | None  # None: the value is kept as it is (``Any`` and unchecked types)
    keep_empty: bool  # encode an empty list/dict instead of leaving it out


class _Plan(NamedTuple):
    fields: tuple[_Field, ...]  # in declaration order, without the extra field
    extra: str | None  # the field that keeps unknown keys, if the class has one
    known: frozenset[str]
    choices: str  # the known wire names, for "unknown field" errors
    encode: tuple[_Field | str, ...]  # every field in declaration order; the extra one by name


_PLANS: dict[type, _Plan] = {}
_PLANS_LOCK = threading.Lock()


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def wire_name(f: dataclasses.Field[Any]) -> str:
    return str(f.metadata.get("json", camel(f.name)))


def _plan(cls: type) -> _Plan:
    plan = _PLANS.get(cls)
    if plan is None:
        with _PLANS_LOCK:
            plan = _PLANS.get(cls)
            if plan is None:
                plan = _PLANS[cls] = _make_plan(cls)
    return plan


def _make_plan(cls: type) -> _Plan:
    hints = typing.get_type_hints(cls)
    fields: list[_Field] = []
    encode: list[_Field | str] = []
    extra: str | None = None
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.metadata.get("extra"):
            extra = f.name  # decoding fills the last one, as it always did
            encode.append(f.name)
            continue
        fields.append(_Field(f.name, wire_name(f), _decoder(hints[f.name]), bool(f.metadata.get("keep_empty"))))
        encode.append(fields[-1])
    known = frozenset(f.key for f in fields)
    return _Plan(tuple(fields), extra, known, ", ".join(sorted(known)), tuple(encode))


INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
_KINDS: dict[type, str] = {type(None): "null", bool: "true/false", int: "integer", float: "number", str: "string",
                           list: "list", dict: "object"}


def kind_of(value: Any) -> str:
    """What ``value`` is, in the words of YAML and JSON (``null``, ``object``...)."""
    return _KINDS.get(type(value), type(value).__name__)


def shown(value: Any, limit: int = 60) -> str:
    """``repr(value)``, shortened: messages quote what was given, not a megabyte of it."""
    if isinstance(value, int) and value.bit_length() > 4 * limit:
        return f"a number of more than {limit} digits"  # repr() refuses ints past 4300 digits
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 6]}...{text[-3:]}"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


# -- decoders, one per annotated type ------------------------------------------------------

def _decoder(tp: Any) -> _Decoder | None:
    tp, _ = _strip_optional(tp)
    if tp is Any:
        return None
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _object_decoder(tp)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        return _list_decoder(_decoder(item_tp), _expected(item_tp))
    if origin is dict:
        _, val_tp = typing.get_args(tp)
        return _dict_decoder(_decoder(val_tp), _expected(val_tp))
    return _SCALARS.get(tp)  # anything else is kept as it is


def _expected(tp: Any) -> str:
    """What a value of type ``tp`` is called in messages ("an object", "a string")."""
    tp, _ = _strip_optional(tp)
    origin = typing.get_origin(tp)
    if origin is list:
        return "a list"
    if origin is dict or dataclasses.is_dataclass(tp):
        return "an object"
    return {str: "a string", bool: "true or false", int: "an integer", float: "a number"}.get(tp, "a value")


def _object_decoder(cls: type) -> _Decoder:
    # The nested class's plan is looked up on use, so self-referencing types need no care here.
    def decode(value: Any, path: str, errors: list[FieldError]) -> Any:
        if not isinstance(value, dict):
            errors.append(FieldError(path, f"must be an object, got {kind_of(value)}"))
            return None
        return from_dict(cls, value, path, errors)
    return decode


def _null_item(expected: str, path: str, errors: list[FieldError]) -> None:
    errors.append(FieldError(path, f"must be {expected}, got null; remove the entry or fill it in"))


def _list_decoder(item: _Decoder | None, expected: str) -> _Decoder:
    # A null item becomes an error, not a None in the list: every check after decoding may
    # then trust the declared item type.
    def decode(value: Any, path: str, errors: list[FieldError]) -> Any:
        if not isinstance(value, list):
            errors.append(FieldError(path, f"must be a list, got {kind_of(value)}"))
            return []
        if item is None:
            return list(value)
        out = []
        for i, v in enumerate(value):
            if v is None:
                _null_item(expected, f"{path}[{i}]", errors)
                continue
            decoded = item(v, f"{path}[{i}]", errors)
            if decoded is not None:
                out.append(decoded)
        return out
    return decode


def _dict_decoder(val: _Decoder | None, expected: str) -> _Decoder:
    def decode(value: Any, path: str, errors: list[FieldError]) -> Any:
        if not isinstance(value, dict):
            errors.append(FieldError(path, f"must be an object, got {kind_of(value)}"))
            return {}
        if val is None:
            return {str(k): v for k, v in value.items()}
        out = {}
        for k, v in value.items():
            vpath = _join(path, str(k))
            if v is None:
                _null_item(expected, vpath, errors)
                continue
            decoded = val(v, vpath, errors)
            if decoded is not None:
                out[str(k)] = decoded
        return out
    return decode


def _decode_str(value: Any, path: str, errors: list[FieldError]) -> Any:
    if type(value) is str:
        return value
    # Upstream stores every number as a string; YAML authors often write them bare.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        try:
            return _number_text(value)
        except ValueError:  # an int past Python's 4300-digit str() limit
            errors.append(FieldError(path, f"must be a string, got {shown(value)}"))
            return None
    if not isinstance(value, str):
        errors.append(FieldError(path, f"must be a string, got {kind_of(value)}"))
        return None
    return value


def _decode_bool(value: Any, path: str, errors: list[FieldError]) -> Any:
    if not isinstance(value, bool):
        errors.append(FieldError(path, f"must be true or false, got {kind_of(value)}"))
        return None
    return value


def _decode_int(value: Any, path: str, errors: list[FieldError]) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        errors.append(FieldError(path, f"must be an integer, got {kind_of(value)}"))
        return None
    try:
        number = value if isinstance(value, int) else float(value)
        if number != int(number):
            raise ValueError
        whole = int(number)
    except (ValueError, OverflowError):
        errors.append(FieldError(path, f"must be an integer, got {shown(value)}"))
        return None
    if not INT32_MIN <= whole <= INT32_MAX:
        # Every integer of the API is an int32 upstream; the API server refuses larger ones.
        errors.append(FieldError(path, f"must be an integer from {INT32_MIN} to {INT32_MAX}, got {shown(value)}"))
        return None
    return whole


def _decode_float(value: Any, path: str, errors: list[FieldError]) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        errors.append(FieldError(path, f"must be a number, got {kind_of(value)}"))
        return None
    try:
        return float(value)
    except (ValueError, OverflowError):
        errors.append(FieldError(path, f"must be a number, got {shown(value)}"))
        return None


_SCALARS: dict[Any, _Decoder] = {str: _decode_str, bool: _decode_bool, int: _decode_int, float: _decode_float}


def _number_text(value: int | float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return repr(value)
    return str(value)


def from_dict(cls: type[T], data: dict[str, Any], path: str = "", errors: list[FieldError] | None = None) -> T:
    """Decode ``data`` into ``cls``. Without an ``errors`` list, raise ValidationError on problems."""
    errs: list[FieldError] = [] if errors is None else errors
    plan = _plan(cls)
    if not isinstance(data, dict):
        errs.append(FieldError(path, f"must be an object, got {kind_of(data)}"))
        data = {}
    kwargs: dict[str, Any] = {}
    for name, key, decode, _ in plan.fields:
        if key in data:
            value = data[key]
            if value is None:
                continue  # null leaves the field at its default
            if decode is None:
                kwargs[name] = value
                continue
            decoded = decode(value, f"{path}.{key}" if path else key, errs)
            if decoded is not None:
                kwargs[name] = decoded
    known = plan.known
    if plan.extra is not None:
        kwargs[plan.extra] = {k: v for k, v in data.items() if k not in known}
    else:
        for key in data:
            if key not in known:
                errs.append(FieldError(_join(path, key), f"unknown field; known fields here are: {plan.choices}"))
    obj = cls(**kwargs)
    if errors is None and errs:
        from katib.errors import ValidationError

        raise ValidationError(errs)
    return obj


# -- encoding ------------------------------------------------------------------------------

_PLAIN = frozenset({str, int, float, bool, type(None)})


def _encode(value: Any) -> Any:
    cls = type(value)
    if cls in _PLAIN:
        return value
    if cls is list:
        return [v if type(v) in _PLAIN else _encode(v) for v in value]
    if cls is dict:
        return {k: v if type(v) in _PLAIN else _encode(v) for k, v in value.items()}
    if cls in _PLANS or (dataclasses.is_dataclass(value) and not isinstance(value, type)):
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
    for f in _plan(type(obj)).encode:
        if isinstance(f, str):  # the extra field: its keys go in as they are
            out.update(_encode(getattr(obj, f) or {}))
            continue
        name, key, _, keep_empty = f
        value = getattr(obj, name)
        if value is None:
            continue
        if type(value) in _PLAIN:
            out[key] = value
        elif isinstance(value, (list, dict)) and not value and not keep_empty:
            continue
        else:
            out[key] = _encode(value)
    return out
