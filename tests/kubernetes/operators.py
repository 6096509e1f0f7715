"""Playing the operators of the Kubeflow training-operator kinds (PyTorchJob, TFJob,
XGBoostJob, MPIJob) and Tekton (PipelineRun) on the test control plane: a minimal CRD per
kind and one generic ``OperatorPlayer`` thread that does, reduced to what Katib sees, what
the real operator does with each object of the kind:

- training operator: a pod per replica of every ``*ReplicaSpecs`` entry (the replica's pod
  template, its labels kept, plus ``training.kubeflow.org/job-name``, ``.../replica-type``,
  ``.../replica-index``, ``.../job-role: master`` on the primary replica — Master, Chief or
  Launcher — and ``mpi-job-role`` for MPIJob), owned by the workload; conditions
  ``Created``, ``Running``, then ``Succeeded`` or ``Failed`` True when the primary pod ends
  (``Running`` turned False), with the operator's reasons and messages;
- Tekton: a pod per task of the inline ``pipelineSpec`` with a container ``step-<name>`` per
  step, ``$(params.x)`` resolved (PipelineRun params -> pipeline -> task), labels
  ``tekton.dev/pipelineRun``, ``tekton.dev/pipelineTask`` and ``tekton.dev/taskRun``, tasks
  run in order; the ``Succeeded`` condition ``Unknown`` while running, then True or False.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

from katib.backends.kubernetes.client import ApiError, Kube, Resource
from katib.backends.kubernetes.resources import PODS, owner_reference
from tests.kubernetes.support import condition

__all__ = ["KINDS", "Kind", "OperatorPlayer", "crd_for"]


@dataclass(frozen=True)
class Kind:
    resource: Resource
    replica_specs: str | None  # "pytorchReplicaSpecs" …; None for Tekton

    @property
    def api_version(self) -> str:
        return f"{self.resource.group}/{self.resource.version}"


def _r(group: str, version: str, plural: str, kind: str) -> Resource:
    return Resource(group, version, plural, kind)


KINDS: dict[str, Kind] = {
    "PyTorchJob": Kind(_r("kubeflow.org", "v1", "pytorchjobs", "PyTorchJob"), "pytorchReplicaSpecs"),
    "TFJob": Kind(_r("kubeflow.org", "v1", "tfjobs", "TFJob"), "tfReplicaSpecs"),
    "XGBoostJob": Kind(_r("kubeflow.org", "v1", "xgboostjobs", "XGBoostJob"), "xgbReplicaSpecs"),
    "MPIJob": Kind(_r("kubeflow.org", "v1", "mpijobs", "MPIJob"), "mpiReplicaSpecs"),
    "PipelineRun": Kind(_r("tekton.dev", "v1", "pipelineruns", "PipelineRun"), None),
}

PRIMARY_REPLICAS = ("Master", "Chief", "Launcher")


def crd_for(kind: Kind) -> dict[str, Any]:
    """A minimal structural CRD: spec and status keep unknown fields; status subresource."""
    res = kind.resource
    loose = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{res.plural}.{res.group}"},
        "spec": {"group": res.group, "scope": "Namespaced",
                 "names": {"kind": res.kind, "plural": res.plural, "singular": res.kind.lower(),
                           "listKind": f"{res.kind}List"},
                 "versions": [{"name": res.version, "served": True, "storage": True,
                               "subresources": {"status": {}},
                               "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                                   "spec": loose, "status": loose}}}}]},
    }


def _pod_phase(pod: dict[str, Any] | None) -> str | None:
    return (pod.get("status") or {}).get("phase") if pod else None


_PARAM = re.compile(r"\$\(params\.([A-Za-z0-9_.-]+)\)")


def _subst(value: Any, params: dict[str, str]) -> Any:
    if isinstance(value, str):
        return _PARAM.sub(lambda m: params.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [_subst(v, params) for v in value]
    if isinstance(value, dict):
        return {k: _subst(v, params) for k, v in value.items()}
    return value


def _params(given: Any, declared: Any, outer: dict[str, str]) -> dict[str, str]:
    values = {p["name"]: str(p["default"]) for p in declared or [] if "default" in p}
    values.update({p["name"]: str(_subst(p.get("value", ""), outer)) for p in given or []})
    return values


class OperatorPlayer(threading.Thread):
    """Plays the operator of ``kind`` for every object of it in ``namespace``."""

    def __init__(self, kube: Kube, namespace: str, kind: Kind, interval: float = 0.2) -> None:
        super().__init__(name=f"fake-{kind.resource.kind.lower()}-operator", daemon=True)
        self.kube, self.namespace, self.kind, self.interval = kube, namespace, kind, interval
        self.stop = threading.Event()
        self.pods: dict[str, set[str]] = {}  # workload name -> names of the pods created for it
        self.errors: list[str] = []

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.join(5)

    def run(self) -> None:
        sync: Callable[[dict[str, Any]], None] = self._sync_tekton if self.kind.replica_specs is None \
            else self._sync_training
        while not self.stop.wait(self.interval):
            try:
                for obj in self.kube.list(self.kind.resource, self.namespace)[0]:
                    if not obj["metadata"].get("deletionTimestamp"):
                        sync(obj)
            except ApiError as exc:
                if not (exc.conflict or exc.status == 404):
                    self.errors.append(str(exc))  # try again next round

    # -- common ----------------------------------------------------------------------------

    def _pod(self, owner: dict[str, Any], name: str, labels: dict[str, str],
             spec: dict[str, Any]) -> dict[str, Any] | None:
        pod = self.kube.get_or_none(PODS, self.namespace, name)
        if pod is not None:
            return pod
        self.kube.create(PODS, self.namespace, {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels, "ownerReferences": [owner_reference(owner)]},
            "spec": {**spec, "restartPolicy": "Never"}})
        return None

    def _set_conditions(self, obj: dict[str, Any], conditions: list[dict[str, Any]], **extra: Any) -> None:
        status = dict(obj.get("status") or {})
        if status.get("conditions") == conditions and all(status.get(k) == v for k, v in extra.items()):
            return
        status.update(extra, conditions=conditions)
        obj["status"] = status
        self.kube.replace_status(self.kind.resource, obj)

    # -- training operator -----------------------------------------------------------------

    def _sync_training(self, job: dict[str, Any]) -> None:
        kind, name = job["kind"], job["metadata"]["name"]
        if any((condition(job, t) or {}).get("status") == "True" for t in ("Succeeded", "Failed")):
            return
        replicas: dict[str, Any] = job["spec"][self.kind.replica_specs]
        primary = next((r for r in PRIMARY_REPLICAS if r in replicas), next(iter(replicas)))
        pods: dict[tuple[str, int], dict[str, Any] | None] = {}
        for rtype, rspec in replicas.items():
            template = rspec.get("template") or {}
            containers = (template.get("spec") or {}).get("containers") or []
            if not all(c.get("command") for c in containers):
                continue  # e.g. MPI workers waiting for the launcher's ssh: nothing to run here
            for index in range(int(rspec.get("replicas", 1))):
                labels = {**((template.get("metadata") or {}).get("labels") or {}),
                          "training.kubeflow.org/operator-name": f"{kind.lower()}-controller",
                          "training.kubeflow.org/job-name": name,
                          "training.kubeflow.org/replica-type": rtype.lower(),
                          "training.kubeflow.org/replica-index": str(index)}
                if rtype == primary and index == 0:
                    labels["training.kubeflow.org/job-role"] = "master"
                if kind == "MPIJob":
                    labels["mpi-job-role"] = rtype.lower()
                pod_name = f"{name}-{rtype.lower()}-{index}"
                pods[rtype, index] = self._pod(job, pod_name, labels, template["spec"])
                self.pods.setdefault(name, set()).add(pod_name)
        now = job["metadata"]["creationTimestamp"]
        conds = [{"type": "Created", "status": "True", "reason": f"{kind}Created",
                  "message": f"{kind} {name} is created.", "lastTransitionTime": now}]
        phase = _pod_phase(pods.get((primary, 0)))
        if phase in ("Running", "Succeeded", "Failed"):
            conds.append({"type": "Running", "status": "True" if phase == "Running" else "False",
                          "reason": f"{kind}Running", "message": f"{kind} {name} is running.",
                          "lastTransitionTime": now})
        if phase == "Succeeded":
            conds.append({"type": "Succeeded", "status": "True", "reason": f"{kind}Succeeded",
                          "message": f"{kind} {name} is successfully completed.", "lastTransitionTime": now})
        elif phase == "Failed":
            conds.append({"type": "Failed", "status": "True", "reason": f"{kind}Failed",
                          "message": f"{kind} {name} is failed because 1 {primary} replica(s) failed.",
                          "lastTransitionTime": now})
        statuses: dict[str, dict[str, int]] = {}
        for (rtype, _), pod in pods.items():
            key = {"Succeeded": "succeeded", "Failed": "failed"}.get(_pod_phase(pod) or "", "active")
            counts = statuses.setdefault(rtype, {})
            counts[key] = counts.get(key, 0) + 1
        self._set_conditions(job, conds, replicaStatuses=statuses)

    # -- Tekton ----------------------------------------------------------------------------

    def _sync_tekton(self, run: dict[str, Any]) -> None:
        name = run["metadata"]["name"]
        done = condition(run, "Succeeded")
        if done is not None and done.get("status") in ("True", "False"):
            return
        pipeline = run["spec"]["pipelineSpec"]
        pipeline_params = _params(run["spec"].get("params"), pipeline.get("params"), {})
        state, reason, message = "Unknown", "Running", "Tasks Completed: 0, Incomplete: 0, Skipped: 0"
        tasks = pipeline["tasks"]
        for i, task in enumerate(tasks):
            task_spec = task["taskSpec"]
            params = _params(task.get("params"), task_spec.get("params"), pipeline_params)
            containers = []
            for step in task_spec["steps"]:
                step = _subst(step, params)
                containers.append({k: v for k, v in step.items() if k != "script"} | {"name": f"step-{step['name']}"})
            pod_name = f"{name}-{task['name']}-pod"
            labels = {**((task_spec.get("metadata") or {}).get("labels") or {}),
                      "app.kubernetes.io/managed-by": "tekton-pipelines",
                      "tekton.dev/pipelineRun": name, "tekton.dev/pipelineTask": task["name"],
                      "tekton.dev/taskRun": f"{name}-{task['name']}", "tekton.dev/memberOf": "tasks"}
            pod = self._pod(run, pod_name, labels, {"containers": containers})
            self.pods.setdefault(name, set()).add(pod_name)
            phase = _pod_phase(pod)
            if phase == "Failed":
                state, reason = "False", "Failed"
                message = f"Tasks Completed: {i + 1} (Failed: 1, Cancelled 0), Skipped: {len(tasks) - i - 1}"
                break
            if phase != "Succeeded":
                message = f"Tasks Completed: {i} (Failed: 0, Cancelled 0), Incomplete: {len(tasks) - i}, Skipped: 0"
                break
        else:
            state, reason = "True", "Succeeded"
            message = f"Tasks Completed: {len(tasks)} (Failed: 0, Cancelled 0), Skipped: 0"
        self._set_conditions(run, [{"type": "Succeeded", "status": state, "reason": reason, "message": message,
                                    "lastTransitionTime": run["metadata"]["creationTimestamp"]}])
