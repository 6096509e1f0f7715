"""A real Kubernetes control plane for tests, plus a kubelet that runs Pods as local processes.

- ``scripts/k8s-control-plane.sh`` builds kube-apiserver and kube-controller-manager
  v1.20.2 once from Debian's source package and caches them (with Debian's etcd).
- :mod:`.controlplane` starts etcd, kube-apiserver (client certificates, RBAC,
  service accounts) and kube-controller-manager on free loopback ports.
- :mod:`.kubelet` registers a Node, binds unscheduled Pods to it, runs their
  containers' ``command`` + ``args`` locally (images are ignored), reports Pod
  status and serves container logs to the API server (``pods/log``, ``kubectl logs``).
- Volumes (:mod:`.kubelet_volumes`, :mod:`.kubelet_mountns`): a container that
  mounts volumes runs in a private mount namespace with each ``volumeMount``
  bind-mounted at its ``mountPath`` (``subPath``/``subPathExpr`` and ``readOnly``
  honoured): ``emptyDir`` (a directory per Pod and volume in the kubelet's state
  dir, removed when the Pod is deleted), ``hostPath`` (``type`` checked),
  ``configMap``/``secret``/``downwardAPI``/``projected`` (files written once from
  the object's data, ``items``/``mode`` honoured; CreateContainerConfigError
  while the object is missing) and the ServiceAccount token that admission adds.
  Mount paths missing on this host are created inside the namespace only (a
  tmpfs copy of the nearest existing directory); nothing is created on the
  host. This needs root on Linux; where mount namespaces cannot be created, such
  containers wait with CreateContainerError saying why (the token mount is then
  left out, so other Pods still run), and tests that request ``k8s_volumes``
  are skipped, or failed with ``KATIB_TEST_REQUIRE_K8S=1``.
- :mod:`.pytest_plugin` offers the fixtures ``k8s_control_plane`` (session),
  ``k8s_api_client``, ``k8s_namespace`` and ``k8s_volumes``; mark such tests
  ``@pytest.mark.k8s``.
- :mod:`.api` has dict-in, dict-out helpers (``send``, ``read_json``, ``raw``) that
  sidestep the client's model classes and its PATCH content-type default.

What the test kubelet does not do: images (apart from its volumes a container
sees this host's filesystem, and runs as this user), other isolation (PID,
network, user namespaces, cgroups), persistentVolumeClaim and other network or
CSI volumes, projected serviceAccountToken sources, updates of mounted
ConfigMaps/Secrets, emptyDir ``medium``/``sizeLimit``, probes, resource limits,
exec/attach/port-forward, log timestamps, node heartbeats.
"""
