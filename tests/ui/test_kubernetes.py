"""``katib ui --kubeconfig`` against the real test API server: a tune() experiment run by the
controller (trial pods on the test kubelet) as the dashboard shows it, pod logs included,
and the actions: refused when read-only, done with --allow-actions. (A failing trial pod is
retried by its Job for minutes here; failed trials are shown in the local tests.)"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import katib
from katib import search
from katib.sdk.client import KatibClient
from tests.ui import support
from tests.ui.support import call

pytestmark = [pytest.mark.k8s, pytest.mark.slow]

NAME = "ui-k8s"


def objective(p: dict[str, Any]) -> dict[str, float]:
    """Shipped as source to the trial pods: self-contained."""
    import katib

    print(f"training with x={p['x']}", flush=True)
    for step in (1, 2):
        katib.report_metrics({"loss": p["x"] / step})
    return {"loss": p["x"] / 2}


@pytest.fixture(scope="module")
def cluster(k8s_control_plane: Any, katib_crds: None) -> Iterator[tuple[Any, str]]:
    """A namespace holding a finished tune() experiment of three trials."""
    from katib.backends.kubernetes.client import Kube, load_client
    from tests.kubernetes.support import running_controller

    namespace = f"ui-{secrets.token_hex(3)}"
    k8s_control_plane.create_namespace(namespace)
    client = KatibClient(config_file=str(k8s_control_plane.kubeconfig_path), namespace=namespace)
    kube = Kube(load_client(str(k8s_control_plane.kubeconfig_path)))
    try:
        with running_controller(kube, namespace):
            katib.tune(objective, {"x": search.int(1, 3)}, name=NAME, backend="kubernetes", client=client,
                       algorithm_name="grid", objective_metric_name="loss", objective_type="minimize",
                       max_trial_count=3, parallel_trial_count=3, max_failed_trial_count=2, retain_trials=True,
                       progress=False)

            def ended() -> bool:
                exp = client.get_experiment(NAME)
                return bool(exp.status and (exp.status.is_true("Succeeded") or exp.status.is_true("Failed")))

            try:
                support.wait_for(ended, timeout=120, interval=0.5, what=f"experiment {NAME} to end")
            except AssertionError as exc:
                exp = client.get_experiment(NAME)
                states = {t.name: (t.status.state, [(c.type, c.reason, c.message) for c in t.status.conditions])
                          for t in client.list_trials(NAME)}
                raise AssertionError(f"{exc}; conditions {exp.status.conditions if exp.status else None}; "
                                     f"trials {states}") from None
        yield k8s_control_plane, namespace
    finally:
        kube.close()
        client.close()
        k8s_control_plane.delete_namespace(namespace)


@pytest.fixture(scope="module")
def servers(cluster: tuple[Any, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, support.Server]]:
    plane, namespace = cluster
    home = tmp_path_factory.mktemp("ui-k8s")
    config = str(plane.kubeconfig_path)
    read_only = support.start_server(home, "sqlite://", "--kubeconfig", config, "-n", namespace)
    try:
        acting = support.start_server(home, "sqlite://", "--kubeconfig", config, "-n", namespace, "--allow-actions")
    except BaseException:
        read_only.stop()
        raise
    yield {"read-only": read_only, "acting": acting}
    read_only.stop()
    acting.stop()


def get(server: support.Server, path: str) -> Any:
    got = call(server.url + path)
    assert got.status == 200, got.body
    return got.body


def test_the_dashboard_shows_a_clusters_experiment(servers: dict[str, support.Server], cluster: tuple[Any, str]) -> None:
    plane, namespace = cluster
    server = servers["read-only"]
    client = KatibClient(config_file=str(plane.kubeconfig_path), namespace=namespace)
    try:
        exp = client.get_experiment(NAME)
        trials = client.list_trials(NAME)
    finally:
        client.close()
    info = get(server, "/api/info")
    assert info["backend"] == "kubernetes" and info["namespace"] == namespace and not info["allowActions"]
    [row] = get(server, "/api/experiments")["experiments"]
    assert row["name"] == NAME and row["status"] == "Succeeded" and row["algorithm"] == "grid"
    assert row["counts"]["succeeded"] == 3 and row["best"]["value"] == "0.5"
    detail = get(server, f"/api/experiments/{namespace}/{NAME}")
    assert exp.status is not None
    assert detail["runner"] is None and [c["type"] for c in detail["conditions"]] == [c.type for c in exp.status.conditions]
    page = get(server, f"/api/experiments/{namespace}/{NAME}/trials?sort=param:x")
    assert [r["cells"]["param:x"] for r in page["rows"]] == ["1", "2", "3"] and page["total"] == len(trials) == 3
    third = next(t for t in trials if t.spec.assignments["x"] == "3")
    t = get(server, f"/api/experiments/{namespace}/{NAME}/trials/{third.name}")
    assert t["state"] == "Succeeded" and t["failure"] is None
    assert {m["name"]: m["value"] for m in t["metrics"]} == {"loss": "1.5"}
    assert t["log"]["source"] == "the trial's pod log" and "training with x=3" in t["log"]["lines"]
    assert "--db-manager" in t["stepsError"]  # no DB manager is reachable from here: said, not a stack trace
    history = get(server, f"/api/experiments/{namespace}/{NAME}/figures/history")
    assert sorted(y for trace in history["data"] if trace["name"] == "Trials" for y in trace["y"]) == [0.5, 1.0, 1.5]


def test_actions_are_refused_read_only_and_done_with_allow_actions(servers: dict[str, support.Server],
                                                                   cluster: tuple[Any, str], tmp_path: Path) -> None:
    plane, namespace = cluster
    base = f"/api/experiments/{namespace}/{NAME}"
    refused = call(servers["read-only"].url + base + "/budget", "POST", {"maxTrialCount": 5})
    assert refused.status == 403 and "--allow-actions" in refused.body["message"]
    acting = servers["acting"].url
    ended = call(acting + base + "/budget", "POST", {"maxTrialCount": 5})
    assert ended.status == 400 and ended.body["errors"][0]["path"] == "spec.resumePolicy"  # upstream's rule
    made = f"/api/experiments/{namespace}/ui-k8s-made"
    created = call(acting + "/api/experiments", "POST", support.grid_yaml("ui-k8s-made").replace(
        '"name": "ui-k8s-made"', f'"name": "ui-k8s-made", "namespace": "{namespace}"'))
    assert created.status == 201, created.body
    client = KatibClient(config_file=str(plane.kubeconfig_path), namespace=namespace)
    try:
        assert client.get_experiment("ui-k8s-made").spec.max_trial_count == 4
        raised = call(acting + made + "/budget", "POST", {"maxTrialCount": 6})
        assert raised.status == 200 and raised.body["budget"]["maxTrialCount"] == 6, raised.body
        assert client.get_experiment("ui-k8s-made").spec.max_trial_count == 6
        stopped = call(acting + made + "/stop", "POST")  # no controller runs here: it has no trials, gets no more
        assert stopped.status == 200, stopped.body
        assert client.get_experiment("ui-k8s-made").spec.max_trial_count == 1
        assert call(acting + made, "DELETE").status == 200
    finally:
        client.close()
    assert call(acting + made).status == 404
