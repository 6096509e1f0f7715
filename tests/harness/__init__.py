"""A real Kubernetes control plane for tests, plus a kubelet that runs Pods as local processes.

- ``scripts/k8s-control-plane.sh`` builds kube-apiserver and kube-controller-manager
  v1.20.2 once from Debian's source package and caches them (with Debian's etcd).
- :mod:`.controlplane` starts etcd, kube-apiserver (client certificates, RBAC,
  service accounts) and kube-controller-manager on free loopback ports.
- :mod:`.kubelet` registers a Node, binds unscheduled Pods to it, runs their
  containers' ``command`` + ``args`` locally (images are ignored), reports Pod
  status and serves container logs to the API server (``pods/log``, ``kubectl logs``).
- :mod:`.pytest_plugin` offers the fixtures ``k8s_control_plane`` (session),
  ``k8s_api_client`` and ``k8s_namespace``; mark such tests ``@pytest.mark.k8s``.
- :mod:`.api` has dict-in, dict-out helpers (``send``, ``read_json``, ``raw``) that
  sidestep the client's model classes and its PATCH content-type default.

What the test kubelet does not do: images, volumes (a container sees this host's
filesystem; mountPath is ignored), probes, resource limits, exec/attach/port-forward,
log timestamps, node heartbeats.
"""
