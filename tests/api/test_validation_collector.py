"""Rule 15: metrics collector kinds, sources and filters (reference §1.7)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.factory import errors_of, find

MC = "spec.metricsCollectorSpec"


def _collector(kind: str | None, source: dict[str, Any] | None = None, **collector: Any) -> Any:
    def mutate(d: dict[str, Any]) -> None:
        mc: dict[str, Any] = {}
        if kind is not None:
            mc["collector"] = {"kind": kind, **collector}
        if source is not None:
            mc["source"] = source
        d["spec"]["metricsCollectorSpec"] = mc
    return mutate


@pytest.mark.parametrize("kind, source, extra", [
    (None, None, {}),
    ("StdOut", None, {}),
    ("Push", None, {}),
    ("File", None, {}),
    ("File", {"fileSystemPath": {"path": "/out/metrics.json", "kind": "File", "format": "JSON"}}, {}),
    ("TensorFlowEvent", None, {}),
    ("TensorFlowEvent", {"fileSystemPath": {"path": "/logs/test", "kind": "Directory"}}, {}),
    ("PrometheusMetric", None, {}),
    ("Custom", None, {"customCollector": {"name": "collector", "image": "me/collector"}}),
    ("Custom", {"fileSystemPath": {"path": "/logs", "kind": "Directory"}}, {"customCollector": {"name": "c"}}),
])
def test_valid_collectors(kind: str | None, source: dict[str, Any] | None, extra: dict[str, Any]) -> None:
    assert errors_of(_collector(kind, source, **extra)) == []


def test_unknown_kind() -> None:
    find(errors_of(_collector("Prometheus")), f"{MC}.collector.kind", "invalid metrics collector kind: Prometheus",
         "StdOut, File")
    assert errors_of(_collector("None")) == []  # Push's name in older releases


@pytest.mark.parametrize("fsp, path, message", [
    ({"path": "metrics.log", "kind": "File", "format": "TEXT"}, "source.fileSystemPath.path", "absolute path"),
    ({"path": "/m.log", "kind": "Directory", "format": "TEXT"}, "source.fileSystemPath.path", "kind File"),
    ({"path": "/m.log", "kind": "File", "format": "CSV"}, "source.fileSystemPath.format", "TEXT or JSON, got 'CSV'"),
])
def test_file_collector(fsp: dict[str, str], path: str, message: str) -> None:
    find(errors_of(_collector("File", {"fileSystemPath": fsp})), f"{MC}.{path}", message)


def test_file_collector_json_takes_no_filter() -> None:
    source = {"fileSystemPath": {"path": "/m.json", "kind": "File", "format": "JSON"},
              "filter": {"metricsFormat": ["(a)=(b)"]}}
    find(errors_of(_collector("File", source)), f"{MC}.source.filter", "filter must be nil when format of metrics "
                                                                      "file is json")


def test_tensorflow_event_collector() -> None:
    find(errors_of(_collector("TensorFlowEvent", {"fileSystemPath": {"path": "/logs", "kind": "File"}})),
         f"{MC}.source", "directory path where tensorflow event files exist")
    find(errors_of(_collector("TensorFlowEvent", {"fileSystemPath": {"path": "/l", "kind": "Directory",
                                                                     "format": "TEXT"}})),
         f"{MC}.source.fileSystemPath.format", "must be empty")


@pytest.mark.parametrize("http_get, path, message", [
    ({"port": "http", "path": "/metrics"}, "httpGet.port", "positive integer"),
    ({"port": -1, "path": "/metrics"}, "httpGet.port", "positive integer"),
    ({"port": 9090, "path": "metrics"}, "httpGet.path", "must start with '/'"),
])
def test_prometheus_collector(http_get: dict[str, Any], path: str, message: str) -> None:
    find(errors_of(_collector("PrometheusMetric", {"httpGet": http_get})), f"{MC}.source.{path}", message)


def test_custom_collector() -> None:
    find(errors_of(_collector("Custom")), f"{MC}.collector.customCollector", "metrics collector kind: Custom is "
                                                                            "required")
    find(errors_of(_collector("Custom", customCollector={"image": "x"})), f"{MC}.collector.customCollector.name",
         "needs a name")
    find(errors_of(_collector("Custom", {"fileSystemPath": {"path": "rel/path", "kind": "File"}},
                              customCollector={"name": "c"})), f"{MC}.source.fileSystemPath", "absolute path")


@pytest.mark.parametrize("kind", ["StdOut", "File"])
def test_filters_must_compile_and_capture_two_groups(kind: str) -> None:
    # Upstream checks filters for File but skips them for StdOut; a broken StdOut filter is as broken.
    source = {"filter": {"metricsFormat": ["([\\w-]+)=([0-9.]+)", "(unclosed", "name=(\\d+)"]}}
    errs = errors_of(_collector(kind, source))
    find(errs, f"{MC}.source.filter.metricsFormat[1]", "invalid filter '(unclosed'")
    find(errs, f"{MC}.source.filter.metricsFormat[2]", "has 1 capture group(s); it needs two")
    assert not [e for e in errs if e.path.endswith("metricsFormat[0]")]


def test_filters_are_checked_with_re2_as_they_are_collected() -> None:
    # Go's syntax: POSIX and Unicode classes pass; a lookahead or a backreference (Python's
    # re has both) is refused here, not at collection time.
    source = {"filter": {"metricsFormat": [r"([[:alpha:]]+)=([0-9.]+)", r"(\pL+)=([0-9.]+)",
                                           r"(\w+)=(\d+)(?=\s)", r"(\w+)=(\d+)\1"]}}
    errs = errors_of(_collector("StdOut", source))
    assert sorted(e.path for e in errs) == [f"{MC}.source.filter.metricsFormat[2]",
                                            f"{MC}.source.filter.metricsFormat[3]"]
    find(errs, f"{MC}.source.filter.metricsFormat[2]", "RE2 syntax")
