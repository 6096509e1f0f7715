"""Install Katib's CRDs into a test control plane.

Uses ``katib.api.crd`` (the generated, structural CRDs) when it is importable; otherwise a
minimal schemaless stand-in with the status subresource, so these tests do not depend on
the order in which the two land.
"""

from __future__ import annotations

import time
from typing import Any

from katib.backends.kubernetes.client import ApiError, Kube, Resource

CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition",
                namespaced=False)


def _minimal(kind: str, plural: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.kubeflow.org"},
        "spec": {"group": "kubeflow.org", "scope": "Namespaced",
                 "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
                 "versions": [{"name": "v1beta1", "served": True, "storage": True, "subresources": {"status": {}},
                               "schema": {"openAPIV3Schema": {"type": "object",
                                                              "x-kubernetes-preserve-unknown-fields": True}}}]},
    }


def katib_crds() -> list[dict[str, Any]]:
    try:
        from katib.api import crd
    except ImportError:
        return [_minimal("Experiment", "experiments"), _minimal("Trial", "trials"),
                _minimal("Suggestion", "suggestions")]
    return list(crd.crds())


def install(kube: Kube, crds: list[dict[str, Any]], timeout: float = 60.0) -> None:
    """Create (or replace) the CRDs and wait until the API server serves them."""
    for body in crds:
        try:
            kube.create(CRDS, None, body)
        except ApiError as exc:
            if not exc.conflict:
                raise
            current = kube.get(CRDS, None, body["metadata"]["name"])
            body = dict(body, metadata={**body["metadata"],
                                        "resourceVersion": current["metadata"]["resourceVersion"]})
            kube.replace(CRDS, body)
    deadline = time.monotonic() + timeout
    for body in crds:
        while True:
            got = kube.get(CRDS, None, body["metadata"]["name"])
            conds = {c["type"]: c["status"] for c in (got.get("status") or {}).get("conditions") or []}
            if conds.get("Established") == "True":
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {body['metadata']['name']} not established")
            time.sleep(0.1)
    # Discovery lags establishment by a moment.
    for body in crds:
        spec = body["spec"]
        version = spec["versions"][0]["name"]
        while True:
            try:
                kube.request("GET", f"/apis/{spec['group']}/{version}/{spec['names']['plural']}")
                break
            except ApiError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
