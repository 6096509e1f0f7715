"""The dashboard's actions: check and create an experiment from pasted YAML, raise its
budget, stop it, delete it. Each goes through ``KatibClient`` as the SDK would (locally the
client starts a detached runner for a created experiment); the pages ask for confirmation
before calling them.

Pasted YAML is checked as ``katib validate`` checks a file, with the same field errors; for
the local store also as ``katib run`` would (the algorithm is built in, the metrics collector
works here), since the experiment is about to run on this machine.
"""

from __future__ import annotations

from typing import Any

from katib.api.loader import MAX_BYTES, ConfigMapLookup, dump_yaml, load_experiment
from katib.api.model import Experiment
from katib.errors import FieldError, ValidationError

__all__ = ["parse", "check", "summary", "budget_value"]

_TEXT = "<text>"  # what the loader calls text that is not a file


def parse(text: str, namespace: str) -> tuple[Experiment, ConfigMapLookup]:
    """The one Experiment of pasted YAML or JSON (and the ConfigMaps beside it)."""
    if len(text.encode(errors="replace")) > MAX_BYTES:
        raise ValidationError([FieldError("", f"the text is larger than {MAX_BYTES // (1 << 20)} MiB")])
    if not text.strip():
        raise ValidationError([FieldError("", "paste an Experiment (YAML or JSON) first")])
    config_maps = ConfigMapLookup()
    try:
        # A trailing newline: the loader takes a one-line string for a file name, and text
        # pasted into a web page must never be read as a path on the server.
        exp = load_experiment(text if text.endswith("\n") else text + "\n", config_maps=config_maps)
    except ValidationError as exc:
        raise ValidationError([FieldError(_where(e.path), e.message) for e in exc.errors]) from None
    exp.metadata.namespace = exp.metadata.namespace or namespace
    return exp, config_maps


def _where(path: str) -> str:
    """``<text>:4:1`` (the loader's name for text) as ``line 4, column 1``."""
    if not path.startswith(_TEXT):
        return path
    parts = path[len(_TEXT):].lstrip(":").split(":")
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        return f"line {parts[0]}, column {parts[1]}"
    return "the pasted text" + path[len(_TEXT):]


def check(exp: Experiment, config_maps: ConfigMapLookup, *, local: bool) -> list[str]:
    """Default and validate ``exp`` in place (ValidationError listing every problem);
    returns warnings (what could not be checked)."""
    from katib.backends.local import prepare

    warnings = []
    source = exp.spec.trial_template.config_map if exp.spec.trial_template else None
    lookup: ConfigMapLookup | None = config_maps
    if source is not None and config_maps.get(source.config_map_name or "", source.config_map_namespace) is None:
        if local:
            raise ValidationError([FieldError("spec.trialTemplate.configMap", (
                f"ConfigMap {source.config_map_namespace}/{source.config_map_name} is not in the pasted text; "
                "paste it too (after ---) so the trial template can be read"))])
        warnings.append(f"spec.trialTemplate.configMap: ConfigMap {source.config_map_namespace}/"
                        f"{source.config_map_name} is not in the pasted text, so its trial template was not checked")
        lookup = None
    checked = exp.copy()
    if not checked.metadata.name and checked.metadata.generate_name:
        checked.metadata.name = checked.metadata.generate_name.rstrip("-") or "x"
    prepare(checked, config_maps=lookup, local=local)
    return warnings


def summary(exp: Experiment, warnings: list[str]) -> dict[str, Any]:
    """What the confirmation dialog says about the experiment about to be created."""
    spec = exp.spec
    return {"name": exp.name or exp.metadata.generate_name or "", "namespace": exp.metadata.namespace or "default",
            "algorithm": (spec.algorithm.algorithm_name or "") if spec.algorithm else "",
            "objective": (f"{spec.objective.type} {spec.objective.objective_metric_name}" if spec.objective else ""),
            "parameters": [p.name for p in spec.parameters], "maxTrialCount": spec.max_trial_count,
            "parallelTrialCount": spec.parallel_trial_count, "warnings": warnings, "yaml": dump_yaml(exp)}


def budget_value(body: Any) -> int:
    """``maxTrialCount`` of a budget request body, checked."""
    value = body.get("maxTrialCount") if isinstance(body, dict) else None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValidationError([FieldError("maxTrialCount", f"expected a whole number of at least 1, got {value!r}")])
    return value
