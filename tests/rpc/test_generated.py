"""The checked-in generated modules match proto/api.proto, and the proto matches upstream's
wire contract (package, method paths, field numbers, enums, map fields)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from katib.rpc import api_pb2

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ("api_pb2.py", "api_pb2.pyi", "api_pb2_grpc.py")


def test_checked_in_modules_are_fresh(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools", reason="grpcio-tools (test extra) regenerates the modules")
    subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_proto.py"), "--out", str(tmp_path)],
                   check=True, capture_output=True, text=True)
    for name in GENERATED:
        fresh = (tmp_path / name).read_text()
        checked_in = (ROOT / "katib" / "rpc" / name).read_text()
        assert fresh == checked_in, f"katib/rpc/{name} is stale: run python scripts/gen_proto.py"


def test_grpc_module_imports_package_relative() -> None:
    text = (ROOT / "katib" / "rpc" / "api_pb2_grpc.py").read_text()
    assert "from katib.rpc import api_pb2 as api__pb2" in text
    assert "\nimport api_pb2" not in text


def _method_paths(service: str) -> set[str]:
    desc = api_pb2.DESCRIPTOR.services_by_name[service]
    return {f"/{desc.full_name}/{m.name}" for m in desc.methods}


def test_method_paths_are_upstreams() -> None:
    assert api_pb2.DESCRIPTOR.package == "api.v1.beta1"
    assert _method_paths("Suggestion") == {
        "/api.v1.beta1.Suggestion/GetSuggestions",
        "/api.v1.beta1.Suggestion/ValidateAlgorithmSettings",
    }
    assert _method_paths("DBManager") == {
        "/api.v1.beta1.DBManager/ReportObservationLog",
        "/api.v1.beta1.DBManager/GetObservationLog",
        "/api.v1.beta1.DBManager/DeleteObservationLog",
    }
    assert _method_paths("EarlyStopping") == {
        "/api.v1.beta1.EarlyStopping/GetEarlyStoppingRules",
        "/api.v1.beta1.EarlyStopping/SetTrialStatus",
        "/api.v1.beta1.EarlyStopping/ValidateEarlyStoppingSettings",
    }
    # The stubs call exactly these paths.
    text = (ROOT / "katib" / "rpc" / "api_pb2_grpc.py").read_text()
    for service in ("Suggestion", "DBManager", "EarlyStopping"):
        for path in _method_paths(service):
            assert f"'{path}'" in text


def _numbers(message: str) -> dict[str, int]:
    desc = api_pb2.DESCRIPTOR.message_types_by_name[message.split(".")[0]]
    for nested in message.split(".")[1:]:
        desc = desc.nested_types_by_name[nested]
    return {f.name: f.number for f in desc.fields}


@pytest.mark.parametrize("message, numbers", [
    ("TrialSpec", {"objective": 2, "parameter_assignments": 3, "labels": 4}),
    ("GetSuggestionsRequest", {"experiment": 1, "trials": 2, "current_request_number": 4, "total_request_number": 5}),
    ("GetSuggestionsReply", {"parameter_assignments": 1, "algorithm": 2, "early_stopping_rules": 3}),
    ("GetSuggestionsReply.ParameterAssignments", {"assignments": 1, "trial_name": 2, "labels": 3}),
    ("ExperimentSpec", {"parameter_specs": 1, "objective": 2, "algorithm": 3, "early_stopping": 4,
                        "parallel_trial_count": 5, "max_trial_count": 6, "nas_config": 7}),
    ("FeasibleSpace", {"max": 1, "min": 2, "list": 3, "step": 4, "distribution": 5}),
    ("ObjectiveSpec", {"type": 1, "goal": 2, "objective_metric_name": 3, "additional_metric_names": 4}),
    ("TrialStatus", {"start_time": 1, "completion_time": 2, "condition": 3, "observation": 4}),
    ("EarlyStoppingRule", {"name": 1, "value": 2, "comparison": 3, "start_step": 4}),
    ("GetEarlyStoppingRulesRequest", {"experiment": 1, "trials": 2, "db_manager_address": 3}),
    ("MetricLog", {"time_stamp": 1, "metric": 2}),
    ("GetObservationLogRequest", {"trial_name": 1, "metric_name": 2, "start_time": 3, "end_time": 4}),
])
def test_field_numbers(message: str, numbers: dict[str, int]) -> None:
    assert _numbers(message) == numbers


def test_map_fields_are_maps() -> None:
    labels = api_pb2.TrialSpec.DESCRIPTOR.fields_by_name["labels"]
    assert labels.message_type.GetOptions().map_entry
    reply_labels = api_pb2.GetSuggestionsReply.ParameterAssignments.DESCRIPTOR.fields_by_name["labels"]
    assert reply_labels.message_type.GetOptions().map_entry


def test_enums() -> None:
    def values(enum: object) -> dict[str, int]:
        return {v.name: v.number for v in enum.values}  # type: ignore[attr-defined]

    d = api_pb2.DESCRIPTOR.enum_types_by_name
    assert values(d["ParameterType"]) == {"UNKNOWN_TYPE": 0, "DOUBLE": 1, "INT": 2, "DISCRETE": 3, "CATEGORICAL": 4}
    assert values(d["Distribution"]) == {"DISTRIBUTION_UNSPECIFIED": 0, "UNIFORM": 1, "LOG_UNIFORM": 2,
                                         "NORMAL": 3, "LOG_NORMAL": 4}
    assert values(d["ObjectiveType"]) == {"UNKNOWN": 0, "MINIMIZE": 1, "MAXIMIZE": 2}
    assert values(d["ComparisonType"]) == {"UNKNOWN_COMPARISON": 0, "EQUAL": 1, "LESS": 2, "GREATER": 3}
    assert values(api_pb2.TrialStatus.DESCRIPTOR.enum_types_by_name["TrialConditionType"]) == {
        "CREATED": 0, "RUNNING": 1, "SUCCEEDED": 2, "KILLED": 3, "FAILED": 4,
        "METRICSUNAVAILABLE": 5, "EARLYSTOPPED": 6, "UNKNOWN": 7,
    }


def test_an_upstream_encoded_request_decodes() -> None:
    # Bytes as upstream's Go controller writes them (field 4 current_request_number = 3,
    # field 5 total_request_number = 6, a trial with labels map entry k=v).
    trial = bytes([0x0A, 0x02]) + b"t1" + bytes([0x12, 0x08, 0x22, 0x06, 0x0A, 0x01]) + b"k" + bytes([0x12, 0x01]) + b"v"
    raw = bytes([0x12, len(trial)]) + trial + bytes([0x20, 0x03, 0x28, 0x06])
    request = api_pb2.GetSuggestionsRequest.FromString(raw)
    assert request.current_request_number == 3 and request.total_request_number == 6
    assert request.trials[0].name == "t1" and dict(request.trials[0].spec.labels) == {"k": "v"}
