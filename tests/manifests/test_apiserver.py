"""The CRDs and manifests against a real kube-apiserver (v1.20.2): the schemas are accepted
and published, upstream-shaped experiments pass, malformed ones are refused with a 422 that
names the field, the whole installation passes server-side admission, and the controller's
role allows what it needs and nothing it should not have."""

from __future__ import annotations

import copy
import datetime
import json
import time
from typing import Any, Callable

import pytest
import yaml
from kubernetes import client

from tests.harness.api import JSON_MERGE_PATCH, ApiException, read_json
from tests.manifests.conftest import Kubectl, by_kind
from tests.manifests.test_crd import experiment_examples, sample_experiment

pytestmark = [pytest.mark.k8s, pytest.mark.usefixtures("installed_crds")]

GROUP, VERSION = "kubeflow.org", "v1beta1"
CONTROLLER = "system:serviceaccount:kubeflow:katib-controller"


def _create(api: client.ApiClient, namespace: str, plural: str, body: dict[str, Any],
            dry_run: bool = False) -> dict[str, Any]:
    body = copy.deepcopy(body)
    body["metadata"].pop("namespace", None)
    kwargs = {"dry_run": "All"} if dry_run else {}
    return read_json(client.CustomObjectsApi(api).create_namespaced_custom_object,
                     GROUP, VERSION, namespace, plural, body, **kwargs)


def _refusal(api: client.ApiClient, namespace: str, body: dict[str, Any]) -> str:
    with pytest.raises(ApiException) as info:
        _create(api, namespace, "experiments", body, dry_run=True)
    assert info.value.status == 422, info.value.body
    return str(json.loads(str(info.value.body))["message"])


def _eventually(what: str, probe: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


# ---- CRDs -------------------------------------------------------------------------------------

def test_crds_are_established_with_structural_schemas(cluster_kubectl: Kubectl) -> None:
    out = cluster_kubectl("get", "crd", "experiments.kubeflow.org", "trials.kubeflow.org",
                          "suggestions.kubeflow.org", "-o", "json").stdout
    for item in json.loads(out)["items"]:
        conditions = {c["type"]: c["status"] for c in item["status"]["conditions"]}
        assert conditions.get("Established") == "True", item["metadata"]["name"]
        # The API server flags schemas it cannot prune with NonStructuralSchema.
        assert "NonStructuralSchema" not in conditions, item["metadata"]["name"]


def _explain(cluster_kubectl: Kubectl, path: str) -> str:
    """``kubectl explain PATH``; the published OpenAPI follows Established by a moment."""
    result: dict[str, str] = {}

    def explained() -> bool:
        proc = cluster_kubectl("explain", path, "--api-version=kubeflow.org/v1beta1", check=False)
        result["out"] = proc.stdout
        return proc.returncode == 0 and "FIELDS" in proc.stdout

    _eventually(f"kubectl explain {path}", explained, timeout=60)
    return result["out"]


def test_kubectl_explain_shows_our_fields(cluster_kubectl: Kubectl) -> None:
    out = _explain(cluster_kubectl, "experiment.spec.parameters")
    for field in ("name", "parameterType", "feasibleSpace", "-required-"):
        assert field in out
    assert "double, int, discrete, categorical or unknown" in out
    spec = _explain(cluster_kubectl, "experiment.spec")
    for field in ("objective", "algorithm", "trialTemplate", "maxTrialCount", "resumePolicy"):
        assert field in spec
    status = _explain(cluster_kubectl, "trial.status")
    assert "observation" in status and "conditions" in status
    suggestion = _explain(cluster_kubectl, "suggestion.spec")
    assert "requests" in suggestion and "algorithm" in suggestion


# ---- experiments: accepted and refused -----------------------------------------------------------

def test_upstream_shaped_experiments_are_accepted(k8s_api_client: client.ApiClient,
                                                  k8s_namespace: str) -> None:
    examples = experiment_examples()
    refused = []
    for path, doc in examples:
        try:
            _create(k8s_api_client, k8s_namespace, "experiments", doc, dry_run=True)
        except ApiException as e:
            refused.append(f"{path}: {e.status} {e.body}")
    assert not refused, "\n".join(refused)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is _DELETE:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return change


_DELETE = object()

MALFORMED = {
    "maxTrialCount-string": (_set("spec.maxTrialCount", "twelve"),
                             ["spec.maxTrialCount", "must be of type integer"]),
    "maxTrialCount-zero": (_set("spec.maxTrialCount", 0), ["spec.maxTrialCount"]),
    "parameterType-unknown": (_set("spec.parameters.0.parameterType", "float"),
                              ["parameterType", 'Unsupported value: "float"']),
    "distribution-unknown": (_set("spec.parameters.0.feasibleSpace.distribution", "gaussian"),
                             ["distribution", 'Unsupported value: "gaussian"']),
    "objective-missing": (_set("spec.objective", _DELETE), ["spec.objective: Required value"]),
    "objective-type-unknown": (_set("spec.objective.type", "minimise"),
                               ["spec.objective.type", 'Unsupported value: "minimise"']),
    "objective-metric-missing": (_set("spec.objective.objectiveMetricName", _DELETE),
                                 ["spec.objective.objectiveMetricName: Required value"]),
    "goal-string": (_set("spec.objective.goal", "high"), ["spec.objective.goal", "number"]),
    "algorithm-missing": (_set("spec.algorithm", _DELETE), ["spec.algorithm: Required value"]),
    "resumePolicy-unknown": (_set("spec.resumePolicy", "Always"),
                             ["spec.resumePolicy", 'Unsupported value: "Always"']),
    "collector-kind-unknown": (_set("spec.metricsCollectorSpec", {"collector": {"kind": "Stdout"}}),
                               ["spec.metricsCollectorSpec.collector.kind", "Unsupported value"]),
    "parameters-not-a-list": (_set("spec.parameters", {"name": "lr"}),
                              ["spec.parameters", "must be of type array"]),
    "duplicate-parameter": (lambda d: d["spec"]["parameters"].append(dict(d["spec"]["parameters"][0])),
                            ["spec.parameters[3]", "Duplicate value"]),
    "trialSpec-without-kind": (_set("spec.trialTemplate.trialSpec.kind", _DELETE),
                               ["spec.trialTemplate.trialSpec.kind", "Required value"]),
    "name-not-a-dns-label": (_set("metadata.name", "quick.start"), ["metadata.name"]),
    "name-too-long": (_set("metadata.name", "q" * 41), ["metadata.name", "40"]),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_experiments_are_refused_naming_the_field(
        case: str, k8s_api_client: client.ApiClient, k8s_namespace: str) -> None:
    change, expected = MALFORMED[case]
    doc = sample_experiment()
    change(doc)
    message = _refusal(k8s_api_client, k8s_namespace, doc)
    for text in expected:
        assert text in message, f"{text!r} not in {message!r}"


def test_unknown_fields_are_pruned_and_kubectl_reports_them(
        k8s_api_client: client.ApiClient, k8s_namespace: str, cluster_kubectl: Kubectl) -> None:
    """Kubernetes 1.20 prunes unknown fields silently (strict server-side field validation
    is 1.25+); kubectl validates against the published schema first and refuses them."""
    doc = sample_experiment()
    doc["spec"]["maxTrialCounts"] = 5
    stored = _create(k8s_api_client, k8s_namespace, "experiments", doc, dry_run=True)
    assert "maxTrialCounts" not in stored["spec"]
    doc["metadata"]["namespace"] = k8s_namespace
    proc = cluster_kubectl("create", "--dry-run=server", "-f", "-", input=yaml.safe_dump(doc),
                           check=False)
    assert proc.returncode != 0
    assert 'unknown field "maxTrialCounts"' in proc.stderr


# ---- status subresource and printer columns -------------------------------------------------------

def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


def _patch_status(api: client.ApiClient, namespace: str, plural: str, name: str,
                  status: dict[str, Any]) -> dict[str, Any]:
    return read_json(client.CustomObjectsApi(api).patch_namespaced_custom_object_status,
                     GROUP, VERSION, namespace, plural, name, {"status": status},
                     content_type=JSON_MERGE_PATCH)


def test_status_subresource_and_columns(k8s_api_client: client.ApiClient, k8s_namespace: str,
                                        cluster_kubectl: Kubectl) -> None:
    exp = _create(k8s_api_client, k8s_namespace, "experiments", sample_experiment())
    assert "status" not in exp
    now = _now()
    conditions = [{"type": "Created", "status": "True", "reason": "ExperimentCreated",
                   "lastUpdateTime": now, "lastTransitionTime": now},
                  {"type": "Running", "status": "True", "reason": "ExperimentRunning",
                   "lastUpdateTime": now, "lastTransitionTime": now}]
    out = _patch_status(k8s_api_client, k8s_namespace, "experiments", "random-search",
                        {"startTime": now, "conditions": conditions, "trials": 2,
                         "trialsRunning": 2, "runningTrialList": ["random-search-a", "random-search-b"],
                         "notOurs": "pruned"})
    assert out["status"]["trials"] == 2 and "notOurs" not in out["status"]
    table = cluster_kubectl("get", "experiments", "-n", k8s_namespace, "-o", "wide").stdout
    header, row = table.splitlines()[:2]
    assert header.split()[:5] == ["NAME", "TYPE", "STATUS", "ALGORITHM", "TRIALS"]
    assert row.split()[:5] == ["random-search", "Running", "True", "random", "2"]
    # `exp` is the short name.
    assert "random-search" in cluster_kubectl("get", "exp", "-n", k8s_namespace).stdout

    trial = {"apiVersion": "kubeflow.org/v1beta1", "kind": "Trial",
             "metadata": {"name": "trial-a"},
             "spec": {"objective": exp["spec"]["objective"],
                      "parameterAssignments": [{"name": "lr", "value": "0.01"},
                                               {"name": "hidden", "value": "32"}],
                      "runSpec": {"apiVersion": "batch/v1", "kind": "Job",
                                  "metadata": {"name": "trial-a", "namespace": k8s_namespace},
                                  "spec": {"template": {"spec": {"containers": [
                                      {"name": "training-container", "image": "x"}]}}}},
                      "primaryContainerName": "training-container"}}
    _create(k8s_api_client, k8s_namespace, "trials", trial)
    out = _patch_status(k8s_api_client, k8s_namespace, "trials", "trial-a", {
        "startTime": now, "conditions": [{"type": "Succeeded", "status": "True",
                                          "reason": "TrialSucceeded", "lastUpdateTime": now}],
        "observation": {"metrics": [{"name": "Validation-accuracy", "min": "0.5", "max": "0.9",
                                     "latest": "0.9"}]}})
    assert out["status"]["observation"]["metrics"][0]["max"] == "0.9"
    row = cluster_kubectl("get", "trials", "-n", k8s_namespace, "-o", "wide").stdout.splitlines()[1]
    assert row.split()[:4] == ["trial-a", "Succeeded", "True",
                               '[{"name":"lr","value":"0.01"},{"name":"hidden","value":"32"}]']
    # Times are RFC 3339 with a zone: a naive timestamp is refused, so writers must say UTC.
    with pytest.raises(ApiException) as info:
        _patch_status(k8s_api_client, k8s_namespace, "trials", "trial-a",
                      {"completionTime": datetime.datetime.now().isoformat()})
    assert info.value.status == 422 and "status.completionTime" in str(info.value.body)

    suggestion = {"apiVersion": "kubeflow.org/v1beta1", "kind": "Suggestion",
                  "metadata": {"name": "random-search"},
                  "spec": {"algorithm": {"algorithmName": "random"}, "requests": 3}}
    _create(k8s_api_client, k8s_namespace, "suggestions", suggestion)
    _patch_status(k8s_api_client, k8s_namespace, "suggestions", "random-search",
                  {"suggestionCount": 2, "conditions": [{"type": "Running", "status": "True"}]})
    header, row = cluster_kubectl("get", "suggestions", "-n", k8s_namespace).stdout.splitlines()[:2]
    assert header.split()[:5] == ["NAME", "TYPE", "STATUS", "REQUESTED", "ASSIGNED"]
    assert row.split()[:5] == ["random-search", "Running", "True", "3", "2"]


# ---- the whole installation ---------------------------------------------------------------------

# Applied for real: nothing here starts a Pod (the test kubelet would run a Deployment's
# command on this host). The Deployments go through server-side dry run below.
_REAL = {"Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole",
         "ClusterRoleBinding", "Role", "RoleBinding", "ConfigMap", "Secret", "Service",
         "PersistentVolumeClaim"}


def _stream(objects: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False)


@pytest.fixture(scope="module")
def installed_base(base_objects: list[dict[str, Any]], cluster_kubectl: Kubectl) -> None:
    """The base's non-Pod objects applied for real, in the kubeflow namespace (left in place
    for the session, like the CRDs)."""
    namespace = [o for o in base_objects if o["kind"] == "Namespace"]
    cluster_kubectl("apply", "-f", "-", input=_stream(namespace))
    cluster_kubectl("apply", "-f", "-", input=_stream([o for o in base_objects if o["kind"] in _REAL]))


@pytest.mark.parametrize("objects", ["base_objects", "postgres_objects", "ui_actions_objects"])
def test_whole_installation_passes_server_side_admission(
        objects: str, request: pytest.FixtureRequest, installed_base: None,
        cluster_kubectl: Kubectl) -> None:
    rendered = request.getfixturevalue(objects)
    proc = cluster_kubectl("apply", "--dry-run=server", "-f", "-", input=_stream(rendered))
    done = [line for line in proc.stdout.splitlines() if line.endswith("(server dry run)")]
    assert len(done) == len(rendered), proc.stdout
    assert len(by_kind(rendered, "Deployment")) == 6


# (verb, "resource[.group][/subresource]", namespace or None for all namespaces)
CONTROLLER_NEEDS = [
    ("watch", "experiments.kubeflow.org", None), ("patch", "experiments.kubeflow.org", "team-a"),
    ("update", "experiments.kubeflow.org/status", "team-a"),
    ("create", "trials.kubeflow.org", "team-a"), ("delete", "trials.kubeflow.org", "team-a"),
    ("patch", "trials.kubeflow.org/status", "team-a"), ("list", "trials.kubeflow.org", None),
    ("create", "suggestions.kubeflow.org", "team-a"),
    ("update", "suggestions.kubeflow.org/status", "team-a"),
    ("update", "trials.kubeflow.org/finalizers", "team-a"),
    ("create", "jobs.batch", "team-a"), ("delete", "jobs.batch", "team-a"),
    ("watch", "jobs.batch", None),
    ("create", "tfjobs.kubeflow.org", "team-a"), ("create", "pytorchjobs.kubeflow.org", "team-a"),
    ("create", "xgboostjobs.kubeflow.org", "team-a"), ("create", "mpijobs.kubeflow.org", "team-a"),
    ("watch", "mpijobs.kubeflow.org", None),
    ("create", "trainjobs.trainer.kubeflow.org", "team-a"),
    ("delete", "trainjobs.trainer.kubeflow.org", "team-a"),
    ("create", "workflows.argoproj.io", "team-a"), ("create", "pipelineruns.tekton.dev", "team-a"),
    ("get", "jobsets.jobset.x-k8s.io", "team-a"), ("get", "taskruns.tekton.dev", "team-a"),
    ("watch", "pods", None), ("get", "pods/log", "team-a"),
    ("create", "events", "team-a"), ("patch", "events.events.k8s.io", "team-a"),
    ("get", "configmaps", "kubeflow"), ("watch", "configmaps", None),
]
CONTROLLER_MUST_NOT = [
    ("delete", "namespaces", None), ("get", "secrets", "kubeflow"), ("list", "secrets", None),
    ("create", "pods", "team-a"), ("delete", "pods", "team-a"), ("create", "pods/exec", "team-a"),
    ("create", "deployments.apps", "kubeflow"), ("create", "services", "team-a"),
    ("create", "experiments.kubeflow.org", "team-a"), ("delete", "experiments.kubeflow.org", "team-a"),
    ("update", "configmaps", "kubeflow"), ("create", "clusterroles.rbac.authorization.k8s.io", None),
    ("create", "rolebindings.rbac.authorization.k8s.io", "team-a"),
    ("create", "serviceaccounts/token", "kubeflow"), ("patch", "nodes", None),
    ("update", "pytorchjobs.kubeflow.org", "team-a"), ("patch", "jobs.batch", "team-a"),
]


def _allowed(api: client.ApiClient, verb: str, what: str, namespace: str | None,
             account: str = "katib-controller", object_name: str | None = None) -> bool:
    """Ask the authorizer what RBAC allows a ServiceAccount, as `kubectl auth can-i --as` does,
    but without discovery: the workload kinds (TFJob, Workflow, ...) have no CRDs here, and
    kubectl cannot map names it does not discover."""
    resource, _, subresource = what.partition("/")
    name, _, group = resource.partition(".")
    attributes = {"verb": verb, "group": group, "resource": name, "subresource": subresource}
    if namespace is not None:
        attributes["namespace"] = namespace
    if object_name is not None:
        attributes["name"] = object_name
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
              "spec": {"user": f"system:serviceaccount:kubeflow:{account}",
                       "groups": ["system:serviceaccounts", "system:serviceaccounts:kubeflow",
                                  "system:authenticated"],
                       "resourceAttributes": attributes}}
    answer = read_json(client.AuthorizationV1Api(api).create_subject_access_review, review)
    return bool(answer["status"].get("allowed"))


def _can_i(cluster_kubectl: Kubectl, verb: str, what: str, namespace: str | None) -> bool:
    where = ["--all-namespaces"] if namespace is None else ["-n", namespace]
    proc = cluster_kubectl("auth", "can-i", verb, what, *where, f"--as={CONTROLLER}", check=False)
    answer = proc.stdout.strip()
    assert answer in ("yes", "no"), proc.stderr
    return answer == "yes"


@pytest.fixture
def bound(installed_base: None, k8s_api_client: client.ApiClient) -> None:
    # RBAC reaches the authorizer through an informer: the first answer may lag the apply.
    _eventually("the katib-controller binding to take effect",
                lambda: _allowed(k8s_api_client, "watch", "experiments.kubeflow.org", None))


def test_controller_role_grants_what_the_controller_needs(
        bound: None, k8s_api_client: client.ApiClient) -> None:
    missing = [c for c in CONTROLLER_NEEDS if not _allowed(k8s_api_client, *c)]
    assert not missing, f"katib-controller may not: {missing}"


def test_controller_role_is_least_privilege(bound: None, k8s_api_client: client.ApiClient) -> None:
    granted = [c for c in CONTROLLER_MUST_NOT if _allowed(k8s_api_client, *c)]
    assert not granted, f"katib-controller may, but should not: {granted}"
    # The gRPC services' account has no role at all.
    assert not _allowed(k8s_api_client, "get", "trials.kubeflow.org", "team-a", account="katib-services")


# (verb, namespace, lease name) on coordination.k8s.io leases, for leader election.
LEASE_NEEDS = [("create", "kubeflow", None), ("get", "kubeflow", "katib-controller-lock"),
               ("update", "kubeflow", "katib-controller-lock")]
LEASE_MUST_NOT = [
    # Only its own lease: not another component's in its namespace...
    ("get", "kubeflow", "some-operator-lock"), ("update", "kubeflow", "some-operator-lock"),
    ("delete", "kubeflow", "katib-controller-lock"), ("list", "kubeflow", None), ("watch", "kubeflow", None),
    # ...nor anyone's elsewhere (kube-system holds the control plane's own leader leases).
    ("create", "team-a", None), ("update", "kube-system", "kube-controller-manager"),
    ("get", "kube-system", "kube-scheduler"), ("update", "team-a", "katib-controller-lock"),
    ("list", None, None),
]


def test_controller_may_hold_only_its_own_lease(installed_base: None, k8s_api_client: client.ApiClient) -> None:
    _eventually("the leader-election binding to take effect", lambda: _allowed(
        k8s_api_client, "update", "leases.coordination.k8s.io", "kubeflow", object_name="katib-controller-lock"))
    missing = [c for c in LEASE_NEEDS
               if not _allowed(k8s_api_client, c[0], "leases.coordination.k8s.io", c[1], object_name=c[2])]
    assert not missing, f"katib-controller may not: {missing}"
    granted = [c for c in LEASE_MUST_NOT
               if _allowed(k8s_api_client, c[0], "leases.coordination.k8s.io", c[1], object_name=c[2])]
    assert not granted, f"katib-controller may, but should not: {granted}"


def test_kubectl_auth_can_i_agrees(bound: None, cluster_kubectl: Kubectl) -> None:
    """The same answers through `kubectl auth can-i --as=...` for kinds this server serves."""
    assert _can_i(cluster_kubectl, "update", "experiments.kubeflow.org/status", "team-a")
    assert _can_i(cluster_kubectl, "create", "trials.kubeflow.org", "team-a")
    assert _can_i(cluster_kubectl, "create", "jobs.batch", "team-a")
    assert _can_i(cluster_kubectl, "get", "pods/log", "team-a")
    assert _can_i(cluster_kubectl, "list", "pods", None)
    assert not _can_i(cluster_kubectl, "delete", "namespaces", None)
    assert not _can_i(cluster_kubectl, "get", "secrets", "kubeflow")
    assert not _can_i(cluster_kubectl, "create", "deployments.apps", "kubeflow")


# ---- the dashboard's account ----------------------------------------------------------------------

Check = tuple[str, str, "str | None"]  # (verb, what, namespace) as _allowed takes them
UI_NEEDS: list[Check] = [
    ("list", "experiments.kubeflow.org", None), ("watch", "experiments.kubeflow.org", None),
    ("get", "experiments.kubeflow.org", "team-a"), ("list", "trials.kubeflow.org", None),
    ("watch", "trials.kubeflow.org", "team-a"), ("get", "suggestions.kubeflow.org", "team-a"),
    ("list", "pods", "team-a"), ("get", "pods", "team-a"), ("get", "pods/log", "team-a"),
]
UI_ACTIONS: list[Check] = [("create", "experiments.kubeflow.org", "team-a"), ("patch", "experiments.kubeflow.org", "team-a"),
              ("delete", "experiments.kubeflow.org", "team-a")]
UI_NEVER: list[Check] = [
    ("update", "experiments.kubeflow.org/status", "team-a"), ("create", "trials.kubeflow.org", "team-a"),
    ("delete", "trials.kubeflow.org", "team-a"), ("patch", "trials.kubeflow.org", "team-a"),
    ("delete", "pods", "team-a"), ("create", "pods/exec", "team-a"), ("get", "secrets", "kubeflow"),
    ("list", "configmaps", None), ("create", "jobs.batch", "team-a"), ("delete", "namespaces", None),
]


def test_the_dashboard_reads_and_does_not_write_by_default(
        installed_base: None, k8s_api_client: client.ApiClient) -> None:
    _eventually("the katib-ui binding to take effect",
                lambda: _allowed(k8s_api_client, "list", "experiments.kubeflow.org", None, account="katib-ui"))
    missing = [c for c in UI_NEEDS if not _allowed(k8s_api_client, c[0], c[1], c[2], account="katib-ui")]
    assert not missing, f"katib-ui may not: {missing}"
    granted = [c for c in UI_ACTIONS + UI_NEVER if _allowed(k8s_api_client, c[0], c[1], c[2], account="katib-ui")]
    assert not granted, f"katib-ui may, but should not: {granted}"


@pytest.fixture
def ui_actions_bound(installed_base: None, ui_actions_objects: list[dict[str, Any]],
                     cluster_kubectl: Kubectl) -> Any:
    added = [o for o in ui_actions_objects if o["metadata"]["name"] == "katib-ui-actions"]
    assert len(added) == 2
    cluster_kubectl("apply", "-f", "-", input=_stream(added))
    yield
    # Cluster-scoped and shared by the session: the read-only test must not see them.
    cluster_kubectl("delete", "clusterrolebinding/katib-ui-actions", "clusterrole/katib-ui-actions",
                    "--ignore-not-found")


def test_the_ui_actions_component_grants_the_actions_and_nothing_more(
        ui_actions_bound: None, k8s_api_client: client.ApiClient) -> None:
    _eventually("the katib-ui-actions binding to take effect",
                lambda: _allowed(k8s_api_client, "patch", "experiments.kubeflow.org", "team-a", account="katib-ui"))
    missing = [c for c in UI_NEEDS + UI_ACTIONS if not _allowed(k8s_api_client, c[0], c[1], c[2], account="katib-ui")]
    assert not missing, f"katib-ui may not: {missing}"
    granted = [c for c in UI_NEVER if _allowed(k8s_api_client, c[0], c[1], c[2], account="katib-ui")]
    assert not granted, f"katib-ui may, but should not: {granted}"
