"""Find the primary container (the one running the training code) in a rendered run spec.

Each trial kind keeps its containers somewhere else; ``primary_container`` knows the kinds
Katib's examples use and falls back to searching the object for a container with the name.
For Tekton and Argo it also resolves the parameter references the run spec alone can
answer (``$(params.lr)``, ``{{inputs.parameters.lr}}``), so the command is the one the
workflow engine would run.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

from katib.api.model import Trial
from katib.errors import TemplateError

__all__ = ["ContainerRef", "primary_container"]

log = logging.getLogger(__name__)

# Replica types whose pods upstream treats as the primary ones; tried first, in this order.
_PREFERRED_REPLICAS = ("Master", "Chief", "Launcher")
_K8S_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
_FIELD_INDEX = re.compile(r"metadata\.(labels|annotations)\['(.+)'\]")


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def expand_vars(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: known names are replaced, ``$$`` is a literal ``$``,
    unknown references stay as written."""
    return _K8S_VAR.sub(lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), text)


@dataclass
class ContainerRef:
    """The primary container of a trial: what runs and where it sits in the run spec.

    ``env`` entries are Kubernetes EnvVars (``{name, value}`` or ``{name, valueFrom}``).
    ``path`` is where the container is in the run spec (``spec.template.spec.containers[0]``);
    ``replica`` the replica type, Argo template or Tekton task holding it, if any.
    """

    name: str
    image: str | None = None
    command: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)
    env: list[dict[str, Any]] = field(default_factory=list)
    working_dir: str | None = None
    path: str = ""
    replica: str | None = None
    script: str | None = None  # Tekton step / Argo script source, when the kind has one

    @property
    def argv(self) -> list[str]:
        return [*self.command, *self.args]

    def resolve_env(self, trial: Trial | None = None, *, pod_name: str | None = None,
                    namespace: str | None = None) -> dict[str, str]:
        """The env as the process would see it: values with ``$(VAR)`` expanded from
        entries above them, and ``fieldRef``s answered for the trial's pod (pod name = trial
        name, its namespace, labels and annotations). Secret, ConfigMap and resource
        references cannot be answered locally; they are left out with a warning."""
        name = pod_name or (trial.name if trial is not None else None) or ""
        ns = namespace or (trial.metadata.namespace if trial is not None else None) or "default"
        labels = dict(trial.metadata.labels) if trial is not None else {}
        annotations = dict(trial.metadata.annotations) if trial is not None else {}
        if trial is not None and name:
            labels.setdefault("katib.kubeflow.org/trial", name)
        out: dict[str, str] = {}
        for entry in self.env:
            var = entry.get("name")
            if not isinstance(var, str) or not var:
                continue
            if "valueFrom" in entry:
                value = self._field_value(var, entry["valueFrom"], name, ns, labels, annotations)
                if value is not None:
                    out[var] = value
                continue
            out[var] = expand_vars(str(entry.get("value", "")), out)
        return out

    @staticmethod
    def _field_value(var: str, source: Any, name: str, ns: str, labels: dict[str, str],
                     annotations: dict[str, str]) -> str | None:
        ref = source.get("fieldRef") if isinstance(source, dict) else None
        path = ref.get("fieldPath") if isinstance(ref, dict) else None
        simple = {"metadata.name": name, "metadata.namespace": ns, "spec.nodeName": "localhost",
                  "spec.serviceAccountName": "default", "status.podIP": "127.0.0.1",
                  "status.hostIP": "127.0.0.1", "metadata.uid": name}
        if isinstance(path, str):
            if path in simple:
                return simple[path]
            m = _FIELD_INDEX.fullmatch(path)
            if m:
                found = (labels if m.group(1) == "labels" else annotations).get(m.group(2))
                return found if found is not None else ""
        log.warning("env %s: %s cannot be resolved outside Kubernetes; left unset", var, source)
        return None


def _ref(c: dict[str, Any], path: str, replica: str | None = None,
         resolve: Callable[[str], str] = lambda s: s) -> ContainerRef:
    env = []
    for e in c.get("env") or []:
        if isinstance(e, dict):
            e = dict(e)
            if isinstance(e.get("value"), str):
                e["value"] = resolve(e["value"])
            env.append(e)
    script = c.get("script") if isinstance(c.get("script"), str) else c.get("source")
    return ContainerRef(
        name=str(c.get("name") or ""), image=c.get("image"), command=[resolve(s) for s in _strings(c.get("command"))],
        args=[resolve(s) for s in _strings(c.get("args"))], env=env, working_dir=c.get("workingDir"),
        path=path, replica=replica, script=resolve(script) if isinstance(script, str) else None)


def _names(containers: list[tuple[str, dict[str, Any]]]) -> str:
    return ", ".join(repr(c.get("name")) for _, c in containers) or "none"


def _pod_containers(pod_template: Any, path: str) -> list[tuple[str, dict[str, Any]]]:
    spec = pod_template.get("spec") if isinstance(pod_template, dict) else None
    containers = spec.get("containers") if isinstance(spec, dict) else None
    if not isinstance(containers, list):
        return []
    return [(f"{path}.spec.containers[{i}]", c) for i, c in enumerate(containers) if isinstance(c, dict)]


def _from_job(spec: dict[str, Any], name: str) -> ContainerRef:
    found = _pod_containers(spec.get("template"), "spec.template")
    for path, c in found:
        if c.get("name") == name:
            return _ref(c, path)
    raise TemplateError(f"no container named {name!r} in the Job's spec.template.spec.containers "
                        f"(containers: {_names(found)}); fix spec.trialTemplate.primaryContainerName")


def _from_replicas(kind: str, spec: dict[str, Any], name: str) -> ContainerRef | None:
    key = next((k for k in spec if k.endswith("ReplicaSpecs") and isinstance(spec[k], dict)), None)
    if key is None:
        return None
    replicas: dict[str, Any] = spec[key]
    order = [r for r in _PREFERRED_REPLICAS if r in replicas] + [r for r in replicas if r not in _PREFERRED_REPLICAS]
    seen: list[tuple[str, dict[str, Any]]] = []
    for replica in order:
        rspec = replicas[replica]
        found = _pod_containers(rspec.get("template") if isinstance(rspec, dict) else None,
                                f"spec.{key}.{replica}.template")
        seen += found
        for path, c in found:
            if c.get("name") == name:
                return _ref(c, path, replica)
    raise TemplateError(f"no container named {name!r} in any replica of the {kind}'s spec.{key} "
                        f"(containers: {_names(seen)}); fix spec.trialTemplate.primaryContainerName")


def _from_trainjob(spec: dict[str, Any], name: str) -> ContainerRef:
    trainer = spec.get("trainer")
    if not isinstance(trainer, dict):
        raise TemplateError("the TrainJob has no spec.trainer: give the trainer's image, command and args")
    ref = _ref(trainer, "spec.trainer", "node")
    ref.name = name  # the trainer's pods name their container after the runtime ("node")
    return ref


def _tekton_params(params: Any) -> dict[str, str]:
    out = {}
    for p in params if isinstance(params, list) else []:
        if isinstance(p, dict) and isinstance(p.get("name"), str):
            value = p.get("value", p.get("default"))
            if isinstance(value, (str, int, float)):
                out[p["name"]] = str(value)
    return out


def _subst(pattern: str, values: Mapping[str, str]) -> Callable[[str], str]:
    regex = re.compile(pattern)
    return lambda s: regex.sub(lambda m: values.get(m.group(1), m.group(0)), s)


def _from_tekton(run: dict[str, Any], name: str) -> ContainerRef:
    spec = run.get("spec") or {}
    pipeline = spec.get("pipelineSpec")
    if not isinstance(pipeline, dict):
        raise TemplateError("the PipelineRun has no inline spec.pipelineSpec (a pipelineRef cannot be read "
                            "from the run spec); inline the pipeline")
    run_params = _tekton_params(pipeline.get("params"))  # declared defaults first ...
    run_params.update(_tekton_params(spec.get("params")))  # ... then the run's values
    pipe_resolve = _subst(r"\$\(params\.([^)]+)\)", run_params)
    seen = []
    for group in ("tasks", "finally"):
        for i, task in enumerate(pipeline.get(group) or []):
            steps = ((task.get("taskSpec") or {}).get("steps") or []) if isinstance(task, dict) else []
            for j, step in enumerate(steps):
                if not isinstance(step, dict):
                    continue
                seen.append(f"step-{step.get('name')}")
                if name not in (step.get("name"), f"step-{step.get('name')}"):
                    continue
                declared = _tekton_params((task.get("taskSpec") or {}).get("params"))
                declared.update({k: pipe_resolve(v) for k, v in _tekton_params(task.get("params")).items()})
                ref = _ref(step, f"spec.pipelineSpec.{group}[{i}].taskSpec.steps[{j}]", task.get("name"),
                           _subst(r"\$\(params\.([^)]+)\)", declared))
                ref.name = f"step-{step.get('name')}"
                return ref
    raise TemplateError(f"no Tekton step whose container is {name!r} (containers: {', '.join(seen) or 'none'}); "
                        "a step named x runs in container step-x")


def _labels_match(template: dict[str, Any], labels: Mapping[str, str] | None) -> bool:
    if not labels:
        return True
    have = ((template.get("metadata") or {}).get("labels") or {})
    return all(str(have.get(k)) == str(v) for k, v in labels.items())


def _from_argo(run: dict[str, Any], name: str, labels: Mapping[str, str] | None) -> ContainerRef:
    spec = run.get("spec") or {}
    workflow_params = _tekton_params((spec.get("arguments") or {}).get("parameters"))
    candidates = []
    for i, t in enumerate(spec.get("templates") or []):
        for key in ("container", "script"):
            c = t.get(key) if isinstance(t, dict) else None
            if isinstance(c, dict):
                candidates.append((i, key, t, c))
    named = [x for x in candidates if x[3].get("name") == name]
    if not named and name == "main":  # Argo runs every template's container as "main"
        named = [x for x in candidates if _labels_match(x[2], labels)]
        named = [x for x in named if x[1] == "container"] or named
    if len(named) != 1:
        which = ", ".join(str(x[2].get("name")) for x in named) if named else "none"
        raise TemplateError(f"cannot tell which Argo template holds the primary container {name!r} (candidates: "
                            f"{which}); name the container or set primaryPodLabels to one template's labels")
    i, key, t, c = named[0]
    inputs = _tekton_params((t.get("inputs") or {}).get("parameters"))
    values = {f"inputs.parameters.{k}": v for k, v in inputs.items()}
    values.update({f"workflow.parameters.{k}": v for k, v in workflow_params.items()})
    ref = _ref(c, f"spec.templates[{i}].{key}", t.get("name"), _subst(r"\{\{\s*([^}\s]+)\s*\}\}", values))
    ref.name = name
    return ref


def _walk(node: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _walk(v, f"{path}.{k}" if path else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            if isinstance(v, dict) and ("image" in v or "command" in v or "args" in v):
                yield f"{path}[{i}]", v
            yield from _walk(v, f"{path}[{i}]")


def primary_container(run_spec: dict[str, Any], primary_container_name: str, *,
                      primary_pod_labels: Mapping[str, str] | None = None) -> ContainerRef:
    """The container named ``primary_container_name`` in a rendered run spec.

    Job: ``spec.template.spec.containers``. TrainJob: ``spec.trainer``. TFJob, PyTorchJob,
    XGBoostJob, MPIJob (any ``*ReplicaSpecs``): the replica holding the container, trying
    Master, Chief and Launcher first. Tekton PipelineRun: the step whose container
    (``step-<name>``) has the name. Argo Workflow: the template's container (Argo calls every
    main container ``main``; ``primary_pod_labels`` picks among templates). Any other kind:
    the first container-like object with that name. TemplateError when there is none.
    """
    if not isinstance(run_spec, dict):
        raise TemplateError("the run spec must be an object")
    kind = run_spec.get("kind")
    spec = run_spec.get("spec")
    if not isinstance(spec, dict):
        raise TemplateError(f"the {kind or 'trial'} run spec has no spec")
    if kind == "Job":
        return _from_job(spec, primary_container_name)
    if kind == "TrainJob":
        return _from_trainjob(spec, primary_container_name)
    if kind == "PipelineRun":
        return _from_tekton(run_spec, primary_container_name)
    if kind == "Workflow" and str(run_spec.get("apiVersion", "")).startswith("argoproj.io/"):
        return _from_argo(run_spec, primary_container_name, primary_pod_labels)
    found = _from_replicas(str(kind), spec, primary_container_name)
    if found is not None:
        return found
    seen = []
    for path, c in _walk(spec, "spec"):
        seen.append(c.get("name"))
        if c.get("name") == primary_container_name:
            return _ref(c, path)
    names = ", ".join(repr(n) for n in seen if n) or "none"
    raise TemplateError(f"no container named {primary_container_name!r} in the {kind} run spec "
                        f"(containers found: {names}); fix spec.trialTemplate.primaryContainerName")
