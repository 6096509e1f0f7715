"""A NAS search space that cannot be searched is refused by `katib validate` before anything
runs, with the field path and the fix (upstream leaves nasConfig to its NAS services)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from katib.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "nas"


def _ops(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return doc["spec"]["nasConfig"]["operations"]  # type: ignore[no-any-return]


def _no_operations(doc: dict[str, Any]) -> None:
    doc["spec"]["nasConfig"]["operations"] = []


def _no_parameters(doc: dict[str, Any]) -> None:
    _ops(doc)[0].pop("parameters")


def _empty_filter_sizes(doc: dict[str, Any]) -> None:
    _ops(doc)[0]["parameters"][0]["feasibleSpace"]["list"] = []


def _zero_layers(doc: dict[str, Any]) -> None:
    doc["spec"]["nasConfig"]["graphConfig"]["numLayers"] = 0


def _parameters_too(doc: dict[str, Any]) -> None:
    doc["spec"]["parameters"] = [{"name": "lr", "parameterType": "double",
                                  "feasibleSpace": {"min": "0.01", "max": "0.1"}}]


CASES: list[tuple[str, Callable[[dict[str, Any]], None], str, str]] = [
    ("no operations", _no_operations, "spec.nasConfig.operations:", "must list at least one operation"),
    ("an operation without parameters", _no_parameters, "spec.nasConfig.operations[0].parameters:",
     "must list at least one parameter, e.g. filter_size"),
    ("an empty filter size list", _empty_filter_sizes,
     "spec.nasConfig.operations[0].parameters[0].feasibleSpace:", "list at least one value"),
    ("numLayers 0", _zero_layers, "spec.nasConfig.graphConfig.numLayers:", "must be a whole number above 0, got 0"),
    ("parameters and nasConfig", _parameters_too, "spec:", "only one of spec.parameters and spec.nasConfig"),
]


@pytest.mark.parametrize("example", ["enas-cpu.yaml", "darts-cpu.yaml"])
@pytest.mark.parametrize("what, change, field, fix", CASES, ids=[c[0] for c in CASES])
def test_bad_nas_config_is_refused_with_its_field(tmp_path: Path, capsys: pytest.CaptureFixture[str], example: str,
                                                 what: str, change: Callable[[dict[str, Any]], None], field: str,
                                                 fix: str) -> None:
    doc = copy.deepcopy(yaml.safe_load((EXAMPLES / example).read_text()))
    change(doc)
    path = tmp_path / example
    path.write_text(yaml.safe_dump(doc))
    assert main(["validate", str(path)]) == 2
    out = capsys.readouterr()
    text = out.out + out.err
    assert f"  {field} " in text and fix in text, text
    assert "Traceback" not in text
    # `katib run` refuses it the same way, before any trial exists.
    assert main(["run", str(path), "-q"]) == 2
    assert not (tmp_path / "runs").exists()


def test_darts_skip_connection_needs_no_parameters(capsys: pytest.CaptureFixture[str]) -> None:
    doc = yaml.safe_load((EXAMPLES / "darts-cpu.yaml").read_text())
    assert any(op["operationType"] == "skip_connection" and "parameters" not in op for op in _ops(doc))
    assert main(["validate", str(EXAMPLES / "darts-cpu.yaml")]) == 0


def test_enas_needs_parameters_even_for_skip_connection(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = yaml.safe_load((EXAMPLES / "enas-cpu.yaml").read_text())
    _ops(doc).append({"operationType": "skip_connection"})
    path = tmp_path / "enas.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert main(["validate", str(path)]) == 2
    assert f"spec.nasConfig.operations[{len(_ops(doc)) - 1}].parameters: must list" in capsys.readouterr().err
