"""manifests/ offline: both installations render with kubectl's kustomize, every object
validates against the Kubernetes schemas (kubernetes-validate, strict: unknown fields are
errors), and the pieces agree with each other and with the code."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions

from katib.api import crd
from katib.backends.kubernetes.main import build_parser, election_config
from suggestion import registry as suggestion_registry
from suggestion.service import parse_addresses
from tests.manifests.conftest import REPO, by_kind

# The oldest schemas the package ships (1.25 at the time of writing): the closest to the
# v1.20 test API server, which checks the same objects for real in test_apiserver.py.
K8S_SCHEMA_VERSION = all_versions()[0]


def _validate(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, K8S_SCHEMA_VERSION, strict=True)


@pytest.mark.parametrize("objects", ["base_objects", "postgres_objects", "ui_actions_objects"])
def test_every_rendered_object_validates(objects: str, request: pytest.FixtureRequest) -> None:
    problems = []
    for obj in request.getfixturevalue(objects):
        try:
            _validate(obj)
        except kubernetes_validate.ValidationError as e:
            problems.append(f"{obj['kind']}/{obj['metadata']['name']}: "
                            f"{'.'.join(map(str, e.path))}: {e.message}")
    assert not problems, "\n".join(problems)


def test_validation_is_strict(base_objects: list[dict[str, Any]]) -> None:
    """A negative control: a misspelt field must fail, or the test above proves nothing."""
    deployment = copy.deepcopy(by_kind(base_objects, "Deployment")["katib-controller"])
    deployment["spec"]["template"]["spec"]["containers"][0]["comand"] = ["katib"]
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(deployment)


def test_base_holds_the_whole_installation(base_objects: list[dict[str, Any]]) -> None:
    kinds = {(o["kind"], o["metadata"]["name"]) for o in base_objects}
    assert kinds == {
        ("Namespace", "kubeflow"),
        ("CustomResourceDefinition", "experiments.kubeflow.org"),
        ("CustomResourceDefinition", "trials.kubeflow.org"),
        ("CustomResourceDefinition", "suggestions.kubeflow.org"),
        ("ServiceAccount", "katib-controller"), ("ServiceAccount", "katib-services"),
        ("ClusterRole", "katib-controller"), ("ClusterRoleBinding", "katib-controller"),
        ("Role", "katib-controller-leader-election"), ("RoleBinding", "katib-controller-leader-election"),
        ("ConfigMap", "katib-config"),
        ("Deployment", "katib-controller"),
        ("Deployment", "katib-suggestion"), ("Service", "katib-suggestion"),
        ("Deployment", "katib-earlystopping"), ("Service", "katib-earlystopping"),
        ("Deployment", "katib-db-manager"), ("Service", "katib-db-manager"),
        ("Deployment", "katib-mysql"), ("Service", "katib-mysql"),
        ("PersistentVolumeClaim", "katib-mysql"), ("Secret", "katib-mysql-secrets"),
        ("ServiceAccount", "katib-ui"), ("ClusterRole", "katib-ui"), ("ClusterRoleBinding", "katib-ui"),
        ("Deployment", "katib-ui"), ("Service", "katib-ui"),
    }
    for obj in base_objects:
        if obj["kind"] not in ("Namespace", "CustomResourceDefinition", "ClusterRole",
                               "ClusterRoleBinding"):
            assert obj["metadata"]["namespace"] == "kubeflow", obj["metadata"]["name"]


def test_rendered_crds_are_the_generated_ones(base_objects: list[dict[str, Any]]) -> None:
    rendered = by_kind(base_objects, "CustomResourceDefinition")
    for generated in crd.crds():
        name = generated["metadata"]["name"]
        assert rendered[name]["spec"] == generated["spec"]


def test_postgres_overlay_swaps_the_database(postgres_objects: list[dict[str, Any]]) -> None:
    names = {(o["kind"], o["metadata"]["name"]) for o in postgres_objects}
    assert not {n for n in names if "mysql" in n[1]}, "MySQL objects left in the postgres overlay"
    assert {("Deployment", "katib-postgres"), ("Service", "katib-postgres"),
            ("PersistentVolumeClaim", "katib-postgres"), ("Secret", "katib-postgres-secrets")} <= names
    env = {e["name"]: e for e in _container(postgres_objects, "katib-db-manager")["env"]}
    assert env["DB_NAME"]["value"] == "postgres"
    assert env["KATIB_POSTGRESQL_DB_HOST"]["value"] == "katib-postgres"
    secret = by_kind(postgres_objects, "Secret")["katib-postgres-secrets"]
    for var in env.values():
        ref = var.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            assert ref["name"] == "katib-postgres-secrets" and ref["key"] in secret["stringData"]


def _container(objects: list[dict[str, Any]], deployment: str) -> dict[str, Any]:
    containers = by_kind(objects, "Deployment")[deployment]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def test_services_run_the_katib_commands(base_objects: list[dict[str, Any]]) -> None:
    commands = {name: _container(base_objects, name)["command"]
                for name in ("katib-controller", "katib-suggestion", "katib-earlystopping",
                             "katib-db-manager")}
    assert commands["katib-controller"][:2] == ["katib", "controller"]
    assert commands["katib-suggestion"][:5] == ["katib", "suggestion", "serve", "--port", "6789"]
    assert commands["katib-earlystopping"][:5] == ["katib", "earlystop", "serve", "--port", "6788"]
    assert commands["katib-db-manager"][:4] == ["katib", "db-manager", "--port", "6789"]
    for name in commands:
        assert _container(base_objects, name)["image"] == "katib-lite:latest"
    env = {e["name"]: e for e in _container(base_objects, "katib-db-manager")["env"]}
    assert env["DB_NAME"]["value"] == "mysql"
    assert env["DB_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "katib-mysql-secrets"


def test_services_select_their_pods(base_objects: list[dict[str, Any]]) -> None:
    deployments = by_kind(base_objects, "Deployment")
    for name, service in by_kind(base_objects, "Service").items():
        pod = deployments[name]["spec"]["template"]
        labels = pod["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items(), name
        ports = {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports, name


def test_only_the_controller_and_the_dashboard_get_an_api_token(base_objects: list[dict[str, Any]]) -> None:
    for name, deployment in by_kind(base_objects, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        if name in ("katib-controller", "katib-ui"):
            assert pod["serviceAccountName"] == name  # each its own account and role
        else:
            assert pod.get("automountServiceAccountToken") is False, name


def _flag(command: list[str], name: str) -> str | None:
    for i, arg in enumerate(command):
        if arg == name:
            return command[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def test_controller_runs_with_leader_election(base_objects: list[dict[str, Any]]) -> None:
    """Replicas take turns through the Lease the leader-election Role lets them hold."""
    deployment = by_kind(base_objects, "Deployment")["katib-controller"]
    container = _container(base_objects, "katib-controller")
    command = container["command"]
    assert "--leader-elect" in command
    # A standby replica, and a rollout that keeps it up; the lease keeps them from both acting.
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    env = {e["name"]: e for e in container["env"]}
    # The lease's namespace and the holder's name come from the downward API.
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert _flag(command, "--leader-elect-namespace") is None  # POD_NAMESPACE: the pod's own

    lease = _flag(command, "--leader-elect-id") or "katib-controller-lock"
    role = by_kind(base_objects, "Role")["katib-controller-leader-election"]
    assert role["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    lease_rules = [r for r in role["rules"] if "leases" in r["resources"]]
    assert all(r["apiGroups"] == ["coordination.k8s.io"] for r in lease_rules)
    named = [r for r in lease_rules if r.get("resourceNames")]
    assert [r["resourceNames"] for r in named] == [[lease]], "get/update must name the controller's lease"
    assert set(named[0]["verbs"]) == {"get", "update"}
    unnamed = [r for r in lease_rules if not r.get("resourceNames")]
    assert [set(r["verbs"]) for r in unnamed] == [{"create"}]  # create cannot be limited by name
    binding = by_kind(base_objects, "RoleBinding")["katib-controller-leader-election"]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": "katib-controller-leader-election"}
    pod = deployment["spec"]["template"]["spec"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": pod["serviceAccountName"],
                                    "namespace": deployment["metadata"]["namespace"]}]
    # Not cluster-wide: the ClusterRole grants nothing on leases.
    cluster_rules = by_kind(base_objects, "ClusterRole")["katib-controller"]["rules"]
    assert not [r for r in cluster_rules if "leases" in r["resources"] or "coordination.k8s.io" in r["apiGroups"]]


def test_controller_flags_in_the_manifest_exist() -> None:
    """The Deployment's command parses with the controller's own parser (an unknown flag
    would crash-loop the pods)."""
    docs = [d for d in yaml.safe_load_all((REPO / "manifests" / "base" / "controller.yaml").read_text()) if d]
    command = docs[0]["spec"]["template"]["spec"]["containers"][0]["command"]
    args = build_parser().parse_args(command[2:])
    assert args.leader_elect and args.leader_elect_id == "katib-controller-lock"
    args.leader_elect_namespace = "kubeflow"  # what POD_NAMESPACE gives it in the pod
    cfg = election_config(args)
    assert (cfg.lease_duration, cfg.renew_deadline, cfg.retry_period) == (15, 10, 2)


def _config(objects: list[dict[str, Any]]) -> dict[str, str]:
    return dict(by_kind(objects, "ConfigMap")["katib-config"]["data"])


def test_katib_config_routes_every_builtin_algorithm(base_objects: list[dict[str, Any]]) -> None:
    config = _config(base_objects)
    routes = parse_addresses(config["suggestion-addresses"])
    assert set(suggestion_registry.builtin_names()) <= set(routes)
    assert set(routes.values()) == {"katib-suggestion.kubeflow.svc:6789"}
    assert parse_addresses(config["earlystopping-addresses"]) == {
        "medianstop": "katib-earlystopping.kubeflow.svc:6788"}
    assert config["db-manager-address"] == "katib-db-manager.kubeflow.svc:6789"


def test_controller_reads_its_addresses_from_katib_config(base_objects: list[dict[str, Any]]) -> None:
    env = {e["name"]: e for e in _container(base_objects, "katib-controller")["env"]}
    config = _config(base_objects)
    for var, key in [("KATIB_SUGGESTION_ADDRESSES", "suggestion-addresses"),
                     ("KATIB_EARLYSTOPPING_ADDRESSES", "earlystopping-addresses"),
                     ("KATIB_DB_MANAGER_ADDRESS", "db-manager-address")]:
        assert env[var]["valueFrom"]["configMapKeyRef"] == {"name": "katib-config", "key": key}
        assert key in config


def test_trial_resources_match_the_controller_role(base_objects: list[dict[str, Any]]) -> None:
    """Every workload kind katib-config allows can be created and deleted by the controller."""
    rules = by_kind(base_objects, "ClusterRole")["katib-controller"]["rules"]
    kinds = [k.strip() for k in _config(base_objects)["trial-resources"].split(",")]
    assert "Job.v1.batch" in kinds
    for resource in kinds:
        kind, _, group = resource.split(".", 2)
        plural = kind.lower() + "s"
        granted = [r for r in rules if group in r["apiGroups"] and plural in r["resources"]]
        assert granted, f"no rule for {resource}"
        assert {"create", "delete", "get", "list", "watch"} <= set(granted[0]["verbs"]), resource


def test_dockerfile_installs_the_package_with_katib_entrypoint() -> None:
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert "FROM python:3.11-slim" in text
    assert '".[mysql,postgres,nas,ui]"' in text  # the dashboard runs from the same image
    assert 'ENTRYPOINT ["katib"]' in text


# ---- the dashboard -------------------------------------------------------------------------------

UI_COMMAND = ["katib", "ui", "--in-cluster", "--host", "0.0.0.0", "--port", "8080",
              "--db-manager", "$(KATIB_DB_MANAGER_ADDRESS)"]


def _rules_of(objects: list[dict[str, Any]], account: str) -> list[dict[str, Any]]:
    """Every rule bound to ServiceAccount kubeflow/``account`` by a ClusterRoleBinding."""
    roles = by_kind(objects, "ClusterRole")
    rules = []
    for binding in by_kind(objects, "ClusterRoleBinding").values():
        if {"kind": "ServiceAccount", "name": account, "namespace": "kubeflow"} in binding["subjects"]:
            rules += roles[binding["roleRef"]["name"]]["rules"]
    return rules


def _grants(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {(group, resource, verb) for r in rules for group in r["apiGroups"] for resource in r["resources"]
            for verb in r["verbs"]}


UI_READS = {(g, r, v) for g, r in [("kubeflow.org", "experiments"), ("kubeflow.org", "trials"),
                                   ("kubeflow.org", "suggestions")] for v in ("get", "list", "watch")} | {
    ("", "pods", "get"), ("", "pods", "list"), ("", "pods/log", "get")}


@pytest.mark.parametrize("objects", ["base_objects", "postgres_objects"])
def test_the_dashboard_is_read_only_by_default(objects: str, request: pytest.FixtureRequest) -> None:
    rendered = request.getfixturevalue(objects)
    container = _container(rendered, "katib-ui")
    assert container["command"] == UI_COMMAND and "--allow-actions" not in container["command"]
    assert container["image"] == "katib-lite:latest"
    assert _grants(_rules_of(rendered, "katib-ui")) == UI_READS
    env = {e["name"]: e for e in container["env"]}  # what $(KATIB_DB_MANAGER_ADDRESS) expands to
    assert env["KATIB_DB_MANAGER_ADDRESS"]["valueFrom"]["configMapKeyRef"] == {
        "name": "katib-config", "key": "db-manager-address"}
    service = by_kind(rendered, "Service")["katib-ui"]
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(80, "http")]
    assert container["ports"] == [{"name": "http", "containerPort": 8080}]
    pod = by_kind(rendered, "Deployment")["katib-ui"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_ui_actions_overlay_adds_the_flag_and_the_write_verbs_only(
        base_objects: list[dict[str, Any]], ui_actions_objects: list[dict[str, Any]]) -> None:
    container = _container(ui_actions_objects, "katib-ui")
    assert container["command"] == [*UI_COMMAND, "--allow-actions"]
    added = _grants(_rules_of(ui_actions_objects, "katib-ui")) - _grants(_rules_of(base_objects, "katib-ui"))
    assert added == {("kubeflow.org", "experiments", v) for v in ("create", "patch", "delete")}
    key = lambda o: (o["kind"], o["metadata"]["name"])  # noqa: E731
    base = {key(o): o for o in base_objects}
    overlay = {key(o): o for o in ui_actions_objects}
    assert set(overlay) - set(base) == {("ClusterRole", "katib-ui-actions"), ("ClusterRoleBinding", "katib-ui-actions")}
    assert set(base) <= set(overlay)
    changed = [k for k in base if base[k] != overlay[k]]
    assert changed == [("Deployment", "katib-ui")]  # nothing else differs
    assert overlay[("ClusterRole", "katib-ui-actions")]["metadata"]["labels"] == {"app.kubernetes.io/part-of": "katib"}


def test_the_dashboard_flags_in_the_manifest_exist() -> None:
    """The Deployment's command parses with `katib ui`'s own parser (an unknown flag would
    crash-loop the pod)."""
    import argparse

    from katib.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if "ui" not in commands.choices:
        pytest.skip("katib ui is not in this tree yet")
    for extra in ([], ["--allow-actions"]):
        args = parser.parse_args([*UI_COMMAND[1:], *extra])
        assert args.host == "0.0.0.0" and args.port == 8080 and args.in_cluster
        assert args.db_manager == "$(KATIB_DB_MANAGER_ADDRESS)" and args.allow_actions == bool(extra)
