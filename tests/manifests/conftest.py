"""Fixtures for the manifests tests: kubectl (with its built-in kustomize), the rendered
installation, and kubectl bound to the test control plane."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
CRDS_FILE = MANIFESTS / "base" / "crds.yaml"
POSTGRES = MANIFESTS / "overlays" / "postgres"
UI_ACTIONS = MANIFESTS / "overlays" / "ui-actions"

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def _kubectl_binary() -> str:
    path = shutil.which("kubectl")
    if path is None:
        # CI sets KATIB_TEST_REQUIRE_K8S=1: a missing tool must fail there, not hide.
        message = "kubectl (with its built-in kustomize) is not on PATH"
        if os.environ.get("KATIB_TEST_REQUIRE_K8S") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def kubectl_bin() -> str:
    return _kubectl_binary()


def render(kubectl_bin: str, path: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize PATH`` (offline: no cluster involved) as a list of objects."""
    proc = subprocess.run([kubectl_bin, "kustomize", str(path)], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"kubectl kustomize {path} failed:\n{proc.stderr}"
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


@pytest.fixture(scope="session")
def base_objects(kubectl_bin: str) -> list[dict[str, Any]]:
    return render(kubectl_bin, MANIFESTS)


@pytest.fixture(scope="session")
def postgres_objects(kubectl_bin: str) -> list[dict[str, Any]]:
    return render(kubectl_bin, POSTGRES)


@pytest.fixture(scope="session")
def ui_actions_objects(kubectl_bin: str) -> list[dict[str, Any]]:
    return render(kubectl_bin, UI_ACTIONS)


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


@pytest.fixture(scope="session")
def cluster_kubectl(k8s_control_plane: Any, kubectl_bin: str) -> Kubectl:
    """kubectl as cluster admin of the test control plane; ``input`` feeds stdin."""
    kubeconfig = str(k8s_control_plane.kubeconfig_path)

    def run(*args: str, input: str | None = None, check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([kubectl_bin, f"--kubeconfig={kubeconfig}", *args], input=input,
                              capture_output=True, text=True, timeout=timeout,
                              stdin=None if input is not None else subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n"
                                 f"{proc.stderr}\n{proc.stdout}")
        return proc

    return run


@pytest.fixture(scope="session")
def installed_crds(cluster_kubectl: Kubectl) -> Iterator[None]:
    """The checked-in CRDs applied to the test cluster and Established. They stay for the
    session (cluster-scoped, identical for every test that installs them)."""
    cluster_kubectl("apply", "-f", str(CRDS_FILE))
    cluster_kubectl("wait", "--for=condition=Established", "--timeout=60s",
                    "crd/experiments.kubeflow.org", "crd/trials.kubeflow.org",
                    "crd/suggestions.kubeflow.org")
    yield
