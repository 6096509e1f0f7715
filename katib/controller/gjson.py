"""The subset of GJSON path syntax that Katib's success/failure conditions use (§1.6, §6.5).

Upstream evaluates ``trialTemplate.successCondition`` / ``failureCondition`` with
``gjson.Get(jobJSON, condition)`` and treats the condition as met when the result is an
object or a non-empty array. Users copy those strings from upstream's examples, so we must
read them the way gjson does. Supported:

- keys separated by ``.``; ``\\`` escapes a special character in a key
  (``metadata.labels.app\\.kubernetes\\.io/name``);
  ``*`` and ``?`` wildcards in a key (first matching key wins); a number indexes an array;
- ``#`` as the last component: the length of an array; ``#.key`` maps the rest over its elements;
- queries ``#(key op value)`` (first match) and ``#(key op value)#`` (all matches), with
  ``==``, ``=``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``%`` (glob like), ``!%``; values are
  quoted strings, numbers, bare words (compared as text), ``true``/``false``/``null``, or
  ``~true``/``~false``/``~null``/``~*``;
  a bare ``#(key)`` tests existence; an empty key compares the element itself; the key may be
  a path (``#(status.phase=="x")``), even one holding a query;
- after an all-matches query, ``.`` maps the rest of the path over each match while ``|``
  applies it to the array of matches as a whole: ``conditions.#(type=="Complete")#|#(status=="True")#``;
- the ``@this`` modifier and multipaths ``[a,b]`` / ``{a,b}`` (Argo's ``status.[@this].#(phase=="Succeeded")#``).

Anything else (other modifiers, JSON-lines ``..``) yields "no value", never an exception
at evaluation time. ``parse`` raises ``GJSONSyntaxError`` for a path it cannot read, which
callers can surface as a validation message.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MISSING", "GJSONSyntaxError", "get", "parse", "is_met", "met_detail"]


class _Missing:
    """No value at the path (gjson's non-existent Result); falsy, distinct from JSON null."""

    _instance: "_Missing | None" = None

    def __new__(cls) -> "_Missing":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class GJSONSyntaxError(ValueError):
    """A condition that is not a path this evaluator can read."""


@dataclass
class _Query:
    key: str  # a sub-path evaluated on each element; "" is the element itself
    op: str  # "" (existence), "=", "!=", "<", "<=", ">", ">=", "%", "!%"
    value: Any  # the literal: str, float, bool, None, or ("~", "true"|"false"|"null"|"*")
    quoted: bool
    all: bool  # "#(...)#" rather than "#(...)"


@dataclass
class _Part:
    sep: str  # separator before this part: "" (first), "." or "|"
    key: str = ""  # literal key (escapes removed), possibly with wildcards
    wild: bool = False
    count: bool = False  # "#"
    query: _Query | None = None
    modifier: str | None = None  # "this" for "@this"
    multi: list[tuple[str, str]] = field(default_factory=list)  # [(name, subpath)]
    multi_kind: str = ""  # "[" or "{"


_OPS = ("==", "!=", "<=", ">=", "!%", "=", "<", ">", "%")
_SPECIAL = set(".|#@*?\\()[]{},=!<>%\" ")


def _scan(text: str, i: int, stops: str) -> int:
    """Index of the first character of ``stops`` at depth 0 from ``i`` (outside quotes,
    brackets and escapes), or len(text)."""
    depth = 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            i = _skip_string(text, i)
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0 and c in stops:
            return i
        i += 1
    return len(text)


def _skip_string(text: str, i: int) -> int:
    j = i + 1
    while j < len(text):
        if text[j] == "\\":
            j += 2
            continue
        if text[j] == '"':
            return j + 1
        j += 1
    raise GJSONSyntaxError(f"unterminated string in {text!r}")


def _unescape(key: str) -> tuple[str, bool]:
    """(key without escapes, whether it holds an unescaped wildcard)."""
    out, wild, i = [], False, 0
    while i < len(key):
        c = key[i]
        if c == "\\" and i + 1 < len(key):
            out.append("\\" + key[i + 1] if key[i + 1] in "*?" else key[i + 1])
            i += 2
            continue
        if c in "*?":
            wild = True
        out.append(c)
        i += 1
    return "".join(out), wild


def _parse_literal(text: str) -> tuple[Any, bool]:
    text = text.strip()
    if text.startswith('"'):
        end = _skip_string(text, 0)
        if text[end:].strip():
            raise GJSONSyntaxError(f"unexpected text after the string in {text!r}")
        return json.loads(text[:end]), True
    if text.startswith("~"):
        word = text[1:]
        if word not in ("true", "false", "null", "*"):
            raise GJSONSyntaxError(f"unknown ~ value {text!r}; use ~true, ~false, ~null or ~*")
        return ("~", word), False
    if text in ("true", "false"):
        return text == "true", False
    if text == "null":
        return None, False
    try:
        return float(text), False
    except ValueError:
        return text, False  # gjson compares an unquoted word as text: #(type==Complete)


def _parse_query(body: str, all_matches: bool) -> _Query:
    i = _scan(body, 0, "=!<>%")  # the operator, outside quotes and brackets
    if i == len(body):
        return _Query(body.strip(), "", None, False, all_matches)
    op = next(o for o in _OPS if body.startswith(o, i))
    value, quoted = _parse_literal(body[i + len(op):])
    return _Query(body[:i].strip(), "=" if op == "==" else op, value, quoted, all_matches)


def _split_multi(body: str) -> list[tuple[str, str]]:
    items = []
    i = 0
    while i <= len(body):
        j = _scan(body, i, ",")
        sub = body[i:j].strip()
        if sub:
            name = sub
            k = _scan(sub, 0, ":")
            if k < len(sub) and not sub.startswith("@"):
                name, sub = json.loads(sub[:k]) if sub.startswith('"') else sub[:k], sub[k + 1:]
            last = re.split(r"(?<!\\)[.|]", name)[-1]
            items.append((_unescape(last)[0], sub))
        i = j + 1
    return items


def parse(path: str) -> list[_Part]:
    """Split a path into parts; GJSONSyntaxError on what cannot be read."""
    if not isinstance(path, str) or not path:
        raise GJSONSyntaxError("the path is empty")
    parts: list[_Part] = []
    i, sep = 0, ""
    while i < len(path):
        c = path[i]
        part = _Part(sep)
        if c == "#" and path.startswith("#(", i):
            close = _matching(path, i + 1)
            body = path[i + 2:close]
            j = close + 1
            all_matches = j < len(path) and path[j] == "#"
            if all_matches:
                j += 1
            part.query = _parse_query(body, all_matches)
        elif c in "[{":
            close = _matching(path, i)
            part.multi = _split_multi(path[i + 1:close])
            part.multi_kind = c
            j = close + 1
        elif c == "@":
            j = _scan(path, i, ".|")
            name = path[i + 1:j]
            if name.split(":")[0] != "this":
                raise GJSONSyntaxError(f"modifier @{name} is not supported; only @this is")
            part.modifier = "this"
        else:
            j = _scan(path, i, ".|")
            raw = path[i:j]
            if raw == "#":
                part.count = True
            else:
                if not raw:
                    raise GJSONSyntaxError(f"empty key at position {i} of {path!r}")
                part.key, part.wild = _unescape(raw)
        parts.append(part)
        if j < len(path):
            if path[j] not in ".|":
                raise GJSONSyntaxError(f"expected '.' or '|' at position {j} of {path!r}, got {path[j]!r}")
            sep = path[j]
            j += 1
            if j == len(path):
                raise GJSONSyntaxError(f"{path!r} ends with a separator")
        i = j
    return parts


def _matching(text: str, i: int) -> int:
    """Index of the bracket closing the one at ``i``."""
    opening = text[i]
    closing = {"(": ")", "[": "]", "{": "}"}[opening]
    depth, j = 0, i
    while j < len(text):
        c = text[j]
        if c == "\\":
            j += 2
            continue
        if c == '"':
            j = _skip_string(text, j)
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                if c != closing:
                    raise GJSONSyntaxError(f"mismatched {c!r} at position {j} of {text!r}")
                return j
        j += 1
    raise GJSONSyntaxError(f"unclosed {opening!r} at position {i} of {text!r}")


def _glob(text: str, pattern: str) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, re.DOTALL) is not None


def _key_glob(text: str, pattern: str) -> bool:
    regex, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            regex.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        regex.append(".*" if c == "*" else "." if c == "?" else re.escape(c))
        i += 1
    return re.fullmatch("".join(regex), text, re.DOTALL) is not None


def _compare(value: Any, q: _Query) -> bool:
    """gjson's queryMatches: the element's JSON type decides how the literal is read."""
    rpv = q.value
    if isinstance(rpv, tuple) and rpv and rpv[0] == "~":
        # gjson's tilde: ~true true-ish; ~false false-ish or absent; ~null null or absent;
        # ~* any existing value.
        word = rpv[1]
        if word == "true":
            ok = _truthy(value) is True
        elif word == "false":
            ok = _truthy(value) is not True
        elif word == "null":
            ok = value is MISSING or value is None
        else:
            ok = value is not MISSING
        return ok if q.op == "=" else (not ok if q.op == "!=" else False)
    if value is MISSING:
        return False
    if q.op == "":
        return True
    text = rpv if isinstance(rpv, str) else _literal_text(rpv)
    if isinstance(value, bool):
        if value:
            return {"=": text == "true", "!=": text != "true", ">": text == "false", ">=": True}.get(q.op, False)
        return {"=": text == "false", "!=": text != "false", "<": text == "true", "<=": True}.get(q.op, False)
    if isinstance(value, str):
        return _ordered(value, text, q.op)
    if isinstance(value, (int, float)):
        try:
            number = float(text)
        except ValueError:
            number = 0.0  # Go's ParseFloat error leaves 0
        return _ordered(float(value), number, q.op)
    return False  # objects, arrays and null never match a comparison


def _literal_text(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _ordered(a: Any, b: Any, op: str) -> bool:
    if op == "=":
        return bool(a == b)
    if op == "!=":
        return bool(a != b)
    if op == "<":
        return bool(a < b)
    if op == "<=":
        return bool(a <= b)
    if op == ">":
        return bool(a > b)
    if op == ">=":
        return bool(a >= b)
    if op in ("%", "!%") and isinstance(a, str):
        return _glob(a, str(b)) == (op == "%")
    return False


def _truthy(value: Any) -> bool | None:
    if value is MISSING or value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        low = value.lower()
        return True if low in ("true", "1", "t", "yes") else False
    if isinstance(value, (int, float)):
        return value != 0
    return None


def _element_value(element: Any, key: str) -> Any:
    return element if key == "" else get(element, key)


def _eval(value: Any, parts: list[_Part], i: int) -> Any:
    while i < len(parts):
        if value is MISSING:
            return MISSING
        part = parts[i]
        if part.count:
            if not isinstance(value, list):
                return MISSING
            if i + 1 == len(parts) or parts[i + 1].sep == "|":
                value = len(value)
                i += 1
                continue
            rest = [_eval(el, parts, i + 1) for el in value]
            return [r for r in rest if r is not MISSING]
        if part.query is not None:
            if not isinstance(value, list):
                return MISSING
            q = part.query
            if q.all:
                found = [el for el in value if _compare(_element_value(el, q.key), q)]
                if i + 1 < len(parts) and parts[i + 1].sep == ".":
                    mapped = [_eval(el, parts, i + 1) for el in found]
                    return [m for m in mapped if m is not MISSING]
                value = found
            else:
                value = next((el for el in value if _compare(_element_value(el, q.key), q)), MISSING)
            i += 1
            continue
        if part.modifier == "this":
            i += 1
            continue
        if part.multi_kind:
            if part.multi_kind == "[":
                items = [_eval(value, parse(sub), 0) for _, sub in part.multi]
                value = [v for v in items if v is not MISSING]
            else:
                obj = {}
                for name, sub in part.multi:
                    v = _eval(value, parse(sub), 0)
                    if v is not MISSING:
                        obj[name] = v
                value = obj
            i += 1
            continue
        value = _child(value, part)
        i += 1
    return value


def _child(value: Any, part: _Part) -> Any:
    if isinstance(value, dict):
        if part.wild:
            return next((v for k, v in value.items() if _key_glob(k, part.key)), MISSING)
        key = part.key.replace("\\*", "*").replace("\\?", "?")
        return value.get(key, MISSING)
    if isinstance(value, list) and part.key.isdigit():
        index = int(part.key)
        return value[index] if index < len(value) else MISSING
    return MISSING


def get(document: Any, path: str) -> Any:
    """The value at ``path`` in a JSON-shaped document (dicts, lists, scalars), or MISSING."""
    return _eval(document, parse(path), 0)


def is_met(document: Any, condition: str) -> bool:
    """Upstream's test of a job condition: the result is an object or a non-empty array."""
    return met_detail(document, condition) is not None


def met_detail(document: Any, condition: str) -> dict[str, Any] | None:
    """When the condition is met, the object it found (the first element of an array
    result; ``{}`` when that element is not an object), so the caller can read the job's
    ``reason``/``message`` from it as upstream does; None when not met."""
    result = get(document, condition)
    if isinstance(result, dict):
        return result
    if isinstance(result, list) and result:
        first = result[0]
        return first if isinstance(first, dict) else {}
    return None
