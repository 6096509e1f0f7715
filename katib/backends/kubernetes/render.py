"""Trial objects and the workloads they run, as the controller creates them.

Upstream changes trial pods in an admission webhook (labels, env, metrics sidecar). We have
no webhook, so the controller does the same at render time, on the workload manifest:

- the workload and every pod template in it get ``katib.kubeflow.org/experiment`` and
  ``katib.kubeflow.org/trial`` labels (pods of kinds whose templates we cannot see are
  found through owner references instead);
- the primary container gets ``KATIB_TRIAL_NAME`` (what ``report_metrics`` reads) and, when
  a DB manager is configured, ``KATIB_DB_MANAGER_ADDRESS``;
- File collector: the primary container's command is wrapped so that it records its exit
  in the metrics directory, and a sidecar prints the metrics file to its stdout until then;
  the controller reads the sidecar's log like a StdOut trial's (no shared process
  namespace, no image pulls). The wrapper passes arguments with ``"$@"``, so nothing is
  re-split or re-quoted (upstream joins them with spaces, §13 item 14);
- Custom collector: the user's container is added to the primary pod as is.
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass
from typing import Any

from katib.api.model import CollectorKind, EarlyStoppingRule, Experiment, Trial
from katib.backends.kubernetes.resources import API_VERSION, EXPERIMENT_LABEL, TRIAL_LABEL, owner_reference
from katib.controller.template import primary_container
from katib.errors import TemplateError

__all__ = ["RenderOptions", "trial_manifest", "workload_manifest", "log_container", "SIDECAR_NAME",
           "SIDECAR_SCRIPT", "WRAPPER_SCRIPT"]

SIDECAR_NAME = "katib-metrics-collector"
METRICS_VOLUME = "katib-metrics"
DEFAULT_METRICS_PATH = "/var/log/katib/metrics.log"

# Runs the primary container's command, passes SIGTERM on, records the exit status where
# the sidecar looks for it, and exits with the command's status.
WRAPPER_SCRIPT = """mkdir -p "$(dirname "$KATIB_DONE_FILE")"
"$@" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null' TERM INT
wait "$child"
rc=$?
while kill -0 "$child" 2>/dev/null; do wait "$child"; rc=$?; done
echo "$rc" > "$KATIB_DONE_FILE"
exit "$rc"
"""

# Prints the metrics file to stdout as it grows; after the primary container recorded its
# exit, drains what is left and exits (so the pod, and a Job, can complete).
SIDECAR_SCRIPT = """import os, sys, time
path, done = sys.argv[1], sys.argv[2]
out, pos = sys.stdout.buffer, 0
while True:
    finished = os.path.exists(done)
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size < pos:
                pos = 0
            f.seek(pos)
            data = f.read()
        if data:
            out.write(data)
            out.flush()
            pos += len(data)
    except FileNotFoundError:
        pass
    if finished:
        break
    time.sleep(0.5)
"""


@dataclass
class RenderOptions:
    sidecar_image: str = "python:3.12-slim"
    sidecar_python: str = "python3"
    db_manager_address: str | None = None


def trial_manifest(exp_obj: dict[str, Any], exp: Experiment, name: str, assignments: dict[str, str],
                   labels: dict[str, str], rules: list[EarlyStoppingRule],
                   run_spec: dict[str, Any] | None) -> dict[str, Any]:
    """A Trial as upstream's experiment controller creates it (§2): experiment labels plus
    the experiment label and the suggestion's labels, owned by the experiment."""
    spec = exp.spec
    template = spec.trial_template
    trial_labels = dict(exp.metadata.labels)
    trial_labels.update(labels)
    trial_labels[EXPERIMENT_LABEL] = exp.name
    body: dict[str, Any] = {
        "objective": spec.objective.to_dict() if spec.objective else None,
        "parameterAssignments": [{"name": k, "value": v} for k, v in assignments.items()],
        "earlyStoppingRules": [r.to_dict() for r in rules] or None,
        "runSpec": run_spec,
        "retainRun": bool(template and template.retain) or None,
        "metricsCollector": spec.metrics_collector_spec.to_dict() if spec.metrics_collector_spec else None,
        "primaryPodLabels": template.primary_pod_labels if template else None,
        "primaryContainerName": template.primary_container_name if template else None,
        "labels": dict(labels) or None,
    }
    if template and template.success_condition and template.failure_condition:
        body["successCondition"] = template.success_condition
        body["failureCondition"] = template.failure_condition
    return {
        "apiVersion": API_VERSION, "kind": "Trial",
        "metadata": {"name": name, "namespace": exp_obj["metadata"]["namespace"], "labels": trial_labels,
                     "ownerReferences": [owner_reference(exp_obj)]},
        "spec": {k: v for k, v in body.items() if v is not None},
    }


_PATH_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _at(obj: Any, path: str) -> Any:
    for key, index in _PATH_TOKEN.findall(path):
        obj = obj[int(index)] if index else obj[key]
    return obj


def _pod_templates(node: Any) -> list[dict[str, Any]]:
    """Every pod template (``{metadata?, spec: {containers: [...]}}``) in a manifest."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        spec = node.get("spec")
        if isinstance(spec, dict) and isinstance(spec.get("containers"), list) and node is not None:
            found.append(node)
        for value in node.values():
            found.extend(_pod_templates(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_pod_templates(value))
    return found


def _set_env(container: dict[str, Any], name: str, value: str | None = None, field_path: str | None = None) -> None:
    env = [e for e in container.get("env") or [] if not (isinstance(e, dict) and e.get("name") == name)]
    env.append({"name": name, "valueFrom": {"fieldRef": {"fieldPath": field_path}}} if field_path
               else {"name": name, "value": value})
    container["env"] = env


def log_container(trial: Trial) -> str:
    """The container whose log holds the trial's metrics: the sidecar for File, else the
    primary container (under the name its pods give it, e.g. Tekton's ``step-<name>``)."""
    if _kind(trial) == CollectorKind.FILE:
        return SIDECAR_NAME
    name = trial.spec.primary_container_name or ""
    if trial.spec.run_spec:
        try:
            return primary_container(trial.spec.run_spec, name, primary_pod_labels=trial.spec.primary_pod_labels).name
        except TemplateError:
            pass
    return name


def _kind(trial: Trial) -> str:
    mc = trial.spec.metrics_collector
    return mc.kind if mc else CollectorKind.STDOUT


def workload_manifest(trial_obj: dict[str, Any], trial: Trial, options: RenderOptions) -> dict[str, Any]:
    """The workload of a trial: its run spec with labels, owner reference, env and the
    metrics sidecar. TemplateError when the run spec cannot carry what the collector needs."""
    if not trial.spec.run_spec:
        raise TemplateError("the trial has no spec.runSpec")
    body = copy.deepcopy(trial.spec.run_spec)
    meta = body.setdefault("metadata", {})
    meta["name"] = trial.name
    meta["namespace"] = trial.metadata.namespace
    labels = {EXPERIMENT_LABEL: trial.metadata.labels.get(EXPERIMENT_LABEL, ""), TRIAL_LABEL: trial.name}
    meta["labels"] = {**(meta.get("labels") or {}), **labels}
    meta["ownerReferences"] = [owner_reference(trial_obj)]
    for template in _pod_templates(body.get("spec")):
        tmeta = template.setdefault("metadata", {})
        tmeta["labels"] = {**(tmeta.get("labels") or {}), **labels}
    ref = primary_container(body, trial.spec.primary_container_name or "",
                            primary_pod_labels=trial.spec.primary_pod_labels)
    container = _at(body, ref.path)
    _set_env(container, "KATIB_TRIAL_NAME", trial.name)
    if options.db_manager_address:
        _set_env(container, "KATIB_DB_MANAGER_ADDRESS", options.db_manager_address)
    kind = _kind(trial)
    if kind == CollectorKind.FILE:
        _add_file_sidecar(body, ref.path, container, trial, options)
    elif kind == CollectorKind.CUSTOM:
        _add_custom_collector(body, ref.path, trial)
    return body  # type: ignore[no-any-return]


def _pod_spec_of(body: dict[str, Any], container_path: str, what: str) -> dict[str, Any]:
    m = re.fullmatch(r"(.*)\.containers\[\d+\]", container_path)
    if not m:
        raise TemplateError(f"the {what} needs the primary container in a pod template (spec.containers); "
                            f"this {body.get('kind')} keeps it at {container_path}: use the StdOut or Push collector")
    return _at(body, m.group(1))  # type: ignore[no-any-return]


def _add_file_sidecar(body: dict[str, Any], path: str, container: dict[str, Any], trial: Trial,
                      options: RenderOptions) -> None:
    pod_spec = _pod_spec_of(body, path, "File metrics collector")
    mc = trial.spec.metrics_collector
    fsp = mc.source.file_system_path if mc and mc.source else None
    metrics_path = (fsp.path if fsp else None) or DEFAULT_METRICS_PATH
    directory = os.path.dirname(metrics_path) or "/"
    argv = [*(container.get("command") or []), *(container.get("args") or [])]
    if not container.get("command"):
        raise TemplateError("the File metrics collector wraps the primary container's command to know when it "
                            "ends; give the primary container an explicit command (and args)")
    done = f"{directory.rstrip('/')}/.katib-done-$(KATIB_POD_NAME)"
    for c in (container,):
        _set_env(c, "KATIB_POD_NAME", field_path="metadata.name")
        _set_env(c, "KATIB_DONE_FILE", done)
    container["command"] = ["sh", "-c", WRAPPER_SCRIPT, "katib-wrap", *argv]
    container.pop("args", None)
    mount = {"name": METRICS_VOLUME, "mountPath": directory}
    container["volumeMounts"] = [*(container.get("volumeMounts") or []), mount]
    sidecar: dict[str, Any] = {
        "name": SIDECAR_NAME, "image": options.sidecar_image,
        "command": [options.sidecar_python, "-u", "-c", SIDECAR_SCRIPT, metrics_path, "$(KATIB_DONE_FILE)"],
        "env": [], "volumeMounts": [dict(mount)],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "200m", "memory": "64Mi"}},
    }
    _set_env(sidecar, "KATIB_POD_NAME", field_path="metadata.name")
    _set_env(sidecar, "KATIB_DONE_FILE", done)
    pod_spec["containers"] = [*pod_spec["containers"], sidecar]
    volumes = [v for v in pod_spec.get("volumes") or [] if v.get("name") != METRICS_VOLUME]
    pod_spec["volumes"] = [*volumes, {"name": METRICS_VOLUME, "emptyDir": {}}]


def _add_custom_collector(body: dict[str, Any], path: str, trial: Trial) -> None:
    mc = trial.spec.metrics_collector
    custom = mc.collector.custom_collector if mc and mc.collector else None
    if not custom:
        raise TemplateError("metricsCollectorSpec.collector.customCollector is required for the Custom collector")
    pod_spec = _pod_spec_of(body, path, "Custom metrics collector")
    collector = copy.deepcopy(custom)
    _set_env(collector, "KATIB_TRIAL_NAME", trial.name)
    pod_spec["containers"] = [*pod_spec["containers"], collector]
