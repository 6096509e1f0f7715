"""Metrics collector rules (reference §1.7, §4.2 rule 15).

Upstream also requires a katib-config entry for StdOut/File/TensorFlowEvent/PrometheusMetric;
which collectors a backend can run is the backend's check, not the experiment's. Upstream
skips the filter checks for StdOut (it returns early); we check filters for every kind,
since a StdOut filter that cannot match is as broken as a File one. Kind ``None`` (what
older Katib releases called ``Push``) is accepted as ``Push``.
"""

from __future__ import annotations

import posixpath

from katib.api.metricsformat import compile_metrics_format
from katib.api.model import CollectorKind, Experiment
from katib.errors import FieldError

__all__ = ["check_metrics_collector", "KINDS"]

MC = "spec.metricsCollectorSpec"
SRC = f"{MC}.source"
FSP = f"{SRC}.fileSystemPath"
KINDS = (CollectorKind.STDOUT, CollectorKind.FILE, CollectorKind.TENSORFLOW_EVENT,
         CollectorKind.PROMETHEUS, CollectorKind.CUSTOM, CollectorKind.PUSH)


def _check_filters(formats: list[str], errors: list[FieldError]) -> None:
    # Compiled with RE2, as collection does (katib.api.metricsformat): Go's syntax and linear time.
    for i, text in enumerate(formats):
        try:
            compile_metrics_format(text)
        except ValueError as exc:
            errors.append(FieldError(f"{SRC}.filter.metricsFormat[{i}]", str(exc)))


def check_metrics_collector(exp: Experiment) -> list[FieldError]:
    errors: list[FieldError] = []
    mc = exp.spec.metrics_collector_spec
    if mc is None:
        return errors  # not defaulted yet: StdOut, nothing to check
    kind = mc.collector.kind if mc.collector is not None else CollectorKind.STDOUT
    source = mc.source
    fsp = source.file_system_path if source is not None else None
    if kind in (CollectorKind.STDOUT, CollectorKind.PUSH, CollectorKind.NONE):
        pass  # "None" is Push's name in older Katib releases; still found in manifests
    elif kind == CollectorKind.FILE:
        if fsp is None or fsp.kind != "File" or not posixpath.isabs(fsp.path or ""):
            errors.append(FieldError(f"{FSP}.path", "file path where metrics file exists is required: an absolute "
                                     "path with fileSystemPath.kind File (default /var/log/katib/metrics.log)"))
        fmt = fsp.format if fsp is not None else None
        if fmt not in ("TEXT", "JSON"):
            errors.append(FieldError(f"{FSP}.format", f"format of metrics file is required for metrics collector: "
                                     f"TEXT or JSON, got {fmt!r}"))
        if fmt == "JSON" and source is not None and source.filter is not None:
            errors.append(FieldError(f"{SRC}.filter", "filter must be nil when format of metrics file is json: "
                                     "JSON lines name their metrics as keys"))
    elif kind == CollectorKind.TENSORFLOW_EVENT:
        if fsp is None or fsp.kind != "Directory" or not posixpath.isabs(fsp.path or ""):
            errors.append(FieldError(SRC, "directory path where tensorflow event files exist is required by "
                                     ".spec.metricsCollectorSpec.source.fileSystemPath.path (absolute, kind Directory)"))
        if fsp is not None and fsp.format:
            errors.append(FieldError(f"{FSP}.format", f"must be empty for TensorFlowEvent, got {fsp.format!r}"))
    elif kind == CollectorKind.PROMETHEUS:
        http_get = (source.http_get if source is not None else None) or {}
        port = http_get.get("port")
        try:
            ok = not isinstance(port, bool) and int(str(port)) > 0
        except ValueError:
            ok = False
        if not ok:
            errors.append(FieldError(f"{SRC}.httpGet.port", f"must be a positive integer value for metrics collector "
                                     f"kind: {kind}, got {port!r}"))
        path = http_get.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            errors.append(FieldError(f"{SRC}.httpGet.path", f"path is invalid for metrics collector kind: {kind}; "
                                     f"it must start with '/', got {path!r}"))
    elif kind == CollectorKind.CUSTOM:
        custom = mc.collector.custom_collector if mc.collector is not None else None
        if custom is None:
            errors.append(FieldError(f"{MC}.collector.customCollector", f"metrics collector kind: {kind} is required: "
                                     "give the collector container (name, image, args)"))
        elif not custom.get("name"):
            errors.append(FieldError(f"{MC}.collector.customCollector.name", "the collector container needs a name"))
        if fsp is not None and (not posixpath.isabs(fsp.path or "") or fsp.kind not in ("File", "Directory")):
            errors.append(FieldError(FSP, ".spec.metricsCollectorSpec.source is invalid: fileSystemPath needs an "
                                     "absolute path and kind File or Directory"))
    else:
        errors.append(FieldError(f"{MC}.collector.kind", f"invalid metrics collector kind: {kind}; use one of "
                                 f"{', '.join(KINDS)}"))
    if source is not None and source.filter is not None and source.filter.metrics_format:
        _check_filters(source.filter.metrics_format, errors)
    return errors
