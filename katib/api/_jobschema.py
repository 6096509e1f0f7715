"""A small structural check of ``batch/v1`` Job templates.

Upstream converts a Job template into Go's ``batchv1.Job`` and rejects it when a field does
not survive the round trip (an unknown or misspelt field, a number where a string belongs).
We check the same things for the parts of a Job people write: field names of the Job, its
spec, the pod template and pod spec, containers and env entries, and the types of the
container fields trials are made of. Field lists follow Kubernetes 1.31.
"""

from __future__ import annotations

import difflib
from typing import Any

from katib.errors import FieldError

__all__ = ["check_job"]

_META = {"name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
         "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
         "annotations", "ownerReferences", "finalizers", "managedFields"}
_JOB = {"apiVersion", "kind", "metadata", "spec", "status"}
_JOB_SPEC = {"parallelism", "completions", "activeDeadlineSeconds", "podFailurePolicy", "successPolicy",
             "backoffLimit", "backoffLimitPerIndex", "maxFailedIndexes", "selector", "manualSelector",
             "template", "ttlSecondsAfterFinished", "completionMode", "suspend", "podReplacementPolicy",
             "managedBy"}
_TEMPLATE = {"metadata", "spec"}
_POD_SPEC = {"volumes", "initContainers", "containers", "ephemeralContainers", "restartPolicy",
             "terminationGracePeriodSeconds", "activeDeadlineSeconds", "dnsPolicy", "nodeSelector",
             "serviceAccountName", "serviceAccount", "automountServiceAccountToken", "nodeName",
             "hostNetwork", "hostPID", "hostIPC", "shareProcessNamespace", "securityContext",
             "imagePullSecrets", "hostname", "subdomain", "affinity", "schedulerName", "tolerations",
             "hostAliases", "priorityClassName", "priority", "dnsConfig", "readinessGates",
             "runtimeClassName", "enableServiceLinks", "preemptionPolicy", "overhead",
             "topologySpreadConstraints", "setHostnameAsFQDN", "os", "hostUsers", "schedulingGates",
             "resourceClaims", "resources"}
_CONTAINER = {"name", "image", "command", "args", "workingDir", "ports", "envFrom", "env", "resources",
              "resizePolicy", "restartPolicy", "volumeMounts", "volumeDevices", "livenessProbe",
              "readinessProbe", "startupProbe", "lifecycle", "terminationMessagePath",
              "terminationMessagePolicy", "imagePullPolicy", "securityContext", "stdin", "stdinOnce", "tty"}
_ENV = {"name", "value", "valueFrom"}


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _fields(obj: Any, known: set[str], path: str, what: str, errors: list[FieldError]) -> bool:
    """Check ``obj`` is an object whose keys are all in ``known``; False if not an object."""
    if not isinstance(obj, dict):
        errors.append(FieldError(path, f"must be an object ({what}), got {type(obj).__name__}"))
        return False
    for key in obj:
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; {what} has no such field"
            errors.append(FieldError(_join(path, str(key)), f"unknown field of a batch/v1 {what}{hint}"))
    return True


def _strings(value: Any, path: str, errors: list[FieldError]) -> None:
    if not isinstance(value, list):
        errors.append(FieldError(path, f"must be a list of strings, got {type(value).__name__}"))
        return
    for i, item in enumerate(value):
        if not isinstance(item, str):
            errors.append(FieldError(f"{path}[{i}]", f"must be a string, got {item!r}; quote it in YAML"))


def _container(c: Any, path: str, errors: list[FieldError]) -> None:
    if not _fields(c, _CONTAINER, path, "Container", errors):
        return
    if not isinstance(c.get("name"), str) or not c.get("name"):
        errors.append(FieldError(_join(path, "name"), "every container needs a name"))
    for key in ("image", "workingDir"):
        if key in c and not isinstance(c[key], str):
            errors.append(FieldError(_join(path, key), f"must be a string, got {c[key]!r}"))
    for key in ("command", "args"):
        if key in c:
            _strings(c[key], _join(path, key), errors)
    env = c.get("env")
    if env is None:
        return
    if not isinstance(env, list):
        errors.append(FieldError(_join(path, "env"), "must be a list of {name, value} entries"))
        return
    for i, entry in enumerate(env):
        epath = f"{path}.env[{i}]"
        if not _fields(entry, _ENV, epath, "EnvVar", errors):
            continue
        if not isinstance(entry.get("name"), str) or not entry.get("name"):
            errors.append(FieldError(_join(epath, "name"), "every env entry needs a name"))
        if "value" in entry and not isinstance(entry["value"], str):
            errors.append(FieldError(_join(epath, "value"), f"must be a string, got {entry['value']!r}; quote it"))


def check_job(job: dict[str, Any], path: str) -> list[FieldError]:
    """Problems that would stop ``job`` from converting to a ``batch/v1`` Job."""
    errors: list[FieldError] = []
    _fields(job, _JOB, path, "Job", errors)
    if "metadata" in job:
        _fields(job["metadata"], _META, _join(path, "metadata"), "ObjectMeta", errors)
    spec = job.get("spec")
    spath = _join(path, "spec")
    if spec is None:
        errors.append(FieldError(spath, "a Job needs spec.template.spec.containers"))
        return errors
    if not _fields(spec, _JOB_SPEC, spath, "JobSpec", errors):
        return errors
    tpath = _join(spath, "template")
    template = spec.get("template")
    if not isinstance(template, dict):
        errors.append(FieldError(tpath, "a Job needs a pod template with spec.containers"))
        return errors
    _fields(template, _TEMPLATE, tpath, "PodTemplateSpec", errors)
    if "metadata" in template:
        _fields(template["metadata"], _META, _join(tpath, "metadata"), "ObjectMeta", errors)
    ppath = _join(tpath, "spec")
    pod = template.get("spec")
    if not isinstance(pod, dict):
        errors.append(FieldError(ppath, "a Job's pod template needs spec.containers"))
        return errors
    _fields(pod, _POD_SPEC, ppath, "PodSpec", errors)
    for key in ("containers", "initContainers"):
        containers = pod.get(key)
        if containers is None:
            continue
        if not isinstance(containers, list):
            errors.append(FieldError(_join(ppath, key), "must be a list of containers"))
            continue
        for i, c in enumerate(containers):
            _container(c, f"{ppath}.{key}[{i}]", errors)
    if not pod.get("containers"):
        errors.append(FieldError(_join(ppath, "containers"), "a Job needs at least one container"))
    return errors
