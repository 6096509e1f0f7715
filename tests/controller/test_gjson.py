"""The GJSON subset, checked on the conditions upstream ships and on real status shapes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from katib.api.defaults import KUBEFLOW_JOB_KINDS, job_defaults
from katib.controller import gjson
from katib.controller.gjson import MISSING, GJSONSyntaxError, get, is_met, met_detail

EXAMPLES = Path(__file__).resolve().parents[1] / "api" / "upstream_examples"

ARGO_SUCCESS = 'status.[@this].#(phase=="Succeeded")#'
ARGO_FAILURE = 'status.[@this].#(phase=="Failed")#'
TEKTON_SUCCESS = 'status.conditions.#(type=="Succeeded")#|#(status=="True")#'
TEKTON_FAILURE = 'status.conditions.#(type=="Succeeded")#|#(status=="False")#'


def _cond(type_: str, status: str, reason: str = "", message: str = "") -> dict[str, Any]:
    c = {"type": type_, "status": status, "lastProbeTime": "2024-01-01T00:00:00Z",
         "lastTransitionTime": "2024-01-01T00:00:00Z"}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


# --- status shapes as the controllers write them ------------------------------------------

JOB_RUNNING = {"kind": "Job", "metadata": {"name": "t"}, "status": {"startTime": "2024-01-01T00:00:00Z", "active": 1}}
JOB_NO_STATUS = {"kind": "Job", "metadata": {"name": "t"}}
JOB_COMPLETE = {"kind": "Job", "status": {
    "conditions": [_cond("Complete", "True")], "startTime": "x", "completionTime": "y", "succeeded": 1}}
# Kubernetes >= 1.31 adds SuccessCriteriaMet / FailureTarget before the final condition.
JOB_COMPLETE_NEW = {"kind": "Job", "status": {"conditions": [
    _cond("SuccessCriteriaMet", "True", "CompletionsReached"), _cond("Complete", "True", "CompletionsReached")]}}
JOB_FAILED = {"kind": "Job", "status": {"failed": 1, "conditions": [
    _cond("FailureTarget", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
    _cond("Failed", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit")]}}
JOB_DEADLINE = {"kind": "Job", "status": {"conditions": [
    _cond("Failed", "True", "DeadlineExceeded", "Job was active longer than specified deadline")]}}
JOB_SUSPENDED = {"kind": "Job", "status": {"conditions": [_cond("Suspended", "True", "JobSuspended")]}}

KF_RUNNING = {"status": {"conditions": [
    _cond("Created", "True", "PyTorchJobCreated"), _cond("Running", "True", "PyTorchJobRunning")],
    "replicaStatuses": {"Master": {"active": 1}}}}
KF_SUCCEEDED = {"status": {"conditions": [
    _cond("Created", "True", "PyTorchJobCreated"), _cond("Running", "False", "PyTorchJobRunning"),
    _cond("Succeeded", "True", "PyTorchJobSucceeded", "PyTorchJob x is successfully completed.")],
    "replicaStatuses": {"Master": {"succeeded": 1}}}}
KF_FAILED = {"status": {"conditions": [
    _cond("Created", "True", "TFJobCreated"), _cond("Running", "False", "TFJobRunning"),
    _cond("Failed", "True", "TFJobFailed", "TFJob x has failed because 1 Worker replica(s) failed.")]}}
KF_RESTARTING = {"status": {"conditions": [_cond("Restarting", "True", "MPIJobRestarting")]}}

TRAINJOB_RUNNING = {"status": {"conditions": [], "jobsStatus": [{"name": "node", "active": 1}]}}
TRAINJOB_COMPLETE = {"status": {"conditions": [_cond("Complete", "True", "JobsCompleted", "jobs completed")]}}
TRAINJOB_FAILED = {"status": {"conditions": [_cond("Failed", "True", "FailedJobs", "jobset failed")]}}

ARGO_RUNNING = {"status": {"phase": "Running", "startedAt": "x", "nodes": {"a": {"phase": "Running"}}}}
ARGO_SUCCEEDED = {"status": {"phase": "Succeeded", "startedAt": "x", "finishedAt": "y"}}
ARGO_FAILED = {"status": {"phase": "Failed", "message": "child 'wf-1' failed"}}
ARGO_PENDING = {"metadata": {"name": "wf"}}

TEKTON_RUNNING = {"status": {"conditions": [_cond("Succeeded", "Unknown", "Running", "Tasks Completed: 0")]}}
TEKTON_SUCCEEDED = {"status": {"conditions": [_cond("Succeeded", "True", "Succeeded", "Tasks Completed: 1")]}}
TEKTON_FAILED = {"status": {"conditions": [_cond("Succeeded", "False", "Failed", "Tasks Completed: 1 (Failed: 1)")]}}


def _defaults(kind: str) -> tuple[str, str]:
    found = job_defaults(kind)
    assert found is not None
    return found[0], found[1]


@pytest.mark.parametrize("doc,success,failure", [
    (JOB_NO_STATUS, False, False),
    (JOB_RUNNING, False, False),
    (JOB_SUSPENDED, False, False),
    (JOB_COMPLETE, True, False),
    (JOB_COMPLETE_NEW, True, False),
    (JOB_FAILED, False, True),
    (JOB_DEADLINE, False, True),
])
def test_job_default_conditions(doc: dict[str, Any], success: bool, failure: bool) -> None:
    s, f = _defaults("Job")
    assert (is_met(doc, s), is_met(doc, f)) == (success, failure)


@pytest.mark.parametrize("kind", KUBEFLOW_JOB_KINDS)
@pytest.mark.parametrize("doc,success,failure", [
    (KF_RUNNING, False, False), (KF_RESTARTING, False, False),
    (KF_SUCCEEDED, True, False), (KF_FAILED, False, True), (JOB_NO_STATUS, False, False),
])
def test_kubeflow_job_default_conditions(kind: str, doc: dict[str, Any], success: bool, failure: bool) -> None:
    s, f = _defaults(kind)
    assert (is_met(doc, s), is_met(doc, f)) == (success, failure)


@pytest.mark.parametrize("doc,success,failure", [
    (TRAINJOB_RUNNING, False, False), (TRAINJOB_COMPLETE, True, False), (TRAINJOB_FAILED, False, True),
    ({}, False, False),
])
def test_trainjob_default_conditions(doc: dict[str, Any], success: bool, failure: bool) -> None:
    s, f = _defaults("TrainJob")
    assert (is_met(doc, s), is_met(doc, f)) == (success, failure)


@pytest.mark.parametrize("doc,success,failure", [
    (ARGO_PENDING, False, False), (ARGO_RUNNING, False, False),
    (ARGO_SUCCEEDED, True, False), (ARGO_FAILED, False, True),
])
def test_argo_example_conditions(doc: dict[str, Any], success: bool, failure: bool) -> None:
    assert (is_met(doc, ARGO_SUCCESS), is_met(doc, ARGO_FAILURE)) == (success, failure)


@pytest.mark.parametrize("doc,success,failure", [
    (TEKTON_RUNNING, False, False), (TEKTON_SUCCEEDED, True, False), (TEKTON_FAILED, False, True),
    ({"status": {}}, False, False),
])
def test_tekton_example_conditions(doc: dict[str, Any], success: bool, failure: bool) -> None:
    assert (is_met(doc, TEKTON_SUCCESS), is_met(doc, TEKTON_FAILURE)) == (success, failure)


def test_shipped_examples_use_only_readable_conditions() -> None:
    found = 0
    for path in EXAMPLES.rglob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            template = ((doc or {}).get("spec") or {}).get("trialTemplate") or {}
            for key in ("successCondition", "failureCondition"):
                if key in template:
                    gjson.parse(template[key])
                    found += 1
    assert found >= 8  # argo, tekton, mpijob, configmap source


def test_detail_carries_reason_and_message() -> None:
    s, f = _defaults("Job")
    detail = met_detail(JOB_FAILED, f)
    assert detail is not None and detail["reason"] == "BackoffLimitExceeded"
    assert "backoff limit" in detail["message"]
    assert met_detail(ARGO_FAILED, ARGO_FAILURE) == ARGO_FAILED["status"]
    assert met_detail(JOB_RUNNING, s) is None


# --- the syntax itself ----------------------------------------------------------------------

DOC = {
    "name": {"first": "Tom", "last": "Anderson"},
    "age": 37,
    "children": ["Sara", "Alex", "Jack"],
    "fav.movie": "Deer Hunter",
    "metadata": {"labels": {"app.kubernetes.io/name": "trainer", "job-role": "master"}},
    "friends": [
        {"first": "Dale", "last": "Murphy", "age": 44, "nets": ["ig", "fb", "tw"], "active": True},
        {"first": "Roger", "last": "Craig", "age": 68, "nets": ["fb", "tw"], "active": False},
        {"first": "Jane", "last": "Murphy", "age": 47, "nets": ["ig", "tw"]},
    ],
}


@pytest.mark.parametrize("path,expected", [
    ("name.last", "Anderson"),
    ("age", 37),
    ("children", ["Sara", "Alex", "Jack"]),
    ("children.#", 3),
    ("children.1", "Alex"),
    ("child*.2", "Jack"),
    ("c?ildren.0", "Sara"),
    (r"fav\.movie", "Deer Hunter"),
    (r"metadata.labels.app\.kubernetes\.io/name", "trainer"),
    ("friends.#.first", ["Dale", "Roger", "Jane"]),
    ("friends.1.last", "Craig"),
    ('friends.#(last=="Murphy").first', "Dale"),
    ('friends.#(last=="Murphy")#.first', ["Dale", "Jane"]),
    ('friends.#(last="Murphy")#.first', ["Dale", "Jane"]),
    ("friends.#(age>45)#.last", ["Craig", "Murphy"]),
    ("friends.#(age>=47)#.first", ["Roger", "Jane"]),
    ("friends.#(age<45).first", "Dale"),
    ('friends.#(first%"D*").last', "Murphy"),
    ('friends.#(first!%"D*")#.last', ["Craig", "Murphy"]),
    ('friends.#(nets.#(=="fb"))#.first', ["Dale", "Roger"]),
    ("friends.#(active)#.first", ["Dale", "Roger"]),
    ("friends.#(active==true)#.first", ["Dale"]),
    ("friends.#(last==Craig).first", "Roger"),
    ("friends.#(active==~false)#.first", ["Roger", "Jane"]),
    ('friends.#(last=="Murphy")#|#', 2),
    ('friends.#(last=="Murphy")#|0.first', "Dale"),
    ('friends.#(last=="Murphy")#|#(age>45)#|#.first', ["Jane"]),
    ("name.[@this].#(first==\"Tom\")#.last", ["Anderson"]),
    ("@this.age", 37),
    ("[age,name.first]", [37, "Tom"]),
    ("{age,name.first}", {"age": 37, "first": "Tom"}),
])
def test_paths(path: str, expected: Any) -> None:
    assert get(DOC, path) == expected


@pytest.mark.parametrize("path", [
    "name.middle", "children.7", "friends.first", 'friends.#(last=="Nobody").first', "age.#",
    'name.#(first=="Tom")#', "nothing.[@this]",
])
def test_missing(path: str) -> None:
    assert get(DOC, path) is MISSING


def test_query_type_rules_follow_gjson() -> None:
    doc = {"items": [{"v": "10"}, {"v": 9}, {"v": True}, {"v": None}, {"v": {"x": 1}}]}
    # A quoted literal against a number compares numerically; strings compare as text.
    assert get(doc, 'items.#(v=="9")#') == [{"v": 9}]
    assert get(doc, "items.#(v>5)#") == [{"v": 9}]
    assert get(doc, 'items.#(v>"5")#') == [{"v": 9}]  # "10" < "5" as text
    assert get(doc, "items.#(v==true)#") == [{"v": True}]
    assert get(doc, "items.#(v)#") == doc["items"]  # existence, null included


def test_empty_array_is_not_met_and_object_is() -> None:
    assert not is_met({"a": []}, "a")
    assert is_met({"a": [1]}, "a")
    assert is_met({"a": {}}, "a")
    assert not is_met({"a": "text"}, "a")
    assert not is_met({"a": 1}, "a")


@pytest.mark.parametrize("path", [
    "", "a.", "a..b", 'a.#(b=="c"', "a.[b", '#(x=="y)', "a.@reverse", "a.#(b==~maybe)",
])
def test_syntax_errors(path: str) -> None:
    with pytest.raises(GJSONSyntaxError):
        gjson.parse(path)
