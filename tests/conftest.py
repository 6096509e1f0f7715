"""Shared test set-up: every test gets its own KATIB_HOME and SQLite store, so nothing
touches the user's ~/.katib."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["tests.harness.pytest_plugin"]


@pytest.fixture(autouse=True)
def _isolated_katib_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("katib-home")
    monkeypatch.setenv("KATIB_HOME", str(home))
    monkeypatch.setenv("KATIB_DB_URL", f"sqlite:///{home}/katib.db")
    return home


@pytest.fixture(scope="session")
def katib_crds(k8s_control_plane: Any) -> None:
    """Our Experiment, Trial and Suggestion CRDs installed on the test control plane."""
    from katib.backends.kubernetes.client import Kube, load_client
    from tests.kubernetes import crds

    kube = Kube(load_client(str(k8s_control_plane.kubeconfig_path)))
    try:
        crds.install(kube, crds.katib_crds())
    finally:
        kube.close()
