"""Names the controller shares with upstream Katib and with the operators it drives."""

from __future__ import annotations

from typing import Any

from katib.backends.kubernetes.client import Resource

__all__ = [
    "GROUP", "VERSION", "API_VERSION", "EXPERIMENTS", "TRIALS", "SUGGESTIONS", "PODS", "CONFIGMAPS",
    "EXPERIMENT_LABEL", "TRIAL_LABEL", "WORKLOAD_KINDS", "POD_LABELS_BY_KIND", "owner_reference",
]

GROUP = "kubeflow.org"
VERSION = "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"
EXPERIMENTS = Resource(GROUP, VERSION, "experiments", "Experiment")
TRIALS = Resource(GROUP, VERSION, "trials", "Trial")
SUGGESTIONS = Resource(GROUP, VERSION, "suggestions", "Suggestion")
PODS = Resource("", "v1", "pods", "Pod")
CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap")

EXPERIMENT_LABEL = "katib.kubeflow.org/experiment"
TRIAL_LABEL = "katib.kubeflow.org/trial"

# Workload kinds watched when the cluster serves them: upstream's trialResources of the
# standalone install, plus the Argo and Tekton kinds its examples use. Any other kind still
# works as a trial template; its status changes are then seen at the next poll instead of
# at once.
WORKLOAD_KINDS: tuple[tuple[str, str], ...] = (
    ("batch/v1", "Job"),
    ("trainer.kubeflow.org/v1alpha1", "TrainJob"),
    ("kubeflow.org/v1", "TFJob"),
    ("kubeflow.org/v1", "PyTorchJob"),
    ("kubeflow.org/v1", "XGBoostJob"),
    ("kubeflow.org/v1", "MPIJob"),
    ("kubeflow.org/v2beta1", "MPIJob"),
    ("argoproj.io/v1alpha1", "Workflow"),
    ("tekton.dev/v1", "PipelineRun"),
    ("tekton.dev/v1beta1", "PipelineRun"),
)

# Labels each operator puts on the pods of a workload named {name}: tried before walking
# owner references, which costs a GET per owner.
POD_LABELS_BY_KIND: dict[str, tuple[str, ...]] = {
    "Job": ("job-name", "batch.kubernetes.io/job-name"),
    "TFJob": ("training.kubeflow.org/job-name",),
    "PyTorchJob": ("training.kubeflow.org/job-name",),
    "XGBoostJob": ("training.kubeflow.org/job-name",),
    "MPIJob": ("training.kubeflow.org/job-name",),
    "TrainJob": ("jobset.sigs.k8s.io/jobset-name",),
    "Workflow": ("workflows.argoproj.io/workflow",),
    "PipelineRun": ("tekton.dev/pipelineRun",),
}


def owner_reference(obj: dict[str, Any], controller: bool = True) -> dict[str, Any]:
    """An ownerReference to ``obj``, so that deleting it deletes what it owns."""
    meta = obj["metadata"]
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": meta["name"], "uid": meta["uid"],
            "controller": controller, "blockOwnerDeletion": True}
