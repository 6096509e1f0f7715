"""pytest fixtures for a real Kubernetes control plane and the test kubelet.

Register it in a conftest.py with ``pytest_plugins = ["tests.harness.pytest_plugin"]``
or on the command line with ``-p tests.harness.pytest_plugin``.

Fixtures:
- ``k8s_control_plane`` (session): a started :class:`ControlPlane` whose
  ``kubelet`` attribute is the running :class:`LocalKubelet`.
- ``k8s_api_client`` (function): a ``kubernetes.client.ApiClient`` as cluster admin.
- ``k8s_namespace`` (function): a fresh namespace (its name), ready for Pods,
  deleted after the test.
- ``k8s_volumes`` (function): request it in a test whose Pods mount volumes.
  The test kubelet mounts them in per-container mount namespaces, which needs
  root on Linux; where it cannot, such tests are skipped, or failed when
  ``KATIB_TEST_REQUIRE_K8S=1``. ``KATIB_TEST_K8S_VOLUMES=0`` makes the
  session's kubelet behave as if it could not (to see that path).

The binaries are built once by ``scripts/k8s-control-plane.sh`` (5-15 minutes,
root and apt-get) and cached. Building is opt-in, since it installs Debian
packages: a plain ``pytest`` never builds; it uses cached binaries or skips the
tests with the command that builds them. ``KATIB_TEST_K8S_BUILD=1`` or
``KATIB_TEST_REQUIRE_K8S=1`` (as CI sets) builds them when missing, right after
collection, outside any test's timeout, and only if a collected test uses these
fixtures. With ``KATIB_TEST_REQUIRE_K8S=1``, tests that cannot get a control
plane fail instead of skipping; ``KATIB_TEST_K8S_BUILD=0`` forbids the build
even then.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import subprocess
from pathlib import Path
from typing import Iterator, Union

import pytest
from kubernetes import client

from .controlplane import ControlPlane
from .kubelet import LocalKubelet

log = logging.getLogger(__name__)

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "k8s-control-plane.sh"
_FIXTURES = {"k8s_control_plane", "k8s_namespace", "k8s_api_client", "k8s_volumes"}
_UNAVAILABLE = 69  # the script's "not cached and cannot build here" (EX_UNAVAILABLE)


class _Unavailable:
    """Why the control plane cannot run: skip (or fail if required) with ``reason``."""

    def __init__(self, reason: str, broken: bool = False) -> None:
        self.reason = reason
        self.broken = broken  # a build that failed is a bug, not a missing prerequisite


_BINARIES = pytest.StashKey[Union[Path, _Unavailable]]()


def _required() -> bool:
    return os.environ.get("KATIB_TEST_REQUIRE_K8S") == "1"


def _run_script(no_build: bool) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if no_build:
        env["KATIB_K8S_NO_BUILD"] = "1"
    return subprocess.run(["bash", str(SCRIPT)], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)


def _build_allowed() -> bool:
    """Whether the tests may build the control plane: it apt-installs Go and etcd, so only
    when asked (``KATIB_TEST_K8S_BUILD=1``) or required (CI), never by surprise."""
    flag = os.environ.get("KATIB_TEST_K8S_BUILD")
    if flag == "0":
        return False
    return flag == "1" or _required()


NOT_BUILT = (f"the k8s test control plane is not built; build it once with `bash scripts/{SCRIPT.name}` "
             "(5-15 minutes; needs root and apt-get, installs Go and etcd from Debian), or run the "
             "tests with KATIB_TEST_K8S_BUILD=1 to build it first")


def _find_or_build(config: pytest.Config) -> Union[Path, _Unavailable]:
    if _BINARIES in config.stash:
        return config.stash[_BINARIES]
    proc = _run_script(no_build=True)  # milliseconds when cached
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if proc.returncode == _UNAVAILABLE and not _build_allowed():
        result: Union[Path, _Unavailable] = _Unavailable(NOT_BUILT)
        if reporter is not None:
            reporter.write_line(f"k8s tests skipped: {NOT_BUILT}")
        config.stash[_BINARIES] = result
        return result
    if proc.returncode == _UNAVAILABLE:
        if reporter is not None:
            reporter.write_line(f"k8s test control plane: building it once with {SCRIPT} "
                                "(5-15 minutes; the log is build.log in its cache dir)")
        proc = _run_script(no_build=False)
    if proc.returncode == 0:
        result = Path(proc.stdout.strip().splitlines()[-1])
    elif proc.returncode == _UNAVAILABLE:
        result = _Unavailable(proc.stderr.strip() or "k8s binaries unavailable")
    else:
        result = _Unavailable(
            f"{SCRIPT.name} failed with exit code {proc.returncode}:\n{proc.stderr.strip()}",
            broken=True)
    if reporter is not None and isinstance(result, _Unavailable):
        reporter.write_line(f"k8s test control plane unavailable: {result.reason}")
    config.stash[_BINARIES] = result
    return result


def pytest_collection_finish(session: pytest.Session) -> None:
    # Build before any test starts, so a long first build does not count
    # against the first k8s test's timeout.
    if any(_FIXTURES & set(getattr(item, "fixturenames", ())) for item in session.items):
        _find_or_build(session.config)


@pytest.fixture(scope="session")
def k8s_control_plane(request: pytest.FixtureRequest) -> Iterator[ControlPlane]:
    """A real kube-apiserver + controller-manager + etcd, and a test kubelet, for the session."""
    binaries = _find_or_build(request.config)
    if isinstance(binaries, _Unavailable):
        if _required() or binaries.broken:
            pytest.fail(f"k8s test control plane required but unavailable: {binaries.reason}",
                        pytrace=False)
        pytest.skip(f"k8s test control plane unavailable: {binaries.reason}")
    cp = ControlPlane(binaries)
    cp.start()
    kubelet = LocalKubelet(
        cp.kubeconfig_path, cp.kubelet_serving, cp.pki.ca_cert,
        # What a Pod in a cluster finds in its environment to reach the API.
        extra_env={"KUBERNETES_SERVICE_HOST": "127.0.0.1",
                   "KUBERNETES_SERVICE_PORT": str(cp.apiserver_port)},
        volumes=os.environ.get("KATIB_TEST_K8S_VOLUMES") != "0")
    try:
        kubelet.start()
    except BaseException:
        cp.stop()
        raise
    cp.kubelet = kubelet
    try:
        yield cp
    finally:
        kubelet.stop()
        cp.stop()


@pytest.fixture
def k8s_volumes(k8s_control_plane: ControlPlane) -> None:
    """Skip (or fail, if required) unless the test kubelet can mount Pod volumes."""
    kubelet = k8s_control_plane.kubelet
    reason = kubelet.volumes_unavailable if kubelet is not None else "no test kubelet runs"
    if reason is None:
        return
    if _required():
        pytest.fail(f"the test kubelet must mount volumes but cannot: {reason}", pytrace=False)
    pytest.skip(f"the test kubelet cannot mount volumes here: {reason}")


@pytest.fixture
def k8s_api_client(k8s_control_plane: ControlPlane) -> Iterator[client.ApiClient]:
    """An admin ApiClient for one test, closed afterwards."""
    api = k8s_control_plane.api_client()
    try:
        yield api
    finally:
        api.close()  # type: ignore[no-untyped-call]


@pytest.fixture
def k8s_namespace(k8s_control_plane: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    """A new namespace named after the test, with its default ServiceAccount ready."""
    base = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{base or 'test'}-{secrets.token_hex(3)}"
    k8s_control_plane.create_namespace(name)
    try:
        yield name
    finally:
        # Not waited for: the namespace controller cleans up in the background.
        k8s_control_plane.delete_namespace(name)
