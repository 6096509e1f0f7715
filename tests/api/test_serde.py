"""``katib.api._serde`` decodes, reports errors and encodes exactly as the straightforward
implementation it replaced (``tests/api/serde_reference.py``): same objects, same
FieldErrors in the same order, and the same JSON, byte for byte, key order included."""

from __future__ import annotations

import dataclasses
import functools
import json
import random
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml

from katib.api import _serde, model
from katib.errors import FieldError, ValidationError
from tests.api import serde_reference as reference

UPSTREAM = Path(__file__).resolve().parent / "upstream_examples"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MODELS = [getattr(model, name) for name in model.__all__
          if isinstance(getattr(model, name), type) and dataclasses.is_dataclass(getattr(model, name))]


def _decode_both(cls: type, data: dict[str, Any]) -> tuple[Any, list[FieldError]]:
    ours: list[FieldError] = []
    theirs: list[FieldError] = []
    got: Any = _serde.from_dict(cls, data, "root", ours)
    want: Any = reference.from_dict(cls, data, "root", theirs)
    assert [(e.path, e.message) for e in ours] == [(e.path, e.message) for e in theirs]
    assert got == want
    return got, ours


def _encoded(to_dict: Any, obj: Any) -> str:
    """The encoding as text that tells 1, 1.0, True and "1" apart and keeps key order (or
    the error, for values that cannot be encoded)."""
    try:
        return repr(to_dict(obj))
    except Exception as exc:  # noqa: BLE001 - compared, not swallowed
        return f"{type(exc).__name__}: {exc}"


def _same_encoding(obj: Any) -> None:
    assert _encoded(_serde.to_dict, obj) == _encoded(reference.to_dict, obj)


# -- documents users write and the store keeps ----------------------------------------------
@functools.cache
def _documents() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(UPSTREAM.rglob("*.yaml")) + sorted(EXAMPLES.rglob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
    return docs


def _stored_trial() -> dict[str, Any]:
    """A trial as the local runner stores it (a number where upstream keeps a string)."""
    return {
        "metadata": {"name": "t-1", "namespace": "default", "labels": {"katib.kubeflow.org/experiment": "t"},
                     "creationTimestamp": "2026-01-01T00:00:00Z", "uid": "u-1", "ownerReferences": [{"x": 1}]},
        "spec": {"objective": {"type": "minimize", "objectiveMetricName": "objective",
                               "metricStrategies": [{"name": "objective", "value": "min"}]},
                 "parameterAssignments": [{"name": "x", "value": -0.25}, {"name": "n", "value": 3},
                                          {"name": "flag", "value": True}],
                 "runSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"a": [1, None, {"b": 2.0}]}},
                 "retainRun": False, "metricsCollector": {"collector": {"kind": "StdOut"}},
                 "primaryContainerName": "training-container", "labels": {}},
        "status": {"startTime": "2026-01-01T00:00:00Z",
                   "conditions": [{"type": "Succeeded", "status": "True", "reason": "TrialSucceeded",
                                   "message": "ok", "lastUpdateTime": "2026-01-01T00:00:01Z"}],
                   "observation": {"metrics": [{"name": "objective", "min": "0.06", "max": "0.06",
                                                "latest": "0.06"}]}},
    }


@pytest.mark.parametrize("index", range(len(_documents())))
def test_every_example_decodes_and_encodes_as_before(index: int) -> None:
    doc = _documents()[index]
    cls = model.Trial if doc.get("kind") == "Trial" else model.Experiment
    obj, _ = _decode_both(cls, doc)
    _same_encoding(obj)
    # and the encoding decodes to the same object again
    assert _serde.from_dict(cls, _serde.to_dict(obj)) == obj


def test_a_stored_trial_round_trips_as_before() -> None:
    trial, errors = _decode_both(model.Trial, _stored_trial())
    assert errors == []
    assert trial.spec.parameter_assignments[0].value == "-0.25"  # numbers become upstream's strings
    assert trial.metadata.extra == {"ownerReferences": [{"x": 1}]}
    _same_encoding(trial)
    # what the runner holds before the first store round trip: the raw float assignment
    trial.spec.parameter_assignments.append(model.ParameterAssignment("y", 0.5))  # type: ignore[arg-type]
    _same_encoding(trial)
    assert json.dumps(_serde.to_dict(trial)) == json.dumps(reference.to_dict(trial))


def test_problems_are_reported_with_their_paths_as_before() -> None:
    bad = {"metadata": {"name": 3, "labels": {"a": [1]}},
           "spec": {"parameters": [{"name": "x", "feasibleSpace": {"min": True, "list": "a"}}, "oops", None],
                    "parallelTrialCount": 2.5, "maxTrialCount": "x", "objective": {"goal": "high", "bogus": 1},
                    "trialTemplate": {"retain": "yes", "trialParameters": {}, "trialSpec": []}},
           "status": {"trials": 1e400}, "surprise": {}}
    _, errors = _decode_both(model.Experiment, bad)
    assert errors  # the same ones, in the same order (checked above)
    with pytest.raises(ValidationError) as raised:
        _serde.from_dict(model.Experiment, bad)
    with pytest.raises(ValidationError) as expected:
        reference.from_dict(model.Experiment, bad)
    assert str(raised.value) == str(expected.value)


# -- every model type, with random inputs ---------------------------------------------------
_JUNK: list[Any] = [None, True, False, 0, 7, -3, 2.5, 4.0, 1e17, "", "x", "12", "1.5", "1e3", "true", [], {},
                    [1, "a", None], {"k": "v"}, {"k": None}, {1: "v"}]


def _value_for(tp: Any, rng: random.Random, depth: int) -> Any:
    """A value shaped like ``tp`` most of the time, junk the rest."""
    if rng.random() < 0.2 or depth > 4:
        return rng.choice(_JUNK)
    tp, _ = reference._strip_optional(tp)
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dict_for(tp, rng, depth + 1)
    if origin is list:
        (item,) = typing.get_args(tp)
        return [_value_for(item, rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if origin is dict:
        _, val = typing.get_args(tp)
        return {rng.choice(["a", "b", "c"]): _value_for(val, rng, depth + 1) for _ in range(rng.randint(0, 3))}
    return rng.choice(_JUNK)


def _dict_for(cls: type, rng: random.Random, depth: int = 0) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    data: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not f.metadata.get("extra") and rng.random() < 0.7:
            data[_serde.wire_name(f)] = _value_for(hints[f.name], rng, depth)
    if rng.random() < 0.2:
        data[rng.choice(["unknownField", "zeta", "Alpha"])] = rng.choice(_JUNK)
    return data


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
def test_every_model_type_decodes_and_encodes_as_before(cls: type) -> None:
    rng = random.Random(cls.__name__)
    for _ in range(300):
        obj, _ = _decode_both(cls, _dict_for(cls, rng))
        _same_encoding(obj)


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
def test_objects_holding_raw_values_encode_as_before(cls: type) -> None:
    """Objects built in code, not decoded: any value may sit in any field."""
    rng = random.Random(cls.__name__ + "raw")
    hints = typing.get_type_hints(cls)
    raw = _JUNK + [(1, 2), [model.Metric("m", "1")], {"m": model.Metric("m")}]
    for _ in range(200):
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if rng.random() < 0.6:
                tp, _ = reference._strip_optional(hints[f.name])
                if isinstance(tp, type) and dataclasses.is_dataclass(tp) and rng.random() < 0.5:
                    kwargs[f.name] = _serde.from_dict(tp, _dict_for(tp, rng), errors=[])
                else:
                    kwargs[f.name] = rng.choice(raw)
        _same_encoding(cls(**kwargs))
