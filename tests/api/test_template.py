"""Trial template rendering (reference §6.4), done on the parsed object so any value survives."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml

from katib.api.loader import ConfigMapLookup
from katib.api.model import TrialTemplate
from katib.controller.template import render_trial_spec
from katib.errors import TemplateError

ASSIGN = {"lr": "0.01", "layers": "3"}
PARAMS = [{"name": "learningRate", "reference": "lr"}, {"name": "numLayers", "reference": "layers"}]
ARGS = ["--lr=${trialParameters.learningRate}", "--layers=${trialParameters.numLayers}"]
RENDERED = ["--lr=0.01", "--layers=3"]


def _pod(name: str = "training", args: list[str] = ARGS) -> dict[str, Any]:
    return {"spec": {"containers": [{"name": name, "image": "img", "command": ["python3", "train.py"],
                                     "args": list(args)}]}}


KINDS: dict[str, tuple[dict[str, Any], list[Any]]] = {
    "Job": ({"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": _pod()}},
            ["spec", "template", "spec", "containers", 0, "args"]),
    "TFJob": ({"apiVersion": "kubeflow.org/v1", "kind": "TFJob",
               "spec": {"tfReplicaSpecs": {"Worker": {"replicas": 2, "template": _pod("tensorflow")}}}},
              ["spec", "tfReplicaSpecs", "Worker", "template", "spec", "containers", 0, "args"]),
    "PyTorchJob": ({"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
                    "spec": {"pytorchReplicaSpecs": {"Master": {"template": _pod("pytorch")},
                                                     "Worker": {"template": _pod("pytorch")}}}},
                   ["spec", "pytorchReplicaSpecs", "Worker", "template", "spec", "containers", 0, "args"]),
    "XGBoostJob": ({"apiVersion": "kubeflow.org/v1", "kind": "XGBoostJob",
                    "spec": {"xgbReplicaSpecs": {"Master": {"template": _pod("xgboost")}}}},
                   ["spec", "xgbReplicaSpecs", "Master", "template", "spec", "containers", 0, "args"]),
    "MPIJob": ({"apiVersion": "kubeflow.org/v1", "kind": "MPIJob",
                "spec": {"mpiReplicaSpecs": {"Launcher": {"template": _pod("mpi-launcher")}}}},
               ["spec", "mpiReplicaSpecs", "Launcher", "template", "spec", "containers", 0, "args"]),
    "TrainJob": ({"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob",
                  "spec": {"trainer": {"image": "img", "command": ["python3", "train.py"], "args": list(ARGS)}}},
                 ["spec", "trainer", "args"]),
    "Workflow": ({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
                  "spec": {"templates": [{"name": "train", "container": {"image": "img", "args": list(ARGS)}}]}},
                 ["spec", "templates", 0, "container", "args"]),
    "PipelineRun": ({"apiVersion": "tekton.dev/v1beta1", "kind": "PipelineRun",
                     "spec": {"params": [{"name": "lr", "value": ARGS[0]}, {"name": "layers", "value": ARGS[1]}]}},
                    ["spec", "params"]),
}


def _at(obj: Any, path: list[Any]) -> Any:
    for key in path:
        obj = obj[key]
    return obj


def _template(spec: dict[str, Any], params: list[dict[str, str]] = PARAMS) -> TrialTemplate:
    return TrialTemplate.from_dict({"trialSpec": spec, "trialParameters": params, "primaryContainerName": "x"})


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_renders(kind: str) -> None:
    spec, where = KINDS[kind]
    before = copy.deepcopy(spec)
    run = render_trial_spec(_template(spec), ASSIGN, "demo-abc", "team")
    assert run["metadata"] == {"name": "demo-abc", "namespace": "team"}
    got = _at(run, where)
    if kind == "PipelineRun":
        got = [f"--{p['name']}={p['value'].split('=')[1]}" for p in got]
        assert got == ["--lr=0.01", "--layers=3"]
    else:
        assert got == RENDERED
    assert spec == before  # the experiment's template is never modified


@pytest.mark.parametrize("value", [
    'say "hi"', "back\\slash", "line one\nline two", '{"json": ["x", 1]}', "${trialParameters.numLayers}",
    "tab\there", "unicode ✓", "'single'", "", "a}b{c",
])
def test_values_survive_exactly(value: str) -> None:
    spec, where = KINDS["Job"]
    run = render_trial_spec(_template(spec), {"lr": value, "layers": "3"}, "t", "ns")
    # A value is inserted once and never rescanned, even when it looks like a placeholder.
    assert _at(run, where) == [f"--lr={value}", "--layers=3"]
    json.dumps(run)  # still a plain JSON-able object


def test_whole_value_placeholder_and_keys() -> None:
    spec = {"apiVersion": "v1", "kind": "Pod", "metadata": {"labels": {"lr-${trialParameters.learningRate}": "x"}},
            "spec": {"env": [{"name": "LR", "value": "${trialParameters.learningRate}"}],
                     "replicas": "${trialParameters.numLayers}"}}
    run = render_trial_spec(_template(spec), ASSIGN, "t", "ns")
    assert run["spec"] == {"env": [{"name": "LR", "value": "0.01"}], "replicas": "3"}
    assert run["metadata"]["labels"] == {"lr-0.01": "x"}


META_PARAMS = PARAMS + [
    {"name": "trialName", "reference": "${trialSpec.Name}"},
    {"name": "trialNamespace", "reference": "${trialSpec.Namespace}"},
    {"name": "trialKind", "reference": "${trialSpec.Kind}"},
    {"name": "trialAPIVersion", "reference": "${trialSpec.APIVersion}"},
    {"name": "label", "reference": "${trialSpec.Labels[custom-key]}"},
    {"name": "annotation", "reference": "${trialSpec.Annotations[custom-key]}"},
]


def _meta_job() -> dict[str, Any]:
    env = [{"name": n.upper(), "value": "${trialParameters.%s}" % n}
           for n in ("trialName", "trialNamespace", "trialKind", "trialAPIVersion", "label", "annotation")]
    pod = _pod()
    pod["spec"]["containers"][0]["env"] = env
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"labels": {"custom-key": "custom-label"}, "annotations": {"custom-key": 'a "quoted"\\value'}},
            "spec": {"template": pod}}


def test_all_six_meta_references() -> None:
    run = render_trial_spec(_template(_meta_job(), META_PARAMS), ASSIGN, "demo-xyz", "team")
    env = {e["name"]: e["value"] for e in run["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env == {"TRIALNAME": "demo-xyz", "TRIALNAMESPACE": "team", "TRIALKIND": "Job",
                   "TRIALAPIVERSION": "batch/v1", "LABEL": "custom-label", "ANNOTATION": 'a "quoted"\\value'}
    assert run["metadata"]["labels"] == {"custom-key": "custom-label"}
    assert run["metadata"]["name"] == "demo-xyz"


def test_missing_label_key() -> None:
    params = PARAMS + [{"name": "owner", "reference": "${trialSpec.Labels[owner]}"}]
    with pytest.raises(TemplateError, match=r"\$\{trialSpec.Labels\[owner\]\}: the template's metadata.labels has no "
                                            r"key 'owner'"):
        render_trial_spec(_template(_meta_job(), params), ASSIGN, "t", "ns")


def test_missing_parameter() -> None:
    with pytest.raises(TemplateError, match="trial parameter 'numLayers' refers to parameter 'layers', which has no "
                                            "value in the trial's assignments \\(lr\\)"):
        render_trial_spec(_template(KINDS["Job"][0]), {"lr": "0.1"}, "t", "ns")


def test_unused_assignment() -> None:
    with pytest.raises(TemplateError, match="assignment\\(s\\) momentum not used by any"):
        render_trial_spec(_template(KINDS["Job"][0]), {**ASSIGN, "momentum": "0.9"}, "t", "ns")


def test_unknown_placeholder() -> None:
    spec = copy.deepcopy(KINDS["Job"][0])
    spec["spec"]["template"]["spec"]["containers"][0]["args"].append("--seed=${trialParameters.seed}")
    with pytest.raises(TemplateError, match="uses \\$\\{trialParameters.seed\\} but .* has no entry named 'seed'"):
        render_trial_spec(_template(spec), ASSIGN, "t", "ns")


def test_unknown_meta_reference() -> None:
    with pytest.raises(TemplateError, match="unknown metadata reference"):
        render_trial_spec(_template(KINDS["Job"][0], PARAMS + [{"name": "u", "reference": "${trialSpec.Uid}"}]),
                          ASSIGN, "t", "ns")


CONFIGMAP_TEXT = """\
apiVersion: batch/v1
kind: Job
spec:
  template:
    spec:
      containers:
        - name: training
          image: img
          command:
            - python3
            - "--architecture=\\"${trialParameters.learningRate}\\""
            - --layers=${trialParameters.numLayers}
"""


def _cm_template() -> TrialTemplate:
    return TrialTemplate.from_dict({"configMap": {"configMapName": "templates", "configMapNamespace": "team",
                                                  "templatePath": "job.yaml"},
                                    "trialParameters": PARAMS, "primaryContainerName": "training"})


def test_configmap_template_renders_values_that_break_upstream() -> None:
    lookup = ConfigMapLookup([{"kind": "ConfigMap", "metadata": {"name": "templates", "namespace": "team"},
                               "data": {"job.yaml": CONFIGMAP_TEXT}}])
    arch = '[[1], [0, 1]] {"op": "conv"}'  # ENAS-style JSON with double quotes
    run = render_trial_spec(_cm_template(), {"lr": arch, "layers": "2"}, "t-1", "team", lookup)
    command = run["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command == ["python3", f'--architecture="{arch}"', "--layers=2"]
    assert run["metadata"] == {"name": "t-1", "namespace": "team"}
    assert yaml.safe_load(yaml.safe_dump(run)) == run


def test_configmap_template_not_found() -> None:
    with pytest.raises(TemplateError, match="ConfigMap team/templates not found"):
        render_trial_spec(_cm_template(), ASSIGN, "t", "team", ConfigMapLookup())
    with pytest.raises(TemplateError, match="no ConfigMaps were given"):
        render_trial_spec(_cm_template(), ASSIGN, "t", "team")
