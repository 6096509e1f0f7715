"""The Kubernetes half of ``katib.KatibClient``: Experiments, Trials and pod logs via the API.

Kept here because only ``katib.backends.kubernetes`` may import the kubernetes client
(DESIGN.md layering); ``katib.sdk.client.KatibClient`` delegates to ``KubernetesApi``.
Everything goes in and out as plain JSON-shaped dicts; the facade turns them into
``katib.api.model`` objects.

Errors carry the API server's own message (upstream's SDK replaces it with a generic
RuntimeError, reference §11.1): 404 -> NotFoundError, 409 -> AlreadyExistsError, 400/422
(schema or admission webhook refused it) -> ValidationError, anything else ServiceError.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Iterator, List

from kubernetes import client as k8s, config as k8s_config
from kubernetes.client.rest import ApiException

from katib.errors import AlreadyExistsError, FieldError, NotFoundError, ServiceError, ValidationError

__all__ = ["KubernetesApi", "GROUP", "VERSION", "EXPERIMENT_LABEL", "TRIAL_LABEL", "error_of"]

log = logging.getLogger(__name__)

GROUP, VERSION = "kubeflow.org", "v1beta1"
EXPERIMENT_LABEL = "katib.kubeflow.org/experiment"
TRIAL_LABEL = "katib.kubeflow.org/trial"
_SA_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
_COLLECTOR_CONTAINER = "metrics-logger-and-collector"


def error_of(exc: ApiException, what: str) -> Exception:
    """Our error for an API error, with the server's message (and each cause) in it."""
    message, causes = exc.reason or "", []
    try:
        body = json.loads(exc.body or "")
        message = body.get("message") or message
        causes = [f"{c.get('field', '')}: {c.get('message', '')}".strip(": ")
                  for c in (body.get("details") or {}).get("causes") or []]
    except (TypeError, ValueError, AttributeError):
        if exc.body:
            message = str(exc.body)
    text = f"{what}: {message}" + "".join(f"\n  {c}" for c in causes if c and c not in message)
    if exc.status == 404:
        return NotFoundError(text)
    if exc.status == 409:
        return AlreadyExistsError(text)
    if exc.status in (400, 422):
        return ValidationError([FieldError("", text)])
    err = ServiceError(f"{text} (HTTP {exc.status})")
    err.retryable = exc.status in (429, 500, 502, 503, 504)
    return err


class KubernetesApi:
    """Experiments and Trials (kubeflow.org/v1beta1) and trial pod logs."""

    def __init__(self, config_file: str | None = None, context: str | None = None,
                 client_configuration: Any = None, namespace: str | None = None) -> None:
        default_ns = None
        if client_configuration is None:
            client_configuration = k8s.Configuration()
            try:
                k8s_config.load_kube_config(config_file=config_file, context=context,  # type: ignore[no-untyped-call]
                                            client_configuration=client_configuration)
                _, active = k8s_config.list_kube_config_contexts(config_file=config_file)  # type: ignore[no-untyped-call]
                chosen = active
                if context:
                    contexts, _ = k8s_config.list_kube_config_contexts(config_file=config_file)  # type: ignore[no-untyped-call]
                    chosen = next((c for c in contexts if c.get("name") == context), active)
                default_ns = ((chosen or {}).get("context") or {}).get("namespace")
            except (k8s_config.ConfigException, FileNotFoundError, TypeError):
                k8s_config.load_incluster_config(client_configuration=client_configuration)  # type: ignore[no-untyped-call]
        self.api = k8s.ApiClient(client_configuration)
        self.custom = k8s.CustomObjectsApi(self.api)
        self.core = k8s.CoreV1Api(self.api)
        self.namespace = namespace or default_ns or _pod_namespace() or "default"

    def close(self) -> None:
        self.api.close()  # type: ignore[no-untyped-call]

    # -- custom objects --------------------------------------------------------------------
    def create(self, plural: str, body: dict[str, Any], namespace: str) -> dict[str, Any]:
        name = body.get("metadata", {}).get("name") or body.get("metadata", {}).get("generateName", "")
        try:
            return self.custom.create_namespaced_custom_object(  # type: ignore[no-any-return,return-value]
                GROUP, VERSION, namespace, plural, body)
        except ApiException as exc:
            raise error_of(exc, f"creating {plural[:-1]} {namespace}/{name}") from None

    def get(self, plural: str, name: str, namespace: str, timeout: float | None = None) -> dict[str, Any]:
        try:
            return self.custom.get_namespaced_custom_object(  # type: ignore[no-any-return,return-value]
                GROUP, VERSION, namespace, plural, name, _request_timeout=timeout)
        except ApiException as exc:
            raise error_of(exc, f"reading {plural[:-1]} {namespace}/{name}") from None

    def list(self, plural: str, namespace: str, label_selector: str | None = None,
             timeout: float | None = None) -> "List[dict[str, Any]]":
        try:
            found: Any = self.custom.list_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, label_selector=label_selector or "", _request_timeout=timeout)
        except ApiException as exc:
            raise error_of(exc, f"listing {plural} in {namespace}") from None
        return list(found.get("items") or [])

    def patch(self, plural: str, name: str, namespace: str, body: dict[str, Any],
              timeout: float | None = None) -> dict[str, Any]:
        """A JSON merge patch (the client sends dict bodies as merge patches)."""
        try:
            return self.custom.patch_namespaced_custom_object(  # type: ignore[no-any-return,return-value]
                GROUP, VERSION, namespace, plural, name, body, _request_timeout=timeout)
        except ApiException as exc:
            raise error_of(exc, f"updating {plural[:-1]} {namespace}/{name}") from None

    def delete(self, plural: str, name: str, namespace: str, delete_options: Any = None) -> None:
        try:
            self.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, plural, name,
                                                        body=delete_options or k8s.V1DeleteOptions())
        except ApiException as exc:
            raise error_of(exc, f"deleting {plural[:-1]} {namespace}/{name}") from None

    # -- logs ------------------------------------------------------------------------------
    def trial_pods(self, trial: dict[str, Any], namespace: str) -> List[Any]:
        """The trial's pods, primary ones first: by Katib's pod label, else by the labels the
        Job controller and JobSet put on the pods of the workload named after the trial."""
        name = trial["metadata"]["name"]
        primary = (trial.get("spec") or {}).get("primaryPodLabels") or {}
        for selector in (TRIAL_LABEL, "job-name", "batch.kubernetes.io/job-name", "jobset.sigs.k8s.io/jobset-name",
                         "training.kubeflow.org/job-name"):
            try:
                pods = self.core.list_namespaced_pod(namespace, label_selector=f"{selector}={name}").items
            except ApiException as exc:
                raise error_of(exc, f"listing the pods of trial {namespace}/{name}") from None
            if pods:
                pods.sort(key=lambda p: not all(((p.metadata and p.metadata.labels) or {}).get(k) == v
                                                for k, v in primary.items()))
                return list(pods)
        return []

    def pod_logs(self, trial: dict[str, Any], namespace: str, follow: bool = False) -> Iterator[str]:
        """Lines of the trial's primary pod: the StdOut collector's container when there is
        one (upstream redirects the training output into it), else the primary container."""
        pods = self.trial_pods(trial, namespace)
        if not pods:
            raise NotFoundError(f"trial {namespace}/{trial['metadata']['name']} has no pods (yet)")
        pod = pods[0]
        names = [c.name for c in pod.spec.containers]
        spec = trial.get("spec") or {}
        kind = ((spec.get("metricsCollector") or {}).get("collector") or {}).get("kind", "StdOut")
        container = _COLLECTOR_CONTAINER if kind == "StdOut" and _COLLECTOR_CONTAINER in names else \
            spec.get("primaryContainerName") if spec.get("primaryContainerName") in names else names[0]
        try:
            if not follow:
                text = self.core.read_namespaced_pod_log(pod.metadata.name, namespace, container=container)
                yield from str(text).splitlines()
                return
            response: Any = self.core.read_namespaced_pod_log(pod.metadata.name, namespace, container=container,
                                                         follow=True, _preload_content=False)
        except ApiException as exc:
            raise error_of(exc, f"reading the logs of pod {namespace}/{pod.metadata.name}") from None
        buffer = b""
        try:
            for chunk in response.stream():
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    yield line.decode(errors="replace")
            if buffer:
                yield buffer.decode(errors="replace")
        finally:
            response.release_conn()


def _pod_namespace() -> str | None:
    try:
        with open(_SA_NAMESPACE) as f:
            return f.read().strip() or None
    except OSError:
        return None

