"""Bytes to YAML/JSON documents, with limits: every input gets an answer, never a crash.

What is refused, before or while parsing, with the file named and the fix:

- files over ``MAX_BYTES``. Kubernetes stores objects of at most 1.5 MiB (etcd's request
  limit), so no experiment a cluster accepts comes near it; the margin is for multi-document
  files with ConfigMaps. PyYAML reads about a megabyte a second, so the limit also bounds
  how long a ``katib validate`` can take.
- text that is not UTF-8, UTF-16 or UTF-32 (the encodings YAML allows; the last two
  recognised by their byte order mark or, as YAML 1.2 §5.2 says, by the zero bytes around
  the first character), naming the byte offset and line; binary files.
- nesting deeper than ``MAX_DEPTH``: every later step may then recurse freely.
- aliases (``*name``) that expand a small file into millions of values ("billion laughs"):
  PyYAML shares aliased nodes instead of copying them, but everything that walks the
  document afterwards (defaults, JSON of the template, the store) would expand them.
- YAML values JSON has no word for (``!!binary``, ``!!set``, ``!!timestamp``...). Unquoted
  dates stay strings, as Kubernetes reads them.
"""

from __future__ import annotations

import codecs
import json
import os
from typing import Any, Iterator

import yaml

from katib.errors import FieldError, ValidationError

__all__ = ["MAX_BYTES", "MAX_DEPTH", "read_file", "parse_text"]

MAX_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 100  # Kubernetes manifests nest about 15 levels
_MIN_VALUES = 100_000  # values an aliased document may expand to, at the least

_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser is ~10x faster


class StrictLoader(_Base):  # type: ignore[misc]
    """A safe loader that rejects duplicate keys (PyYAML silently keeps the last one, which
    turns a repeated ``parameters:`` into a search space nobody asked for), keeps unquoted
    dates as strings and refuses the tags JSON cannot hold."""


def _mapping(loader: Any, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, Any] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            first = seen.get(key)
        except TypeError:  # an unhashable key: construct_mapping says so with its mark
            break
        if first is not None:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping", node.start_mark,
                f"found duplicate key {key!r} (first at line {first.line + 1}); keep one", key_node.start_mark)
        seen[key] = key_node.start_mark
    return loader.construct_mapping(node, deep=deep)  # type: ignore[no-any-return]


def _not_json(loader: Any, node: yaml.Node) -> Any:
    raise yaml.constructor.ConstructorError(
        None, None, f"{node.tag.replace('tag:yaml.org,2002:', '!!')} values are not allowed: experiments hold only strings, numbers, true/false, "
        "null, lists and objects; quote the value to keep it as a string", node.start_mark)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
for _tag in ("timestamp", "binary", "set", "omap", "pairs"):
    StrictLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _not_json)
StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

_BOMS = ((codecs.BOM_UTF32_LE, "UTF-32-LE"), (codecs.BOM_UTF32_BE, "UTF-32-BE"), (codecs.BOM_UTF8, "UTF-8"),
         (codecs.BOM_UTF16_LE, "UTF-16-LE"), (codecs.BOM_UTF16_BE, "UTF-16-BE"))


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


def _too_big(label: str, size: str) -> ValidationError:
    return ValidationError([FieldError(label, (
        f"the file is {size}; experiment files may be at most {_mib(MAX_BYTES)} (Kubernetes stores objects of at "
        "most 1.5 MiB): keep data and code out of the experiment (in the image, a volume or a ConfigMap "
        "of its own) or split the file"))])


def read_file(label: str) -> str:
    """The text of file ``label``, decoded; ValidationError if it cannot be read, is too
    large, or is not YAML text in an encoding YAML allows."""
    try:
        with open(label, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            # Refused before reading a byte of it; pipes and devices have no size beforehand.
            data = f.read(MAX_BYTES + 1) if size <= MAX_BYTES else b""
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the name
        raise ValidationError([FieldError(label, f"cannot read the file: {getattr(exc, 'strerror', None) or exc}")]) \
            from exc
    if size > MAX_BYTES or len(data) > MAX_BYTES:
        raise _too_big(label, _mib(size) if size > MAX_BYTES else f"over {_mib(MAX_BYTES)}")
    return _decode(data, label)


def _encoding(data: bytes) -> tuple[str, int, bool]:
    """(encoding, length of its byte order mark, whether the encoding was guessed from zeros)."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return name, len(bom), False
    # YAML 1.2 §5.2: a stream starts with an ASCII character, so zeros around the first
    # byte tell UTF-16 and UTF-32 apart without a mark.
    if len(data) >= 4 and data[:3] == b"\0\0\0":
        return "UTF-32-BE", 0, True
    if len(data) >= 4 and data[1:4] == b"\0\0\0":
        return "UTF-32-LE", 0, True
    if len(data) >= 2 and data[:1] == b"\0":
        return "UTF-16-BE", 0, True
    if len(data) >= 2 and data[1:2] == b"\0":
        return "UTF-16-LE", 0, True
    return "UTF-8", 0, False


def _binary(label: str, offset: int) -> ValidationError:
    return ValidationError([FieldError(label, (
        f"this is a binary file (a zero byte at offset {offset}), not YAML or JSON text; "
        "give the experiment's .yaml or .json file"))])


def _decode(data: bytes, label: str) -> str:
    encoding, skip, guessed = _encoding(data)
    zero = data.find(b"\0", 0, 8192)
    if encoding == "UTF-8" and zero >= 0:
        raise _binary(label, zero)
    try:
        text = data[skip:].decode(encoding)
    except UnicodeDecodeError as exc:
        offset = skip + exc.start
        if guessed:
            raise _binary(label, zero) from exc
        line = data.count(b"\n", 0, offset) + 1 if encoding == "UTF-8" else None
        where = f"byte {offset}" + (f" (line {line})" if line else "")
        bad = data[offset:offset + min(4, exc.end - exc.start)].hex(" ")
        raise ValidationError([FieldError(label, (
            f"is not valid {encoding} text: {where} is 0x{bad}; YAML files must be UTF-8 (or UTF-16/UTF-32 with a "
            f"byte order mark): save the file as UTF-8, e.g. iconv -f LATIN1 -t UTF-8 {label} > fixed.yaml"))]) \
            from exc
    nul = text.find("\0")
    if nul >= 0:
        raise _binary(label, skip + nul)
    return text


def _mark_where(label: str, exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    return f"{label}:{mark.line + 1}:{mark.column + 1}" if mark else label


def parse_text(text: str, label: str) -> list[Any]:
    """The documents of YAML or JSON ``text`` checked against the limits above; ``label``
    names the source in messages. Raises ValidationError."""
    if len(text) > MAX_BYTES:
        raise _too_big(label, f"{_mib(len(text))} or more")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate from text built in code
        raise ValidationError([FieldError(label, f"character {exc.start} ({text[exc.start]!r}) is not a Unicode "
                                          "character; remove it")]) from exc
    text = text.removeprefix("\ufeff")
    docs = _parse(text, label)
    limit = max(_MIN_VALUES, 2 * len(text))
    for i, doc in enumerate(docs):
        docs[i] = _checked(doc, f"documents[{i}]" if len(docs) > 1 else "", label, limit)
    return docs


def _parse(text: str, label: str) -> list[Any]:
    try:
        if text.lstrip()[:1] in ("{", "["):
            try:  # JSON proper; YAML would choke on tab indentation that JSON allows
                return [json.loads(text)]
            except json.JSONDecodeError:
                pass  # maybe YAML flow style; YAML's error message has line and column
        return list(yaml.load_all(text, Loader=StrictLoader))  # noqa: S506 - a safe loader
    except yaml.MarkedYAMLError as exc:
        problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise ValidationError([FieldError(_mark_where(label, exc), f"not valid YAML/JSON: {problem}")]) from exc
    except yaml.YAMLError as exc:
        raise ValidationError([FieldError(label, f"not valid YAML/JSON: {exc}")]) from exc
    except RecursionError as exc:
        raise _too_deep(label, "") from exc
    except ValueError as exc:  # Python refuses integers of more than 4300 digits
        raise ValidationError([FieldError(label, "not valid YAML/JSON: a number has more than 4300 digits; "
                                          "quote it if it is text")]) from exc


def _too_deep(label: str, path: str) -> ValidationError:
    where = f" (in {label})" if label != "<text>" else ""
    return ValidationError([FieldError(path, (
        f"nested more than {MAX_DEPTH} levels deep, or an alias (*name) inside the node it names{where}; "
        "flatten the structure"))])


_SCALARS = (str, int, float, bool, type(None))
_Entry = tuple[Any, Any, Any, int]  # (value, parent entry, key or index, depth)


def _path(entry: _Entry | None, top: str) -> str:
    keys: list[str] = []
    while entry is not None and entry[1] is not None:
        key = entry[2]
        keys.append(f"[{key}]" if isinstance(key, int) and isinstance(entry[1][0], list) else f".{key}")
        entry = entry[1]
    keys.reverse()
    if len(keys) > 12:  # a path a hundred levels deep helps nobody
        keys = keys[:8] + [f"...({len(keys) - 10} more)..."] + keys[-2:]
    return (top + "".join(keys)).removeprefix(".")


def _walk(doc: Any) -> Iterator[tuple[_Entry, int]]:
    """Every value of ``doc`` depth first, with the running count of values, aliased values
    as often as they occur (which is what a later step would see)."""
    stack: list[_Entry] = [(doc, None, None, 0)]
    count = 0
    while stack:
        entry = stack.pop()
        value = entry[0]
        if isinstance(value, dict):
            count += len(value)
            stack.extend((v, entry, k, entry[3] + 1) for k, v in value.items())
        elif isinstance(value, list):
            count += len(value)
            stack.extend((v, entry, i, entry[3] + 1) for i, v in enumerate(value))
        yield entry, count


def _checked(doc: Any, top: str, label: str, limit: int) -> Any:
    where = f" (in {label})" if label != "<text>" else ""
    seen: set[int] = set()
    shared = False
    for entry, count in _walk(doc):
        value, _, key, depth = entry
        if depth > MAX_DEPTH:
            raise _too_deep(label, _path(entry, top))
        if count > limit:
            raise ValidationError([FieldError(_path(entry, top), (
                f"the document expands to more than {limit} values through YAML aliases (*name){where}; "
                "write the values out or use fewer aliases"))])
        if not isinstance(key, _SCALARS) or not isinstance(value, (*_SCALARS, list, dict)):
            bad = key if not isinstance(key, _SCALARS) else value
            raise ValidationError([FieldError(_path(entry, top), (
                f"a {type(bad).__name__} value is not allowed{where}: experiments hold only strings, numbers, "
                "true/false, null, lists and objects"))])
        if isinstance(value, (list, dict)):
            shared = shared or id(value) in seen
            seen.add(id(value))
    # Aliased nodes are one object in several places: copy them apart, as a Kubernetes
    # client would, so that changing one place never changes another.
    return _unshared(doc) if shared else doc


def _unshared(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _unshared(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unshared(v) for v in value]
    return value
