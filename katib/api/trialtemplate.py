"""What validation and rendering share about trial templates (reference §6.4).

A template is an object (``trialSpec``) or YAML/JSON text kept under a key of a ConfigMap
(``configMap``). Each ``trialParameters`` entry names a placeholder
``${trialParameters.<name>}`` and says where its value comes from: a parameter of the
search space (``reference: lr``) or the trial's own metadata (``reference:
${trialSpec.Name}``, ``${trialSpec.Labels[team]}``, ...).
"""

from __future__ import annotations

import json
import re
from typing import Any, Protocol

from katib.api._read import parse_text
from katib.api.model import TrialTemplate
from katib.errors import NotFoundError, TemplateError, ValidationError

__all__ = [
    "PLACEHOLDER",
    "META_KEYS",
    "ConfigMapGetter",
    "placeholder",
    "parse_meta_reference",
    "is_meta_reference",
    "looks_like_meta_reference",
    "configmap_template_text",
    "template_text",
    "template_object",
    "parse_template_text",
]

# Upstream's TrialTemplateParamReplaceFormatRegex is ``\$\{trialParameters\..+?\}``; a name
# cannot hold braces (validation rejects them), so ``[^{}]`` finds the same placeholders.
PLACEHOLDER = re.compile(r"\$\{trialParameters\.([^{}]+?)\}")
_META = re.compile(r"\$\{trialSpec\.(.+?)\}")
_META_INDEX = re.compile(r"(.+)\[(.+)]")
META_KEYS = ("Name", "Namespace", "Kind", "APIVersion", "Labels", "Annotations")
_INDEXED = ("Labels", "Annotations")


class ConfigMapGetter(Protocol):
    """Anything that finds a ConfigMap's ``data`` by name and namespace
    (``katib.api.loader.ConfigMapLookup`` locally, the API server in a cluster)."""

    def get(self, name: str, namespace: str | None) -> dict[str, str] | None: ...


def placeholder(name: str) -> str:
    """The text a template uses for trial parameter ``name``."""
    return "${trialParameters.%s}" % name


def looks_like_meta_reference(reference: str) -> bool:
    """Whether ``reference`` is written as ``${trialSpec....}`` (valid or not)."""
    return bool(_META.fullmatch(reference))


def parse_meta_reference(reference: str) -> tuple[str, str | None] | None:
    """``("Name", None)`` for ``${trialSpec.Name}``, ``("Labels", "team")`` for
    ``${trialSpec.Labels[team]}``; None when ``reference`` is not a valid meta reference.

    Upstream matches the pattern anywhere in the reference; we require the whole reference
    to be the pattern, so ``x${trialSpec.Name}`` is a (missing) parameter name, not metadata.
    """
    m = _META.fullmatch(reference)
    if not m:
        return None
    key = m.group(1)
    if key in META_KEYS and key not in _INDEXED:
        return key, None
    sub = _META_INDEX.fullmatch(key)
    if sub and sub.group(1) in _INDEXED:
        return sub.group(1), sub.group(2)
    return None


def is_meta_reference(reference: str) -> bool:
    return parse_meta_reference(reference) is not None


def configmap_template_text(template: TrialTemplate, config_maps: ConfigMapGetter | None) -> str:
    """The template text stored in the ConfigMap ``template.configMap`` names.

    Raises NotFoundError naming the ConfigMap or key that is missing (and what exists).
    """
    source = template.config_map
    if source is None:
        raise TemplateError("spec.trialTemplate has no configMap")
    name, namespace, key = source.config_map_name or "", source.config_map_namespace, source.template_path or ""
    where = f"ConfigMap {namespace}/{name}" if namespace else f"ConfigMap {name}"
    if config_maps is None:
        raise NotFoundError(f"{where} cannot be read: no ConfigMaps were given "
                            "(put the ConfigMap manifest in the experiment file or pass its file)")
    data = config_maps.get(name, namespace)
    if data is None:
        raise NotFoundError(f"{where} not found; add its manifest next to the experiment "
                            "or fix spec.trialTemplate.configMap.configMapName/configMapNamespace")
    if key not in data:
        keys = ", ".join(sorted(data)) or "none"
        raise NotFoundError(f"{where} has no key {key!r} (keys: {keys}); "
                            "fix spec.trialTemplate.configMap.templatePath")
    value = data[key]
    if not isinstance(value, str):
        raise TemplateError(f"{where} key {key!r} must hold the template as text")
    return value


def template_text(template: TrialTemplate, config_maps: ConfigMapGetter | None = None) -> str:
    """The template as upstream sees it: JSON text of ``trialSpec`` or the ConfigMap text.
    Used for the "is this placeholder used anywhere" checks, which are text searches."""
    if template.trial_spec is not None:
        return json.dumps(template.trial_spec, ensure_ascii=False)
    return configmap_template_text(template, config_maps)


def parse_template_text(text: str) -> Any:
    """Parse ConfigMap template text (YAML, or JSON, which YAML reads too), with the limits
    experiment files have (depth, aliases, size): the text may come from any ConfigMap."""
    try:
        docs = parse_text(text, "<text>")
    except ValidationError as exc:
        raise TemplateError(f"the trial template is not valid YAML or JSON: {exc}") from exc
    if len(docs) > 1:
        raise TemplateError(f"the trial template is not valid YAML or JSON: it holds {len(docs)} documents; "
                            "keep one manifest per template")
    return docs[0] if docs else None


def template_object(template: TrialTemplate, config_maps: ConfigMapGetter | None = None) -> dict[str, Any]:
    """The template parsed into an object, placeholders still in place. Parsing happens
    before substitution so that values never need escaping (reference §13 item 14)."""
    if template.trial_spec is not None:
        obj: Any = template.trial_spec
    else:
        obj = parse_template_text(configmap_template_text(template, config_maps))
    if not isinstance(obj, dict):
        raise TemplateError(f"the trial template must be an object (a Kubernetes manifest), "
                            f"got {type(obj).__name__}")
    return obj
