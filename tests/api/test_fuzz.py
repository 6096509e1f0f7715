"""Fuzzing: upstream-shaped experiments, mutated, are accepted or refused with a
ValidationError, never another exception.

Each case takes one of the experiments of ``examples/`` and ``tests/api/upstream_examples/``
and mutates it a few times at places drawn from its own structure: keys deleted, values
replaced by other types, nulls, huge and non-finite numbers, long and unicode strings,
nested garbage, nulls appended to lists. The result goes through what ``katib validate``
does: text (JSON or YAML) → load → defaults → validate (with the ConfigMaps of upstream's
trial templates, so ConfigMap templates are checked too).
"""

from __future__ import annotations

import codecs
import functools
import json
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from katib.api.loader import ConfigMapLookup, load_experiments
from katib.backends.local import prepare
from katib.errors import ValidationError

ROOT = Path(__file__).resolve().parents[2]
UPSTREAM = ROOT / "tests/api/upstream_examples"


@functools.cache
def _seeds() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(UPSTREAM.rglob("*.yaml")) + sorted((ROOT / "examples").rglob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict) and d.get("kind") == "Experiment"]
    return docs


@functools.cache
def _config_maps() -> ConfigMapLookup:
    return ConfigMapLookup.from_files(UPSTREAM / "manifests/trial-templates.yaml")


_NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 2**31, -(2**31) - 1, 2**63, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([float("nan"), float("inf"), float("-inf"), 1e308, 5e-324, -0.0]),
)
_STRINGS = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["", " ", "1e400", "nan", "-inf", "0x10", "${trialParameters.x}", "${trialSpec.Name}",
                     "${trialSpec.Labels[a]}", "(", "([a-z]+)=(.*)", "batch/v1", "Job", "TFJob", "File", "JSON",
                     "PrometheusMetric", "Custom", "minimize", "maximize", "categorical", "int", "double",
                     "logUniform", "random", "grid", "hyperband", "enas", "LongRunning", "/", "/var/log/x"]),
    st.integers(min_value=1000, max_value=20000).map(lambda n: "é" * n),
)
_SCALARS = st.one_of(st.none(), st.booleans(), _NUMBERS, _STRINGS)
_JUNK = st.recursive(_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                     max_leaves=12)


def _containers(doc: dict[str, Any]) -> list[Any]:
    """Every list and object of ``doc`` but the top (a wrong apiVersion or kind stops
    everything early), the places a mutation can happen."""
    out: list[Any] = []
    stack = list(doc.values())
    while stack:
        node = stack.pop()
        if isinstance(node, (dict, list)):
            out.append(node)
            stack.extend(node.values() if isinstance(node, dict) else node)
    return out


def _mutate(data: st.DataObject, doc: dict[str, Any]) -> None:
    places = _containers(doc)
    if not places:
        return
    place = data.draw(st.sampled_from(places), label="place")
    keys = list(place) if isinstance(place, dict) else list(range(len(place)))
    op = data.draw(st.sampled_from(["delete", "replace", "null", "swap", "add"] if keys else ["add"]), label="op")
    if op == "add":
        value = data.draw(st.one_of(st.none(), _JUNK), label="value")
        if isinstance(place, list):
            place.append(value)
        else:
            place[data.draw(st.sampled_from(["name", "kind", "spec", "list", "min", "value", "x"]))] = value
        return
    key = data.draw(st.sampled_from(keys), label="key")
    if op == "delete":
        del place[key]
    elif op == "null":
        place[key] = None
    elif op == "swap":  # the same value as another type: "3" ↔ 3, x ↔ [x] ↔ {x: x}
        old = place[key]
        place[key] = data.draw(st.sampled_from([str(old)[:50], [old], {"v": old}, 3, True, 1e400]))
    else:
        place[key] = data.draw(_JUNK, label="value")


def _text(doc: Any, as_yaml: bool) -> str:
    if as_yaml:
        return str(yaml.dump(doc, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), allow_unicode=True))
    return json.dumps(doc, ensure_ascii=False)  # NaN and Infinity as JSON parsers (and ours) read them


@settings(max_examples=2000, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_mutated_experiments_are_accepted_or_refused_with_field_errors(data: st.DataObject) -> None:
    doc = json.loads(json.dumps(data.draw(st.sampled_from(_seeds()), label="seed")))
    for _ in range(data.draw(st.integers(min_value=1, max_value=4), label="mutations")):
        _mutate(data, doc)
    text = _text(doc, data.draw(st.booleans(), label="yaml"))
    try:
        for exp in load_experiments(text, config_maps=_config_maps()):
            prepare(exp, config_maps=_config_maps(), local=False)
    except ValidationError as exc:
        assert exc.errors and all(e.message for e in exc.errors)


_BOMS = st.sampled_from([b"", codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE,
                         codecs.BOM_UTF32_BE])


@settings(max_examples=500, derandomize=True, deadline=None, database=None)
@given(head=_BOMS, body=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(lambda t: t.encode("utf-8")),
                                  st.sampled_from(["utf-8", "utf-16-le", "utf-16-be", "utf-32-le", "latin-1"])
                                  .map(lambda enc: _text(_seeds()[0], True).encode(enc, "replace"))))
def test_any_bytes_are_read_or_refused_with_field_errors(head: bytes, body: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "experiment.yaml"
        path.write_bytes(head + body)
        try:
            load_experiments(path, config_maps=ConfigMapLookup())
        except ValidationError as exc:
            assert exc.errors and all(e.message for e in exc.errors)
