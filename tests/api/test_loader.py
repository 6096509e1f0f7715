"""Loading experiments from YAML/JSON: documents, ConfigMaps, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from katib.api.loader import ConfigMapLookup, dump_yaml, load_experiment, load_experiments
from katib.errors import ValidationError
from tests.api.factory import BASE, experiment, find

EXP = yaml.safe_dump(BASE, sort_keys=False)
CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: templates
data:
  job.yaml: |
    apiVersion: batch/v1
    kind: Job
"""


def test_load_one_experiment_from_text_and_file(tmp_path: Path) -> None:
    exp = load_experiment(EXP)
    assert exp.name == "demo" and exp.spec.parameters[1].feasible_space.max == "3"
    path = tmp_path / "exp.yaml"
    path.write_text(EXP)
    assert load_experiment(path).to_dict() == exp.to_dict()
    assert load_experiment(str(path)).to_dict() == exp.to_dict()


def test_json_text() -> None:
    text = json.dumps(BASE, indent="\t")  # tabs: JSON allows them, YAML does not
    assert load_experiment(text).name == "demo"


def test_multi_document_with_configmap(tmp_path: Path) -> None:
    other = EXP.replace("name: demo", "name: second")
    text = f"---\n{EXP}---\n{CONFIGMAP}---\n{other}---\n"
    lookup = ConfigMapLookup()
    exps = load_experiments(text, config_maps=lookup)
    assert [e.name for e in exps] == ["demo", "second"]
    assert lookup.get("templates", "anywhere") == {"job.yaml": "apiVersion: batch/v1\nkind: Job\n"}
    assert len(load_experiments(text)) == 2  # without a lookup ConfigMaps are skipped
    path = tmp_path / "both.yaml"
    path.write_text(text)
    assert len(ConfigMapLookup.from_files(path)) == 1


def test_kind_list_is_unpacked() -> None:
    text = yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [BASE, BASE]})
    assert len(load_experiments(text)) == 2


def test_configmap_lookup_namespaces() -> None:
    lookup = ConfigMapLookup([
        {"kind": "ConfigMap", "metadata": {"name": "t", "namespace": "a"}, "data": {"k": "in a"}},
        {"kind": "ConfigMap", "metadata": {"name": "t"}, "data": {"k": "anywhere"}},
    ])
    assert lookup.get("t", "a") == {"k": "in a"}
    assert lookup.get("t", "b") == {"k": "anywhere"}
    assert lookup.get("u", "a") is None
    with pytest.raises(ValidationError, match="ConfigMap values must be text"):
        ConfigMapLookup([{"kind": "ConfigMap", "metadata": {"name": "n"}, "data": {"k": 1}}])


def test_load_experiment_needs_exactly_one() -> None:
    with pytest.raises(ValidationError, match="no Experiment in the text"):
        load_experiment(CONFIGMAP)
    with pytest.raises(ValidationError, match=r"holds 2 experiments \(demo, demo\)"):
        load_experiment(f"{EXP}---\n{EXP}")


def test_yaml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("apiVersion: kubeflow.org/v1beta1\nkind: Experiment\nspec:\n  parameters: [\n")
    with pytest.raises(ValidationError) as info:
        load_experiment(path)
    (err,) = info.value.errors
    assert err.path.startswith(f"{path}:5:") and "not valid YAML/JSON" in err.message


def test_duplicate_keys_are_rejected() -> None:
    text = EXP + "spec:\n  maxTrialCount: 1\n"
    with pytest.raises(ValidationError, match="found duplicate key 'spec' \\(first at line"):
        load_experiment(text)


@pytest.mark.parametrize("name", ["no/such/experiment.yaml", "experiment-typo"])
def test_missing_file(name: str) -> None:
    with pytest.raises(ValidationError, match="cannot read the file"):
        load_experiment(name)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("---\n")
    assert load_experiments(path) == []
    with pytest.raises(ValidationError, match="no Experiment in"):
        load_experiment(path)


@pytest.mark.parametrize("text, path, message", [
    ("- a\n- b\n", "", "must be an object with apiVersion, kind, metadata and spec, got list"),
    ("just text", "", "got str"),
    (EXP.replace("kubeflow.org/v1beta1", "kubeflow.org/v1alpha3"), "apiVersion",
     "must be kubeflow.org/v1beta1, got 'kubeflow.org/v1alpha3'"),
    (EXP.replace("kind: Experiment", "kind: Trial"), "kind", "must be Experiment, got 'Trial'"),
])
def test_not_an_experiment(text: str, path: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        load_experiments(text)
    find(info.value.errors, path, message)


def test_type_errors_come_out_with_paths() -> None:
    text = (EXP.replace("parallelTrialCount: 2", "parallelTrialCount: many")
            .replace("goal: 0.99", "goal: [1]").replace("maxTrialCount: 6", "maxTrialCount: 6\n  maxTrials: 3"))
    with pytest.raises(ValidationError) as info:
        load_experiment(text)
    errs = info.value.errors
    find(errs, "spec.parallelTrialCount", "must be an integer, got 'many'")
    find(errs, "spec.objective.goal", "must be a number")
    find(errs, "spec.maxTrials", "unknown field", "maxTrialCount")


def test_paths_say_which_document_when_there_are_several() -> None:
    bad = EXP.replace("parallelTrialCount: 2", "parallelTrialCount: x")
    with pytest.raises(ValidationError) as info:
        load_experiments(f"{EXP}---\n{bad}")
    find(info.value.errors, "documents[1].spec.parallelTrialCount", "must be an integer")


def test_bare_numbers_become_strings() -> None:
    exp = load_experiment(EXP.replace('min: "0.01"', "min: 0.01").replace("- sgd", "- 1"))
    assert exp.spec.parameters[0].feasible_space.min == "0.01"


def test_dump_yaml_round_trip() -> None:
    exp = experiment()
    exp.spec.trial_template.trial_spec["spec"]["template"]["spec"]["containers"][0]["args"] = [  # type: ignore[index]
        "line one\nline two", 'say "hi"']
    text = dump_yaml(exp)
    assert "- |-\n" in text  # multi-line strings in block style
    again = load_experiment(text)
    assert again.to_dict() == exp.to_dict()
    assert load_experiments(dump_yaml([exp, exp]))[1].to_dict() == exp.to_dict()
