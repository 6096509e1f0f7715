"""Trial template rendering (reference §6.4), done on the parsed object.

Upstream replaces ``${trialParameters.<name>}`` in the template's JSON text and parses the
result, so a value holding ``"`` or ``\\`` corrupts the manifest (NAS services swap ``"``
for ``'`` to survive; reference §13 item 14). We parse first and substitute inside string
values (and keys) of the object tree: any value survives, quotes, backslashes and newlines
included, and a value never changes the manifest's structure. Values stay strings, as
every Katib assignment is a string.

Trial parameters get their values from the trial's assignments (``reference: lr``) or from
the trial's metadata (``reference: ${trialSpec.Name}`` and friends, see
``katib.api.trialtemplate``).
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

from katib.api.model import TrialTemplate
from katib.api.trialtemplate import (
    PLACEHOLDER,
    ConfigMapGetter,
    looks_like_meta_reference,
    parse_meta_reference,
    template_object,
)
from katib.controller._containers import ContainerRef, primary_container
from katib.errors import NotFoundError, TemplateError

__all__ = ["render_trial_spec", "trial_parameter_values", "primary_container", "ContainerRef"]

log = logging.getLogger(__name__)


def _meta_value(key: str, index: str | None, obj: dict[str, Any], trial_name: str, namespace: str) -> str:
    if key == "Name":
        return trial_name
    if key == "Namespace":
        return namespace
    if key in ("Kind", "APIVersion"):
        value = obj.get("kind" if key == "Kind" else "apiVersion")
        if not isinstance(value, str) or not value:
            raise TemplateError(f"${{trialSpec.{key}}}: the template has no {key.lower()}")
        return value
    field = "labels" if key == "Labels" else "annotations"
    meta = obj.get("metadata")
    found = meta.get(field) if isinstance(meta, dict) else None
    if not isinstance(found, dict) or index not in found:
        raise TemplateError(f"${{trialSpec.{key}[{index}]}}: the template's metadata.{field} has no key "
                            f"{index!r}; add it to the template's metadata or fix the reference")
    return str(found[index])


def trial_parameter_values(template: TrialTemplate, assignments: Mapping[str, str], obj: dict[str, Any],
                           trial_name: str, namespace: str) -> dict[str, str]:
    """Value of each trial parameter by name. Every assignment must be used by exactly one
    trial parameter, and every parameter reference must be assigned (upstream's rule)."""
    values: dict[str, str] = {}
    used: set[str] = set()
    for tp in template.trial_parameters or []:
        meta = parse_meta_reference(tp.reference)
        if meta is not None:
            values[tp.name] = _meta_value(meta[0], meta[1], obj, trial_name, namespace)
        elif looks_like_meta_reference(tp.reference):
            raise TemplateError(f"trial parameter {tp.name!r}: unknown metadata reference {tp.reference}")
        elif tp.reference in assignments:
            values[tp.name] = str(assignments[tp.reference])
            used.add(tp.reference)
        else:
            have = ", ".join(sorted(assignments)) or "none"
            raise TemplateError(f"trial parameter {tp.name!r} refers to parameter {tp.reference!r}, which has "
                                f"no value in the trial's assignments ({have})")
    unused = sorted(set(assignments) - used)
    if unused:
        raise TemplateError(f"assignment(s) {', '.join(unused)} not used by any spec.trialTemplate.trialParameters "
                            "entry; add an entry whose reference names each of them")
    return values


def _substitute(node: Any, values: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        if "${trialParameters." not in node:
            return node
        return PLACEHOLDER.sub(lambda m: _value(m.group(1), values), node)
    if isinstance(node, dict):
        return {_substitute(k, values): _substitute(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, values) for v in node]
    return node


def _value(name: str, values: Mapping[str, str]) -> str:
    if name not in values:
        raise TemplateError(f"the template uses ${{trialParameters.{name}}} but spec.trialTemplate.trialParameters "
                            f"has no entry named {name!r}")
    return values[name]


def render_trial_spec(template: TrialTemplate, assignments: Mapping[str, str], trial_name: str, namespace: str,
                      config_maps: ConfigMapGetter | None = None) -> dict[str, Any]:
    """The run spec of one trial: the template with every placeholder replaced and
    ``metadata.name``/``namespace`` set to the trial's. Raises TemplateError naming the
    problem (unreadable template, missing parameter, unused assignment, missing label key).
    """
    try:
        obj = template_object(template, config_maps)
    except NotFoundError as exc:
        raise TemplateError(str(exc)) from exc
    values = trial_parameter_values(template, assignments, obj, trial_name, namespace)
    rendered = _substitute(obj, values)  # builds new containers: the template is not touched
    meta = rendered.get("metadata")
    if meta is None:
        meta = rendered["metadata"] = {}
    elif not isinstance(meta, dict):
        raise TemplateError("the template's metadata must be an object")
    meta["name"] = trial_name
    meta["namespace"] = namespace
    log.debug("rendered trial %s/%s (%s)", namespace, trial_name, rendered.get("kind"))
    return rendered  # type: ignore[no-any-return]
