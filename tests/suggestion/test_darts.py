"""The ``darts`` algorithm over real gRPC and in process: upstream's settings, defaults and
range checks, unknown settings and bad operations refused, and upstream's reply, string for
string.

The expected replies are written out by hand from upstream's service
(pkg/suggestion/v1beta1/nas/darts/service.py): ``get_algorithm_settings`` fills a dict of
defaults in its order, overriding with the settings' texts as given ("None" -> None),
``get_search_space`` names ``<op>_<k>x<k>`` per size of the first parameter's list
(``skip_connection`` as is), then ``json.dumps(...).replace('"', "'")``; ``num-layers`` is
``str(graph_config.num_layers)``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from katib.api.defaults import set_defaults
from katib.api.loader import load_experiments
from katib.api.model import Experiment
from katib.api.space import SearchSpace
from katib.cli import main
from katib.rpc import api_pb2_grpc, converters
from suggestion.inprocess import InProcessSuggester

ROOT = Path(__file__).resolve().parents[2]
UPSTREAM_CPU = ROOT / "tests/api/upstream_examples/nas/darts-cpu.yaml"
UPSTREAM_GPU = ROOT / "tests/api/upstream_examples/nas/darts-gpu.yaml"

CPU_SETTINGS = ("{'num_epochs': '1', 'w_lr': 0.025, 'w_lr_min': 0.001, 'w_momentum': 0.9, "
                "'w_weight_decay': 0.0003, 'w_grad_clip': 5.0, 'alpha_lr': 0.0003, 'alpha_weight_decay': 0.001, "
                "'batch_size': 128, 'num_workers': 4, 'init_channels': '1', 'print_step': 50, 'num_nodes': '1', "
                "'stem_multiplier': '1'}")
GPU_SETTINGS = ("{'num_epochs': '3', 'w_lr': 0.025, 'w_lr_min': 0.001, 'w_momentum': 0.9, "
                "'w_weight_decay': 0.0003, 'w_grad_clip': 5.0, 'alpha_lr': 0.0003, 'alpha_weight_decay': 0.001, "
                "'batch_size': 128, 'num_workers': 4, 'init_channels': 16, 'print_step': 50, 'num_nodes': 4, "
                "'stem_multiplier': 3}")
GPU_SPACE = ("['separable_convolution_3x3', 'dilated_convolution_3x3', 'dilated_convolution_5x5', "
             "'avg_pooling_3x3', 'max_pooling_3x3', 'skip_connection']")


def _doc(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())  # type: ignore[no-any-return]


def _experiment(doc: dict[str, Any]) -> Experiment:
    (exp,) = load_experiments(yaml.safe_dump(doc))
    set_defaults(exp)
    return exp


def _with_settings(doc: dict[str, Any], **settings: str) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    doc["spec"]["algorithm"]["algorithmSettings"] = [{"name": k, "value": v} for k, v in settings.items()]
    return doc


def _validate_error(stub: api_pb2_grpc.SuggestionStub, doc: dict[str, Any]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        stub.ValidateAlgorithmSettings(converters.validate_request(_experiment(doc)), timeout=30)
    return caught.value


def _ask(stub: api_pb2_grpc.SuggestionStub, doc: dict[str, Any], n: int) -> list[dict[str, str]]:
    exp = _experiment(doc)
    request = converters.get_suggestions_request(exp, [], SearchSpace.from_experiment(exp.spec), n, n)
    reply = stub.GetSuggestions(request, timeout=30)
    return [{a.name: a.value for a in item.assignments} for item in reply.parameter_assignments]


# --- settings ---------------------------------------------------------------------------

@pytest.mark.parametrize("name, value", [
    ("num_epochs", "0"), ("num_epochs", "ten"), ("w_lr", "-0.1"), ("w_lr_min", "-1"), ("alpha_lr", "-0.001"),
    ("w_weight_decay", "-1"), ("alpha_weight_decay", "-0.5"), ("w_momentum", "-0.9"), ("w_grad_clip", "-5"),
    ("batch_size", "0"), ("num_workers", "-1"), ("init_channels", "0"), ("print_step", "0"),
    ("num_nodes", "0"), ("stem_multiplier", "0"),
])
def test_out_of_range_setting_is_invalid_argument_naming_it(stub: api_pb2_grpc.SuggestionStub, name: str,
                                                            value: str) -> None:
    err = _validate_error(stub, _with_settings(_doc(UPSTREAM_CPU), **{name: value}))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert name in err.details() and value in err.details(), err.details()


def test_unknown_setting_is_invalid_argument_naming_it(stub: api_pb2_grpc.SuggestionStub) -> None:
    err = _validate_error(stub, _with_settings(_doc(UPSTREAM_CPU), num_epochs="1", learning_rate="0.1"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "learning_rate" in err.details() and "unknown setting" in err.details(), err.details()
    assert "num_epochs" in err.details()  # the allowed names are listed: the fix


def test_upstream_settings_are_accepted_including_batch_size_none(stub: api_pb2_grpc.SuggestionStub) -> None:
    every = {"num_epochs": "2", "w_lr": "0", "w_lr_min": "0", "w_momentum": "0", "w_weight_decay": "0",
             "w_grad_clip": "0", "alpha_lr": "0", "alpha_weight_decay": "0", "batch_size": "None",
             "num_workers": "0", "init_channels": "1", "print_step": "1", "num_nodes": "1", "stem_multiplier": "1"}
    doc = _with_settings(_doc(UPSTREAM_CPU), **every)
    stub.ValidateAlgorithmSettings(converters.validate_request(_experiment(doc)), timeout=30)
    (reply,) = _ask(stub, doc, 1)
    assert reply["algorithm-settings"] == (
        "{'num_epochs': '2', 'w_lr': '0', 'w_lr_min': '0', 'w_momentum': '0', 'w_weight_decay': '0', "
        "'w_grad_clip': '0', 'alpha_lr': '0', 'alpha_weight_decay': '0', 'batch_size': null, 'num_workers': '0', "
        "'init_channels': '1', 'print_step': '1', 'num_nodes': '1', 'stem_multiplier': '1'}")


# --- nasConfig ----------------------------------------------------------------------------

def _nas(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["nasConfig"]  # type: ignore[no-any-return]


def _no_operations(doc: dict[str, Any]) -> str:
    _nas(doc)["operations"] = []
    return "spec.nasConfig.operations"


def _operation_without_parameters(doc: dict[str, Any]) -> str:
    operations = _nas(doc)["operations"]
    operations.append({"operationType": "dilated_convolution"})
    return f"spec.nasConfig.operations[{len(operations) - 1}].parameters"


def _empty_filter_sizes(doc: dict[str, Any]) -> str:
    _nas(doc)["operations"][0]["parameters"][0]["feasibleSpace"]["list"] = []
    return "spec.nasConfig.operations[0].parameters[0].feasibleSpace"


def _zero_layers(doc: dict[str, Any]) -> str:
    _nas(doc)["graphConfig"]["numLayers"] = 0
    return "spec.nasConfig.graphConfig.numLayers"


def _two_trials(doc: dict[str, Any]) -> str:
    doc["spec"]["maxTrialCount"] = 2
    return "spec.maxTrialCount"


BAD_NAS = [_no_operations, _operation_without_parameters, _empty_filter_sizes, _zero_layers, _two_trials]


@pytest.mark.parametrize("breaks", BAD_NAS, ids=lambda f: f.__name__.strip("_"))
def test_bad_nas_config_is_invalid_argument_naming_the_field(stub: api_pb2_grpc.SuggestionStub, breaks: Any) -> None:
    doc = _doc(UPSTREAM_CPU)
    path = breaks(doc)
    err = _validate_error(stub, doc)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert path in err.details(), err.details()


@pytest.mark.parametrize("breaks", [*BAD_NAS, "both"], ids=lambda f: f if isinstance(f, str) else f.__name__.strip("_"))
def test_katib_validate_refuses_bad_nas_config(tmp_path: Path, capsys: pytest.CaptureFixture[str], breaks: Any) -> None:
    doc = _doc(ROOT / "examples/nas/darts-cpu.yaml")
    if breaks == "both":
        doc["spec"]["parameters"] = [{"name": "lr", "parameterType": "double",
                                      "feasibleSpace": {"min": "0.01", "max": "0.1"}}]
        path = "spec"
    else:
        path = breaks(doc)
    file = tmp_path / "darts.yaml"
    file.write_text(yaml.safe_dump(doc))
    assert main(["validate", str(file)]) != 0
    err = capsys.readouterr().err
    assert path in err, err
    if breaks == "both":
        assert "only one of spec.parameters and spec.nasConfig" in err


def test_skip_connection_needs_no_parameters(stub: api_pb2_grpc.SuggestionStub) -> None:
    # Upstream's darts-gpu.yaml lists skip_connection without parameters.
    doc = _doc(UPSTREAM_GPU)
    stub.ValidateAlgorithmSettings(converters.validate_request(_experiment(doc)), timeout=30)


# --- replies ------------------------------------------------------------------------------

@pytest.mark.parametrize("path, settings, space, layers", [
    (UPSTREAM_CPU, CPU_SETTINGS, "['max_pooling_3x3']", "1"),
    (UPSTREAM_GPU, GPU_SETTINGS, GPU_SPACE, "3"),
], ids=["darts-cpu", "darts-gpu"])
def test_reply_is_upstreams_string_for_string(stub: api_pb2_grpc.SuggestionStub, path: Path, settings: str,
                                              space: str, layers: str) -> None:
    replies = _ask(stub, _doc(path), 2)
    expected = {"algorithm-settings": settings, "search-space": space, "num-layers": layers}
    # Upstream's controller asks for as many as it may create and gets them all, equal.
    assert replies == [expected, expected]


def test_in_process_reply_equals_the_grpc_reply(stub: api_pb2_grpc.SuggestionStub) -> None:
    exp = _experiment(_doc(UPSTREAM_GPU))
    (local,) = InProcessSuggester().suggest(exp, [], 1)
    assert dict(local.values) == _ask(stub, _doc(UPSTREAM_GPU), 1)[0]


def test_skip_connection_is_named_as_is_even_with_parameters(stub: api_pb2_grpc.SuggestionStub) -> None:
    # Upstream's get_search_space checks the operation type before reading any parameter.
    doc = _doc(UPSTREAM_CPU)
    _nas(doc)["operations"].append({"operationType": "skip_connection", "parameters": [
        {"name": "filter_size", "parameterType": "categorical", "feasibleSpace": {"list": ["3", "5"]}}]})
    (reply,) = _ask(stub, doc, 1)
    assert reply["search-space"] == "['max_pooling_3x3', 'skip_connection']"
