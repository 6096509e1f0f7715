"""The generated CRDs, offline: the checked-in copy is current, the schemas are structural
as Kubernetes 1.20 understands it, and every shipped experiment fits the Experiment schema
(checked with jsonschema, which ignores the x-kubernetes-* extensions; the API-server tests
check those)."""

from __future__ import annotations

import dataclasses
import glob
from typing import Any, Iterator

import jsonschema
import pytest
import yaml

from katib.api import crd, model
from tests.manifests.conftest import CRDS_FILE, REPO

EXAMPLE_GLOBS = ("examples/**/*.yaml", "tests/api/upstream_examples/**/*.yaml")
SAMPLE = REPO / "tests" / "manifests" / "sample_experiment.yaml"


def sample_experiment() -> dict[str, Any]:
    """A fresh copy of this suite's own upstream-shaped experiment."""
    with open(SAMPLE, encoding="utf-8") as f:
        return dict(yaml.safe_load(f))


def experiment_examples() -> list[tuple[str, dict[str, Any]]]:
    """Every Experiment under examples/ and tests/api/upstream_examples/, plus the sample."""
    found = [("tests/manifests/sample_experiment.yaml", sample_experiment())]
    for pattern in EXAMPLE_GLOBS:
        for path in sorted(glob.glob(str(REPO / pattern), recursive=True)):
            with open(path, encoding="utf-8") as f:
                for doc in yaml.safe_load_all(f):
                    if doc and doc.get("kind") == "Experiment":
                        found.append((path[len(str(REPO)) + 1:], doc))
    return found


def schemas() -> dict[str, dict[str, Any]]:
    return {c["spec"]["names"]["kind"]: c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
            for c in crd.crds()}


def walk(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}")
    if "items" in schema:
        yield from walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk(schema["additionalProperties"], f"{path}{{}}")


def test_checked_in_crds_are_current() -> None:
    assert CRDS_FILE.read_text(encoding="utf-8") == crd.render(), (
        "manifests/base/crds.yaml is stale: run `python -m katib.api.crd > manifests/base/crds.yaml`")


def test_three_kinds_with_upstream_names_columns_and_status() -> None:
    crds = {c["spec"]["names"]["kind"]: c for c in crd.crds()}
    assert set(crds) == {"Experiment", "Trial", "Suggestion"}
    for kind, c in crds.items():
        assert c["metadata"]["name"] == f"{kind.lower()}s.kubeflow.org"
        assert c["spec"]["scope"] == "Namespaced"
        (version,) = c["spec"]["versions"]
        assert version["name"] == "v1beta1" and version["served"] and version["storage"]
        assert version["subresources"] == {"status": {}}
        columns = {col["name"]: col for col in version["additionalPrinterColumns"]}
        assert columns["Type"]["jsonPath"] == ".status.conditions[-1:].type"
        assert columns["Status"]["jsonPath"] == ".status.conditions[-1:].status"
        assert columns["Age"]["jsonPath"] == ".metadata.creationTimestamp"
    suggestion = {col["name"]: col["jsonPath"]
                  for col in crds["Suggestion"]["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert suggestion["Requested"] == ".spec.requests"
    assert suggestion["Assigned"] == ".status.suggestionCount"


@pytest.mark.parametrize("kind", ["Experiment", "Trial", "Suggestion"])
def test_schema_is_structural_for_kubernetes_1_20(kind: str) -> None:
    root = schemas()[kind]
    for path, node in walk(root):
        assert "type" in node, f"{kind}{path}: every node of a structural schema needs a type"
        assert "x-kubernetes-validations" not in node, f"{kind}{path}: CEL needs Kubernetes 1.25"
        # Forbidden in structural schemas or unsupported by apiextensions v1.
        for word in ("$ref", "allOf", "anyOf", "oneOf", "not", "definitions", "nullable"):
            assert word not in node, f"{kind}{path}: {word}"
        if node.get("x-kubernetes-list-type") == "map":
            item = node["items"]
            for key in node["x-kubernetes-list-map-keys"]:
                assert key in item.get("required", []), f"{kind}{path}: map key {key} must be required"
        for name in node.get("required", []):
            assert name in node["properties"], f"{kind}{path}: required {name} is not a property"
    # At the root, metadata may only constrain name and generateName.
    assert set(root["properties"]["metadata"].get("properties", {})) <= {"name", "generateName"}


def test_free_form_only_where_content_is_free_form() -> None:
    free = {(kind, path) for kind, root in schemas().items() for path, node in walk(root)
            if node.get("x-kubernetes-preserve-unknown-fields")}
    assert free == {
        ("Experiment", ".spec.trialTemplate.trialSpec"),
        ("Experiment", ".spec.metricsCollectorSpec.collector.customCollector"),
        ("Experiment", ".spec.metricsCollectorSpec.source.httpGet"),
        ("Trial", ".spec.runSpec"),
        ("Trial", ".spec.metricsCollector.collector.customCollector"),
        ("Trial", ".spec.metricsCollector.source.httpGet"),
    }


def test_closed_sets_are_enums_from_the_model() -> None:
    spec = schemas()["Experiment"]["properties"]["spec"]["properties"]
    param = spec["parameters"]["items"]["properties"]
    assert param["parameterType"]["enum"] == list(model.ParameterType.ALL)
    assert set(param["feasibleSpace"]["properties"]["distribution"]["enum"]) == set(model.Distribution.ALL) | {""}
    assert spec["objective"]["properties"]["type"]["enum"] == list(model.ObjectiveType.ALL)
    collector = spec["metricsCollectorSpec"]["properties"]["collector"]["properties"]
    assert collector["kind"]["enum"] == list(model.CollectorKind.ALL)
    assert set(spec["resumePolicy"]["enum"]) == set(model.ResumePolicy.ALL) | {""}
    assert spec["parameters"]["x-kubernetes-list-map-keys"] == ["name"]
    assert spec["nasConfig"]["properties"]["operations"]["x-kubernetes-list-map-keys"] == ["operationType"]
    assert set(spec) >= {"parameters", "objective", "algorithm", "earlyStopping", "trialTemplate",
                         "parallelTrialCount", "maxTrialCount", "maxFailedTrialCount",
                         "metricsCollectorSpec", "nasConfig", "resumePolicy"}
    trial_status = schemas()["Trial"]["properties"]["status"]["properties"]
    assert trial_status["startTime"] == {"type": "string", "format": "date-time"}


def test_every_shipped_experiment_fits_the_schema() -> None:
    examples = experiment_examples()
    validator = jsonschema.Draft7Validator(schemas()["Experiment"])
    problems = [f"{path}: {'.'.join(map(str, e.path))}: {e.message}"
                for path, doc in examples for e in validator.iter_errors(doc)]
    assert not problems, "\n".join(problems)


def test_malformed_experiment_is_refused_offline() -> None:
    bad = sample_experiment()
    bad["spec"]["maxTrialCount"] = "twelve"
    bad["spec"]["parameters"][0]["parameterType"] = "float"
    del bad["spec"]["objective"]
    errors = {(".".join(map(str, e.path)), e.validator)
              for e in jsonschema.Draft7Validator(schemas()["Experiment"]).iter_errors(bad)}
    assert errors == {("spec.maxTrialCount", "type"), ("spec.parameters.0.parameterType", "enum"),
                      ("spec", "required")}


def test_suggestion_model_round_trips() -> None:
    data = {"apiVersion": "kubeflow.org/v1beta1", "kind": "Suggestion", "metadata": {"name": "s"},
            "spec": {"algorithm": {"algorithmName": "random"}, "requests": 3},
            "status": {"suggestionCount": 1, "suggestions": [
                {"name": "s-abc", "parameterAssignments": [{"name": "lr", "value": "0.1"}]}]}}
    assert crd.Suggestion.from_dict(data).to_dict() == data


def test_schema_tables_name_real_fields() -> None:
    """A misspelt field name in crd.py's tables would silently drop an enum or a rule."""
    tables: list[Any] = [crd._ENUMS, crd._REQUIRED, crd._OPTIONAL, crd._LIST_MAP_KEYS, crd._SETS,
                         crd._EMBEDDED, crd._MINIMUM, crd._INT64, crd._DOCS]
    for table in tables:
        for cls, name in table:
            assert name in {f.name for f in dataclasses.fields(cls)}, f"{cls.__name__}.{name}"
