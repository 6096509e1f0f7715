"""Rule 14 (parameters) and the nasConfig shape, with the checks upstream misses (§13 item 11)."""

from __future__ import annotations

from typing import Any

import pytest

from katib.api.model import Experiment
from katib.api.validation import validate
from tests.api.factory import errors_of, experiment, find

P0 = "spec.parameters[0]"
P1 = "spec.parameters[1]"
P2 = "spec.parameters[2]"


def _space(index: int, **fs: Any) -> Any:
    def mutate(d: dict[str, Any]) -> None:
        d["spec"]["parameters"][index]["feasibleSpace"] = fs
    return mutate


def test_parameter_type_must_be_known() -> None:
    errs = errors_of(lambda d: d["spec"]["parameters"][0].update(parameterType="float"))
    find(errs, f"{P0}.parameterType", "parameterType: float is not supported", "double, int")


def test_unknown_type_is_accepted_as_upstream() -> None:
    assert errors_of(lambda d: d["spec"]["parameters"][0].update(parameterType="unknown")) == []


def test_distribution_must_be_known() -> None:
    find(errors_of(_space(0, min="0.1", max="1", distribution="gaussian")), f"{P0}.feasibleSpace.distribution",
         "distribution: gaussian is not supported")


@pytest.mark.parametrize("dist", ["uniform", "logUniform", "normal", "logNormal", "unknown"])
def test_known_distributions(dist: str) -> None:
    assert errors_of(_space(0, min="0.1", max="1", distribution=dist)) == []


def test_feasible_space_must_not_be_empty() -> None:
    # Dead after defaulting upstream (distribution is always set); alive without defaults.
    exp = experiment(_space(0), defaults=False)
    find(validate(exp), f"{P0}.feasibleSpace", "feasibleSpace must be specified")


def test_range_parameters_reject_a_list() -> None:
    find(errors_of(_space(0, min="0.1", max="1", list=["0.5"])), f"{P0}.feasibleSpace.list",
         "not supported for parameterType: double")


@pytest.mark.parametrize("bound", ["min", "max"])
def test_range_parameters_need_min_and_max(bound: str) -> None:
    fs = {"min": "0.1", "max": "1"}
    fs.pop(bound)
    find(errors_of(_space(0, **fs)), f"{P0}.feasibleSpace.{bound}", f"feasibleSpace.{bound} must be specified")


@pytest.mark.parametrize("fs, path, message", [
    ({"min": "low", "max": "1"}, "min", "min must be a number, got 'low'"),
    ({"min": "0", "max": "inf"}, "max", "finite number"),
    ({"min": "0.1", "max": "1", "step": "x"}, "step", "step must be a number"),
])
def test_numbers_must_parse(fs: dict[str, str], path: str, message: str) -> None:
    find(errors_of(_space(0, **fs)), f"{P0}.feasibleSpace.{path}", message)


@pytest.mark.parametrize("fs, path, message", [
    ({"min": "1.5", "max": "3"}, "min", "whole number for an int parameter, got '1.5'"),
    ({"min": "1", "max": "3.0"}, "max", "write 3"),
    ({"min": "1", "max": "9", "step": "2.5"}, "step", "whole number"),
])
def test_int_bounds_and_step_are_whole_numbers(fs: dict[str, str], path: str, message: str) -> None:
    find(errors_of(_space(1, **fs)), f"{P1}.feasibleSpace.{path}", message)


def test_min_must_not_exceed_max() -> None:
    err = find(errors_of(_space(1, min="5", max="1")), f"{P1}.feasibleSpace.min", "min (5) must be below max (1)")
    assert str(err) == "spec.parameters[1].feasibleSpace.min: min (5) must be below max (1); swap them"


def test_min_equal_max_is_a_fixed_value() -> None:
    # Upstream's hyperband example fixes its resource parameter this way.
    assert errors_of(_space(1, min="1", max="1")) == []


@pytest.mark.parametrize("step, message", [("0", "greater than 0"), ("-0.1", "greater than 0"),
                                           ("0.5", "step (0.5) is larger than the range max - min (0.09)")])
def test_step_positive_and_within_range(step: str, message: str) -> None:
    find(errors_of(_space(0, min="0.01", max="0.1", step=step)), f"{P0}.feasibleSpace.step", message)


def test_step_valid() -> None:
    assert errors_of(_space(0, min="0.01", max="0.1", step="0.01")) == []
    assert errors_of(_space(1, min="50", max="150", step="10")) == []


@pytest.mark.parametrize("dist", ["logUniform", "logNormal"])
@pytest.mark.parametrize("low", ["0", "-1"])
def test_log_distributions_need_positive_min(dist: str, low: str) -> None:
    find(errors_of(_space(0, min=low, max="1", distribution=dist)), f"{P0}.feasibleSpace.min",
         f"{dist} needs min > 0")


def test_list_parameters_reject_range_fields() -> None:
    find(errors_of(_space(2, list=["a"], min="1")), f"{P2}.feasibleSpace",
         ".max, .min and .step is not supported for parameterType: categorical")


def test_list_must_not_be_empty() -> None:
    find(errors_of(_space(2, list=[], distribution="uniform")), f"{P2}.feasibleSpace.list", "at least one value")


def test_list_without_duplicates() -> None:
    find(errors_of(_space(2, list=["sgd", "adam", "sgd"])), f"{P2}.feasibleSpace.list[2]",
         "duplicate value 'sgd' (also list[0])")


def test_discrete_values_are_numbers() -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["spec"]["parameters"][2].update(parameterType="discrete", feasibleSpace={"list": ["1", "2.5", "many"]})

    find(errors_of(mutate), f"{P2}.feasibleSpace.list[2]", "discrete values must be numbers, got 'many'")
    assert errors_of(lambda d: d["spec"]["parameters"][2].update(
        parameterType="discrete", feasibleSpace={"list": ["1", "2.5", "1e-3"]})) == []


def test_parameter_names_unique_and_present() -> None:
    def dup(d: dict[str, Any]) -> None:
        d["spec"]["parameters"][1]["name"] = "lr"
        d["spec"]["trialTemplate"]["trialParameters"][1]["reference"] = "optimizer"
        d["spec"]["trialTemplate"]["trialParameters"].pop(2)
        d["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"].pop()

    find(errors_of(dup), f"{P1}.name", "duplicate parameter name 'lr' (also spec.parameters[0])")
    find(errors_of(lambda d: d["spec"]["parameters"][2].update(name="")), f"{P2}.name", "must be specified")


# -- nasConfig ---------------------------------------------------------------------------------

def _nas(algorithm: str, nas: dict[str, Any]) -> Experiment:
    def mutate(d: dict[str, Any]) -> None:
        d["spec"]["parameters"] = []
        d["spec"]["algorithm"] = {"algorithmName": algorithm}
        d["spec"]["nasConfig"] = nas
        d["spec"]["trialTemplate"]["trialParameters"] = [{"name": "arch", "reference": "architecture"}]
        container = d["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
        container["command"] = ["python3", "run.py", "--architecture=${trialParameters.arch}"]

    return experiment(mutate)


CONV = {"operationType": "convolution", "parameters": [
    {"name": "filter_size", "parameterType": "categorical", "feasibleSpace": {"list": ["3", "5"]}}]}
ENAS = {"graphConfig": {"numLayers": 2, "inputSizes": [8, 8, 1], "outputSizes": [10]}, "operations": [CONV]}


def test_nas_config_valid() -> None:
    assert validate(_nas("enas", ENAS)) == []
    darts = {"graphConfig": {"numLayers": 1}, "operations": [CONV, {"operationType": "skip_connection"}]}
    assert validate(_nas("darts", darts)) == []  # DARTS needs no sizes; an operation may have no parameters


@pytest.mark.parametrize("graph, path, message", [
    (None, "spec.nasConfig.graphConfig", "must be specified"),
    ({"inputSizes": [8], "outputSizes": [10]}, "spec.nasConfig.graphConfig.numLayers", "above 0, got nothing"),
    ({"numLayers": 0, "inputSizes": [8], "outputSizes": [10]}, "spec.nasConfig.graphConfig.numLayers", "got 0"),
    ({"numLayers": 1, "outputSizes": [10]}, "spec.nasConfig.graphConfig.inputSizes", "ENAS builds the network"),
    ({"numLayers": 1, "inputSizes": [8]}, "spec.nasConfig.graphConfig.outputSizes", "at least one size"),
    ({"numLayers": 1, "inputSizes": [8, 0], "outputSizes": [10]}, "spec.nasConfig.graphConfig.inputSizes[1]",
     "above 0"),
])
def test_nas_graph(graph: dict[str, Any] | None, path: str, message: str) -> None:
    nas: dict[str, Any] = {"operations": [CONV]}
    if graph is not None:
        nas["graphConfig"] = graph
    find(validate(_nas("enas", nas)), path, message)


def test_nas_operations() -> None:
    graph = ENAS["graphConfig"]
    find(validate(_nas("enas", {"graphConfig": graph})), "spec.nasConfig.operations", "at least one operation")
    find(validate(_nas("enas", {"graphConfig": graph, "operations": [{"parameters": CONV["parameters"]}]})),
         "spec.nasConfig.operations[0].operationType", "must be specified")
    find(validate(_nas("enas", {"graphConfig": graph, "operations": [CONV, CONV]})),
         "spec.nasConfig.operations[1].operationType", "duplicate operationType 'convolution'")
    bad = {"operationType": "reduction", "parameters": [
        {"name": "pool", "parameterType": "int", "feasibleSpace": {"min": "3", "max": "2"}},
        {"name": "kind", "parameterType": "categorical", "feasibleSpace": {"list": []}}]}
    errs = validate(_nas("enas", {"graphConfig": graph, "operations": [bad]}))
    find(errs, "spec.nasConfig.operations[0].parameters[0].feasibleSpace.min", "min (3) must be below max (2)")
    # NAS parameters are not defaulted (upstream defaults spec.parameters only): an empty space is empty.
    find(errs, "spec.nasConfig.operations[0].parameters[1].feasibleSpace", "feasibleSpace must be specified")
