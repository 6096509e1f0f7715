"""Fixtures for the controller on the real test control plane (``tests/harness``)."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from katib.backends.kubernetes.client import Kube, load_client


@pytest.fixture
def kube(k8s_control_plane: Any, katib_crds: None) -> Iterator[Kube]:
    k = Kube(load_client(str(k8s_control_plane.kubeconfig_path)))
    try:
        yield k
    finally:
        k.close()
