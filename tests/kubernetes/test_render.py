"""Trial and workload manifests, and the File collector's wrapper and sidecar (no cluster)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from katib.api.defaults import set_defaults
from katib.api.model import Experiment, Trial
from katib.backends.kubernetes.render import (
    SIDECAR_NAME, SIDECAR_SCRIPT, WRAPPER_SCRIPT, RenderOptions, log_container, trial_manifest, workload_manifest,
)
from katib.errors import TemplateError

EXP_OBJ = {"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
           "metadata": {"name": "exp", "namespace": "ns", "uid": "exp-uid"}}
TRIAL_OBJ = {"apiVersion": "kubeflow.org/v1beta1", "kind": "Trial",
             "metadata": {"name": "exp-abcdefgh", "namespace": "ns", "uid": "trial-uid"}}

JOB = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "exp-abcdefgh", "namespace": "ns"},
       "spec": {"template": {"metadata": {"labels": {"app": "x"}}, "spec": {"restartPolicy": "Never", "containers": [
           {"name": "main", "image": "img", "command": ["python3", "train.py"],
            "args": ["--msg", "it's \"quoted\" $HOME", "--lr=0.1"]},
           {"name": "helper", "image": "img", "command": ["sleep", "1"]}]}}}}


def trial(run_spec: dict[str, Any], collector: dict[str, Any] | None = None, **spec: Any) -> Trial:
    body = {"apiVersion": "kubeflow.org/v1beta1", "kind": "Trial",
            "metadata": {"name": "exp-abcdefgh", "namespace": "ns",
                         "labels": {"katib.kubeflow.org/experiment": "exp"}},
            "spec": {"runSpec": run_spec, "primaryContainerName": "main",
                     "objective": {"type": "maximize", "objectiveMetricName": "acc"},
                     "metricsCollector": collector or {"collector": {"kind": "StdOut"}}, **spec}}
    return Trial.from_dict(body)  # type: ignore[no-any-return]


def test_job_workload_is_labelled_owned_and_told_its_trial() -> None:
    body = workload_manifest(TRIAL_OBJ, trial(JOB), RenderOptions(db_manager_address="db:6789"))
    labels = {"katib.kubeflow.org/experiment": "exp", "katib.kubeflow.org/trial": "exp-abcdefgh"}
    assert body["metadata"]["labels"] == labels
    assert body["spec"]["template"]["metadata"]["labels"] == {"app": "x", **labels}
    owner = body["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("Trial", "exp-abcdefgh", "trial-uid")
    assert owner["controller"] is True
    main, helper = body["spec"]["template"]["spec"]["containers"]
    assert {"name": "KATIB_TRIAL_NAME", "value": "exp-abcdefgh"} in main["env"]
    assert {"name": "KATIB_DB_MANAGER_ADDRESS", "value": "db:6789"} in main["env"]
    assert "env" not in helper
    assert main["args"] == JOB["spec"]["template"]["spec"]["containers"][0]["args"]  # type: ignore[index]
    assert "env" not in JOB["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]  # untouched


def test_file_collector_wraps_the_primary_container_and_adds_the_sidecar() -> None:
    collector = {"collector": {"kind": "File"},
                 "source": {"fileSystemPath": {"path": "/var/log/out/metrics.txt", "kind": "File", "format": "TEXT"}}}
    t = trial(JOB, collector)
    body = workload_manifest(TRIAL_OBJ, t, RenderOptions(sidecar_image="py:1"))
    pod = body["spec"]["template"]["spec"]
    main, helper, sidecar = pod["containers"]
    assert main["command"][:2] == ["sh", "-c"] and main["command"][3] == "katib-wrap"
    assert main["command"][4:] == ["python3", "train.py", "--msg", "it's \"quoted\" $HOME", "--lr=0.1"]
    assert "args" not in main
    assert sidecar["name"] == SIDECAR_NAME and sidecar["image"] == "py:1"
    assert sidecar["command"][-2:] == ["/var/log/out/metrics.txt", "$(KATIB_DONE_FILE)"]
    assert {"name": "katib-metrics", "emptyDir": {}} in pod["volumes"]
    for c in (main, sidecar):
        assert {"name": "katib-metrics", "mountPath": "/var/log/out"} in c["volumeMounts"]
    assert log_container(t) == SIDECAR_NAME
    assert log_container(trial(JOB)) == "main"


def test_file_collector_needs_a_pod_template_and_a_command() -> None:
    collector = {"collector": {"kind": "File"}, "source": {"fileSystemPath": {"path": "/m/x.log"}}}
    trainjob = {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "metadata": {},
                "spec": {"trainer": {"command": ["python3", "x.py"]}}}
    with pytest.raises(TemplateError, match="pod template"):
        workload_manifest(TRIAL_OBJ, trial(trainjob, collector, primaryContainerName="node"), RenderOptions())
    no_command: dict[str, Any] = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {}, "spec": {"template": {
        "spec": {"containers": [{"name": "main", "image": "img"}]}}}}
    with pytest.raises(TemplateError, match="explicit command"):
        workload_manifest(TRIAL_OBJ, trial(no_command, collector), RenderOptions())


def test_custom_collector_container_is_added_to_the_primary_pod() -> None:
    collector = {"collector": {"kind": "Custom", "customCollector": {"name": "mine", "image": "c:1"}}}
    body = workload_manifest(TRIAL_OBJ, trial(JOB, collector), RenderOptions())
    names = [c["name"] for c in body["spec"]["template"]["spec"]["containers"]]
    assert names == ["main", "helper", "mine"]


def test_kubeflow_replicas_get_env_in_the_primary_replica_only() -> None:
    pytorch = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {}, "spec": {"pytorchReplicaSpecs": {
        "Master": {"replicas": 1, "template": {"spec": {"containers": [{"name": "pytorch", "command": ["a"]}]}}},
        "Worker": {"replicas": 2, "template": {"spec": {"containers": [{"name": "pytorch", "command": ["a"]}]}}}}}}
    body = workload_manifest(TRIAL_OBJ, trial(pytorch, primaryContainerName="pytorch"), RenderOptions())
    replicas = body["spec"]["pytorchReplicaSpecs"]
    assert any(e["name"] == "KATIB_TRIAL_NAME" for e in replicas["Master"]["template"]["spec"]["containers"][0]["env"])
    assert "env" not in replicas["Worker"]["template"]["spec"]["containers"][0]
    for r in replicas.values():  # every pod carries the trial label
        assert r["template"]["metadata"]["labels"]["katib.kubeflow.org/trial"] == "exp-abcdefgh"


def test_tekton_reads_the_step_container() -> None:
    run = {"apiVersion": "tekton.dev/v1beta1", "kind": "PipelineRun", "metadata": {}, "spec": {"pipelineSpec": {
        "tasks": [{"name": "t", "taskSpec": {"steps": [{"name": "train", "image": "x", "command": ["a"]}]}}]}}}
    assert log_container(trial(run, primaryContainerName="step-train")) == "step-train"


def test_trial_manifest_is_owned_by_the_experiment_and_copies_the_template() -> None:
    exp = Experiment.from_dict({
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
        "metadata": {"name": "exp", "namespace": "ns", "labels": {"team": "a"}},
        "spec": {"objective": {"type": "minimize", "objectiveMetricName": "loss"},
                 "algorithm": {"algorithmName": "random"},
                 "parameters": [{"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}],
                 "trialTemplate": {"primaryContainerName": "main", "retain": True,
                                   "trialParameters": [{"name": "lr", "reference": "lr"}], "trialSpec": JOB}}})
    set_defaults(exp)
    body = trial_manifest(EXP_OBJ, exp, "exp-abcdefgh", {"lr": "0.5"}, {"bracket": "1"}, [], JOB)
    meta = body["metadata"]
    assert meta["labels"] == {"team": "a", "bracket": "1", "katib.kubeflow.org/experiment": "exp"}
    assert meta["ownerReferences"][0]["uid"] == "exp-uid"
    spec = body["spec"]
    assert spec["parameterAssignments"] == [{"name": "lr", "value": "0.5"}]
    assert spec["retainRun"] is True and spec["primaryContainerName"] == "main"
    assert spec["successCondition"].startswith("status.conditions")
    assert spec["metricsCollector"] == {"collector": {"kind": "StdOut"}}
    assert spec["objective"]["metricStrategies"] == [{"name": "loss", "value": "min"}]
    assert spec["labels"] == {"bracket": "1"}


@pytest.mark.skipif(not os.path.exists("/bin/sh"), reason="needs a POSIX shell")
@pytest.mark.parametrize("exit_code", [0, 3])
def test_wrapper_and_sidecar_carry_the_file_and_the_exit_status(tmp_path: Path, exit_code: int) -> None:
    metrics = tmp_path / "m" / "metrics.log"
    done = tmp_path / "m" / ".katib-done-pod"
    env = dict(os.environ, KATIB_DONE_FILE=str(done))
    train = (f"import time, pathlib, sys\np = pathlib.Path({str(metrics)!r})\n"
             "for i in range(3):\n"
             "    with p.open('a') as f: f.write(f'step={i} acc=0.{i}\\n')\n"
             "    time.sleep(0.2)\n"
             f"sys.exit({exit_code})\n")
    sidecar = subprocess.Popen([sys.executable, "-u", "-c", SIDECAR_SCRIPT, str(metrics), str(done)],
                               stdout=subprocess.PIPE, env=env)
    wrapped = subprocess.run(["sh", "-c", WRAPPER_SCRIPT, "katib-wrap", sys.executable, "-c", train], env=env,
                             timeout=30)
    out, _ = sidecar.communicate(timeout=30)
    assert wrapped.returncode == exit_code
    assert done.read_text().strip() == str(exit_code)
    assert out.decode() == metrics.read_text() == "step=0 acc=0.0\nstep=1 acc=0.1\nstep=2 acc=0.2\n"
