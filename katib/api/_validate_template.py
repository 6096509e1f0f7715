"""Trial template rules (reference §4.2 rule 12), with upstream's early stops.

Beyond upstream: a ``${trialSpec....}`` reference must be one of the six meta references,
a ``Labels[key]``/``Annotations[key]`` reference must name a key the template has, and for
Job and Kubeflow training jobs the primary container must exist in the template.
"""

from __future__ import annotations

from typing import Any

from katib.api._jobschema import check_job
from katib.api._serde import kind_of
from katib.api.model import Experiment, TrialTemplate
from katib.api.trialtemplate import (
    PLACEHOLDER,
    ConfigMapGetter,
    looks_like_meta_reference,
    parse_meta_reference,
    parse_template_text,
    placeholder,
    template_text,
)
from katib.errors import FieldError, KatibError

__all__ = ["check_trial_template"]

P = "spec.trialTemplate"
TP = f"{P}.trialParameters"
_REPLICA_SPECS = {"TFJob": "tfReplicaSpecs", "PyTorchJob": "pytorchReplicaSpecs",
                  "XGBoostJob": "xgbReplicaSpecs", "MPIJob": "mpiReplicaSpecs"}


def _source_checks(tt: TrialTemplate, errors: list[FieldError]) -> bool:
    """Upstream's checks before the template is read; False where upstream stops."""
    if not tt.primary_container_name:
        errors.append(FieldError(f"{P}.primaryContainerName", "must be specified: name the container that "
                                 "runs the training code (it gets the metrics collector)"))
    if not tt.success_condition or not tt.failure_condition:
        errors.append(FieldError(P, "successCondition and failureCondition must be specified: they are set "
                                 "for you only for Job, TFJob, PyTorchJob, XGBoostJob, MPIJob and TrainJob; "
                                 "for other kinds write GJSON paths that match the finished job"))
    if tt.trial_parameters is None:
        errors.append(FieldError(f"{P}.trialParameters", "must be specified (an empty list is fine)"))
        return False
    if tt.trial_spec is None and tt.config_map is None:
        errors.append(FieldError(P, "spec.trialTemplate.trialSpec or spec.trialTemplate.configMap must be specified"))
        return False
    if tt.trial_spec is not None and tt.config_map is not None:
        errors.append(FieldError(P, "only one of spec.trialTemplate.trialSpec or spec.trialTemplate.configMap "
                                 "can be specified"))
        return False
    cm = tt.config_map
    if cm is not None and not (cm.config_map_name and cm.config_map_namespace and cm.template_path):
        errors.append(FieldError(f"{P}.configMap", "configMapName, configMapNamespace and templatePath must be specified"))
        return False
    return True


def _text(tt: TrialTemplate, config_maps: ConfigMapGetter | None, errors: list[FieldError]) -> str | None:
    """The template text, or None when it cannot be seen (a ConfigMap and no lookup given).
    Appends an error and returns "" when a given lookup cannot find it."""
    if tt.trial_spec is None and config_maps is None:
        return None  # checked where the ConfigMap is: in the cluster or by the local runner
    try:
        return template_text(tt, config_maps)
    except KatibError as exc:
        errors.append(FieldError(f"{P}.configMap", f"unable to read the trial template: {exc}"))
        return ""


def _parameter_checks(exp: Experiment, tt: TrialTemplate, text: str | None,
                      errors: list[FieldError]) -> tuple[str | None, bool]:
    """Per-trialParameter rules; returns the text with placeholders replaced and whether to go on."""
    known = {p.name for p in exp.spec.parameters}
    # Placeholders are found in one pass: looking each name up in the text (and replacing
    # it) per trialParameters entry is quadratic, minutes for a large template.
    used = {m.group(1) for m in PLACEHOLDER.finditer(text)} if text is not None else set()
    names: set[str] = set()
    refs: set[str] = set()
    for i, tp in enumerate(tt.trial_parameters or []):
        path = f"{TP}[{i}]"
        if not tp.name or not tp.reference or "{" in tp.name or "}" in tp.name:
            errors.append(FieldError(path, "name and reference must be specified and name must not contain "
                                     "'{' or '}'"))
            continue
        if tp.name in names:
            errors.append(FieldError(f"{path}.name", f"parameter name {tp.name} can't be duplicated in "
                                     "spec.trialTemplate.trialParameters"))
            continue
        if tp.reference in refs:
            errors.append(FieldError(f"{path}.reference", f"parameter reference {tp.reference} can't be duplicated "
                                     "in spec.trialTemplate.trialParameters; one trial parameter per value"))
            continue
        names.add(tp.name)
        refs.add(tp.reference)
        if looks_like_meta_reference(tp.reference):
            if parse_meta_reference(tp.reference) is None:
                errors.append(FieldError(f"{path}.reference", f"unknown trial metadata reference {tp.reference}; use "
                                         "${trialSpec.Name}, ${trialSpec.Namespace}, ${trialSpec.Kind}, "
                                         "${trialSpec.APIVersion}, ${trialSpec.Labels[key]} or "
                                         "${trialSpec.Annotations[key]}"))
        elif known and tp.reference not in known:
            errors.append(FieldError(f"{path}.reference", f"parameter reference {tp.reference} does not exist in "
                                     f"spec.parameters (names: {', '.join(sorted(known))})"))
        if text is None:
            continue
        if tp.name not in used:
            errors.append(FieldError(f"{path}.name", f"parameter name: {tp.name} in spec.trialParameters not found "
                                     f"in spec.trialTemplate: use {placeholder(tp.name)} in the template or remove "
                                     "this entry"))
            return text, False
    if text is not None and names:
        text = PLACEHOLDER.sub(lambda m: "test-value" if m.group(1) in names else m.group(0), text)
    # Upstream renders only when every assignment is consumed, so a parameter no trialParameters
    # entry references fails every trial at creation; say so before anything runs.
    for i, p in enumerate(exp.spec.parameters):
        if p.name and p.name not in refs:
            errors.append(FieldError(f"spec.parameters[{i}].name", f"parameter {p.name!r} is not referenced by any "
                                     "spec.trialTemplate.trialParameters entry, so no trial could be rendered; add "
                                     f"one with reference: {p.name}"))
    return text, True


def _parse(tt: TrialTemplate, text: str, errors: list[FieldError]) -> dict[str, Any] | None:
    if tt.trial_spec is not None:
        obj: Any = tt.trial_spec
    else:
        try:
            obj = parse_template_text(text)
        except KatibError as exc:
            errors.append(FieldError(f"{P}.configMap", str(exc)))
            return None
    if not isinstance(obj, dict):
        errors.append(FieldError(P, f"the trial template must be an object (a Kubernetes manifest), "
                                 f"got {kind_of(obj)}"))
        return None
    return obj


def _containers_named(node: Any, name: str) -> bool:
    if isinstance(node, dict):
        return any(_containers_named(v, name) for v in node.values())
    if isinstance(node, list):
        return any((isinstance(c, dict) and c.get("name") == name and ("image" in c or "command" in c))
                   or _containers_named(c, name) for c in node)
    return False


def _object_checks(exp: Experiment, tt: TrialTemplate, obj: dict[str, Any], errors: list[FieldError]) -> None:
    where = f"{P}.trialSpec" if tt.trial_spec is not None else f"{P}.configMap"
    raw_meta = obj.get("metadata")
    meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
    if meta.get("name") or meta.get("namespace"):
        errors.append(FieldError(f"{where}.metadata", "metadata.name and metadata.namespace in spec.trialTemplate "
                                 "must be omitted: each trial's job gets the trial's name and namespace"))
    if not obj.get("apiVersion") or not obj.get("kind"):
        errors.append(FieldError(where, "APIVersion and Kind in spec.trialTemplate must be specified"))
    for key in ("apiVersion", "kind"):
        if obj.get(key) and not isinstance(obj[key], str):
            errors.append(FieldError(f"{where}.{key}", f"must be a string, got {kind_of(obj[key])}"))
    for i, tp in enumerate(tt.trial_parameters or []):
        parsed = parse_meta_reference(tp.reference or "")
        if parsed and parsed[1] is not None:
            key = "labels" if parsed[0] == "Labels" else "annotations"
            raw = meta.get(key)
            found: dict[str, Any] = raw if isinstance(raw, dict) else {}
            if parsed[1] not in found:
                errors.append(FieldError(f"{TP}[{i}].reference", f"the template's metadata.{key} has no key "
                                         f"{parsed[1]!r}; add it to the template or fix the reference"))
    if obj.get("apiVersion") == "batch/v1" and obj.get("kind") == "Job":
        errors.extend(check_job(obj, where))
    kind = obj.get("kind") if isinstance(obj.get("kind"), str) else None
    primary = tt.primary_container_name
    if primary and (kind == "Job" or kind in _REPLICA_SPECS) and not _containers_named(obj.get("spec"), primary):
        errors.append(FieldError(f"{P}.primaryContainerName", f"no container named {primary!r} in the {kind} "
                                 "template; name the container that runs the training code"))


def check_trial_template(exp: Experiment, config_maps: ConfigMapGetter | None) -> list[FieldError]:
    """Every problem of ``spec.trialTemplate``, stopping where upstream stops."""
    errors: list[FieldError] = []
    tt = exp.spec.trial_template
    if tt is None:
        return [FieldError(P, "must be specified: the job each trial runs")]
    if not _source_checks(tt, errors):
        return errors
    text = _text(tt, config_maps, errors)
    if text == "":
        return errors
    text, go_on = _parameter_checks(exp, tt, text, errors)
    if not go_on or text is None:
        return errors
    left = sorted({m.group(0) for m in PLACEHOLDER.finditer(text)})
    if left:
        errors.append(FieldError(P, f"parameters: {', '.join(left)} in spec.trialTemplate not found in "
                                 "spec.trialTemplate.trialParameters; add a trialParameters entry for each"))
    obj = _parse(tt, text, errors)
    if obj is not None:
        _object_checks(exp, tt, obj, errors)
    return errors
