"""Rule 12: the trial template, with upstream's early stops, plus our extra checks."""

from __future__ import annotations

from typing import Any

import pytest

from katib.api.loader import ConfigMapLookup
from katib.api.validation import validate
from tests.api.factory import errors_of, experiment, find, paths

TT = "spec.trialTemplate"
TP = f"{TT}.trialParameters"
CMD = ["spec", "trialTemplate", "trialSpec", "spec", "template", "spec", "containers"]


def _container(d: dict[str, Any]) -> dict[str, Any]:
    node: Any = d
    for key in CMD:
        node = node[key]
    return node[0]  # type: ignore[no-any-return]


def _tt(**changes: Any) -> Any:
    def mutate(d: dict[str, Any]) -> None:
        for key, value in changes.items():
            if value is None:
                d["spec"]["trialTemplate"].pop(key, None)
            else:
                d["spec"]["trialTemplate"][key] = value
    return mutate


def test_template_required() -> None:
    find(errors_of(lambda d: d["spec"].pop("trialTemplate")), TT, "must be specified")


def test_primary_container_name_required() -> None:
    find(errors_of(_tt(primaryContainerName="")), f"{TT}.primaryContainerName", "must be specified")


def test_conditions_required_for_kinds_without_defaults() -> None:
    spec = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
            "spec": {"templates": [{"name": "t", "container": {"name": "training", "image": "x",
                                                                 "args": ["${trialParameters.learningRate}",
                                                                          "${trialParameters.layers}",
                                                                          "${trialParameters.optimizer}"]}}]}}
    find(errors_of(_tt(trialSpec=spec)), TT, "successCondition and failureCondition must be specified")
    assert errors_of(_tt(trialSpec=spec, successCondition="status.[@this].#(phase==\"Succeeded\")#",
                         failureCondition="status.[@this].#(phase==\"Failed\")#")) == []


def test_trial_parameters_required_and_stop() -> None:
    errs = errors_of(_tt(trialParameters=None, trialSpec=None))
    # Conditions are reported (no kind to default them from), then upstream stops before the source.
    assert paths(errs) == [TT, f"{TT}.trialParameters"]
    find(errs, TT, "successCondition and failureCondition")


def test_exactly_one_source() -> None:
    find(errors_of(_tt(trialSpec=None)), TT, "trialSpec or spec.trialTemplate.configMap must be specified")
    cm = {"configMapName": "t", "configMapNamespace": "default", "templatePath": "job.yaml"}
    find(errors_of(_tt(configMap=cm)), TT, "only one of spec.trialTemplate.trialSpec or spec.trialTemplate.configMap")


@pytest.mark.parametrize("missing", ["configMapName", "configMapNamespace", "templatePath"])
def test_configmap_source_needs_all_fields(missing: str) -> None:
    cm = {"configMapName": "t", "configMapNamespace": "default", "templatePath": "job.yaml"}
    cm.pop(missing)
    find(errors_of(_tt(trialSpec=None, configMap=cm)), f"{TT}.configMap",
         "configMapName, configMapNamespace and templatePath must be specified")


JOB_TEXT = """\
apiVersion: batch/v1
kind: Job
spec:
  template:
    spec:
      containers:
        - name: training
          image: python:3.11
          command: [python3, train.py, "--lr=${trialParameters.learningRate}",
                    "--layers=${trialParameters.layers}", "--optimizer=${trialParameters.optimizer}"]
      restartPolicy: Never
"""


def _cm_exp(text: str = JOB_TEXT, key: str = "job.yaml") -> tuple[Any, ConfigMapLookup]:
    lookup = ConfigMapLookup([{"kind": "ConfigMap", "metadata": {"name": "templates", "namespace": "team"},
                               "data": {key: text}}])
    cm = {"configMapName": "templates", "configMapNamespace": "team", "templatePath": "job.yaml"}
    exp = experiment(_tt(trialSpec=None, configMap=cm, successCondition="status.ok", failureCondition="status.bad"))
    return exp, lookup


def test_configmap_template_valid() -> None:
    exp, lookup = _cm_exp()
    assert validate(exp, config_maps=lookup) == []


def test_configmap_template_not_found() -> None:
    exp, _ = _cm_exp()
    find(validate(exp, config_maps=ConfigMapLookup()), f"{TT}.configMap", "ConfigMap team/templates not found")
    exp, lookup = _cm_exp(key="other.yaml")
    find(validate(exp, config_maps=lookup), f"{TT}.configMap", "has no key 'job.yaml' (keys: other.yaml)")


def test_configmap_template_without_lookup_is_not_read() -> None:
    exp, _ = _cm_exp()
    assert validate(exp) == []  # the content is checked where the ConfigMap is


def test_configmap_template_content_is_checked() -> None:
    exp, lookup = _cm_exp(JOB_TEXT.replace("${trialParameters.layers}", "${trialParameters.depth}"))
    errs = validate(exp, config_maps=lookup)
    find(errs, f"{TP}[1].name", "parameter name: layers in spec.trialParameters not found")
    exp, lookup = _cm_exp("- just\n- a list\n")
    errs = validate(exp, config_maps=lookup)
    find(errs, f"{TP}[0].name", "not found in spec.trialTemplate")
    exp, lookup = _cm_exp("[${trialParameters.learningRate}, ${trialParameters.layers}, ${trialParameters.optimizer}]")
    find(validate(exp, config_maps=lookup), TT, "must be an object")


@pytest.mark.parametrize("entry", [{"name": "", "reference": "lr"}, {"name": "x", "reference": ""},
                                   {"name": "a{b}", "reference": "lr"}])
def test_trial_parameter_name_and_reference(entry: dict[str, str]) -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["spec"]["trialTemplate"]["trialParameters"].append(entry)

    find(errors_of(mutate), f"{TP}[3]", "name and reference must be specified and name must not contain")


def test_trial_parameter_names_and_references_unique() -> None:
    def dup_name(d: dict[str, Any]) -> None:
        d["spec"]["trialTemplate"]["trialParameters"].append({"name": "layers", "reference": "lr"})

    def dup_ref(d: dict[str, Any]) -> None:
        d["spec"]["trialTemplate"]["trialParameters"].append({"name": "rate", "reference": "lr"})
        _container(d)["command"].append("${trialParameters.rate}")

    find(errors_of(dup_name), f"{TP}[3].name", "parameter name layers can't be duplicated")
    find(errors_of(dup_ref), f"{TP}[3].reference", "parameter reference lr can't be duplicated")


def test_reference_must_name_a_parameter() -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["spec"]["trialTemplate"]["trialParameters"][0]["reference"] = "learning_rate"

    find(errors_of(mutate), f"{TP}[0].reference", "parameter reference learning_rate does not exist in "
                                                  "spec.parameters (names: layers, lr, optimizer)")


def test_every_parameter_must_reach_the_template() -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["spec"]["trialTemplate"]["trialParameters"].pop(1)
        _container(d)["command"].remove("--layers=${trialParameters.layers}")

    find(errors_of(mutate), "spec.parameters[1].name", "'layers' is not referenced by any", "reference: layers")


def test_meta_references() -> None:
    def mutate(reference: str) -> Any:
        def apply(d: dict[str, Any]) -> None:
            d["spec"]["trialTemplate"]["trialParameters"].append({"name": "meta", "reference": reference})
            d["spec"]["trialTemplate"]["trialSpec"]["metadata"] = {"labels": {"team": "a"}, "annotations": {"x": "y"}}
            _container(d)["env"] = [{"name": "META", "value": "${trialParameters.meta}"}]
        return apply

    for ok in ("${trialSpec.Name}", "${trialSpec.Namespace}", "${trialSpec.Kind}", "${trialSpec.APIVersion}",
               "${trialSpec.Labels[team]}", "${trialSpec.Annotations[x]}"):
        assert errors_of(mutate(ok)) == [], ok
    find(errors_of(mutate("${trialSpec.Uid}")), f"{TP}[3].reference", "unknown trial metadata reference")
    find(errors_of(mutate("${trialSpec.Labels[owner]}")), f"{TP}[3].reference",
         "metadata.labels has no key 'owner'")


def test_placeholder_must_be_used_and_validation_stops() -> None:
    def mutate(d: dict[str, Any]) -> None:
        _container(d)["command"] = ["python3", "train.py", "--layers=${trialParameters.layers}"]
        d["spec"]["trialTemplate"]["trialSpec"]["metadata"] = {"name": "fixed"}  # not reached: stop above

    errs = errors_of(mutate)
    assert paths(errs) == [f"{TP}[0].name"]
    find(errs, f"{TP}[0].name", "use ${trialParameters.learningRate} in the template or remove this entry")


def test_every_placeholder_needs_a_trial_parameter() -> None:
    def mutate(d: dict[str, Any]) -> None:
        _container(d)["command"] += ["--seed=${trialParameters.seed}", "--x=${trialParameters.x}"]

    find(errors_of(mutate), TT, "${trialParameters.seed}, ${trialParameters.x} in spec.trialTemplate not found")


def test_metadata_name_and_namespace_omitted() -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["spec"]["trialTemplate"]["trialSpec"]["metadata"] = {"namespace": "other"}

    find(errors_of(mutate), f"{TT}.trialSpec.metadata", "must be omitted")


def test_api_version_and_kind_required() -> None:
    find(errors_of(lambda d: d["spec"]["trialTemplate"]["trialSpec"].pop("kind")), f"{TT}.trialSpec",
         "APIVersion and Kind in spec.trialTemplate must be specified")


def test_job_must_convert_to_a_batch_job() -> None:
    def typo(d: dict[str, Any]) -> None:
        _container(d)["comand"] = _container(d).pop("command")

    errs = errors_of(typo)
    find(errs, f"{TT}.trialSpec.spec.template.spec.containers[0].comand", "did you mean 'command'?")

    def number(d: dict[str, Any]) -> None:
        _container(d)["args"] = ["--epochs", 3]
        _container(d)["env"] = [{"name": "SEED", "value": 1}]

    errs = errors_of(number)
    find(errs, f"{TT}.trialSpec.spec.template.spec.containers[0].args[1]", "must be a string, got 3; quote it")
    find(errs, f"{TT}.trialSpec.spec.template.spec.containers[0].env[0].value", "must be a string")

    def no_containers(d: dict[str, Any]) -> None:
        uses = "${trialParameters.learningRate} ${trialParameters.layers} ${trialParameters.optimizer}"
        d["spec"]["trialTemplate"]["trialSpec"]["spec"] = {"template": {"metadata": {"annotations": {"a": uses}}}}

    find(errors_of(no_containers), f"{TT}.trialSpec.spec.template.spec", "needs spec.containers")


def test_job_resources_and_unusual_fields_pass() -> None:
    def mutate(d: dict[str, Any]) -> None:
        _container(d)["resources"] = {"limits": {"xilinx/aws-vu9p-f1": 1, "cpu": "500m"}}
        d["spec"]["trialTemplate"]["trialSpec"]["spec"].update(backoffLimit=0, ttlSecondsAfterFinished=60)

    assert errors_of(mutate) == []


def test_primary_container_must_exist_in_job_and_training_jobs() -> None:
    find(errors_of(_tt(primaryContainerName="trainer")), f"{TT}.primaryContainerName",
         "no container named 'trainer' in the Job template")
    spec = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "spec": {"pytorchReplicaSpecs": {"Master": {
        "template": {"spec": {"containers": [{"name": "pytorch", "image": "x", "command": [
            "${trialParameters.learningRate}", "${trialParameters.layers}", "${trialParameters.optimizer}"]}]}}}}}}
    assert errors_of(_tt(trialSpec=spec, primaryContainerName="pytorch")) == []
    find(errors_of(_tt(trialSpec=spec)), f"{TT}.primaryContainerName", "no container named 'training' in the "
                                                                       "PyTorchJob template")
