"""The k8s test control plane is built only when asked: a plain ``pytest`` on a user's
machine never apt-installs anything, and a build that is asked for waits for another
apt's lock instead of failing.

Each test runs pytest in a subprocess on a one-test file that needs the control plane,
with an empty binary cache and a stand-in ``apt-get`` first on PATH that records how it
was called and fails, so nothing is installed whatever the code under test does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.pytest_plugin import _build_allowed

REPO = Path(__file__).resolve().parents[2]

_FAKE_APT = """#!/bin/sh
echo "$*" >> "{calls}"
echo "E: Could not get lock /var/lib/dpkg/lock-frontend (stand-in apt-get of the tests)" >&2
exit 100
"""


def _run(tmp_path: Path, **env_extra: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    fakebin = tmp_path / "bin"
    fakebin.mkdir()
    calls = tmp_path / "apt-calls"
    apt = fakebin / "apt-get"
    apt.write_text(_FAKE_APT.format(calls=calls))
    apt.chmod(0o755)
    test_file = tmp_path / "test_needs_k8s.py"
    test_file.write_text("def test_needs_control_plane(k8s_control_plane):\n    pass\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("KATIB_TEST_REQUIRE_K8S", "KATIB_TEST_K8S_BUILD", "KATIB_K8S_NO_BUILD")}
    env.update(PATH=f"{fakebin}:{env['PATH']}", KATIB_K8S_CACHE=str(tmp_path / "cache"), **env_extra)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "tests.harness.pytest_plugin",
         "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(test_file)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)
    recorded = calls.read_text().splitlines() if calls.exists() else []
    return proc, recorded


def test_plain_pytest_skips_with_the_build_command_and_installs_nothing(tmp_path: Path) -> None:
    proc, apt_calls = _run(tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "1 skipped" in out, out
    assert "scripts/k8s-control-plane.sh" in out and "KATIB_TEST_K8S_BUILD=1" in out, out
    assert apt_calls == [], f"apt-get ran without being asked: {apt_calls}"
    assert not (tmp_path / "cache" / "v1.20.2" / "build.log").exists()


def test_required_but_forbidden_build_fails_with_the_reason(tmp_path: Path) -> None:
    proc, apt_calls = _run(tmp_path, KATIB_TEST_REQUIRE_K8S="1", KATIB_TEST_K8S_BUILD="0")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "required but unavailable" in out and "KATIB_TEST_K8S_BUILD=1" in out, out
    assert apt_calls == []


@pytest.mark.skipif(not _build_allowed(), reason=(
    "runs the control-plane build script up to its first apt-get call, which may add Debian's "
    "source lists to /etc/apt: only where building is allowed (KATIB_TEST_K8S_BUILD=1 or "
    "KATIB_TEST_REQUIRE_K8S=1)"))
@pytest.mark.skipif(os.geteuid() != 0, reason="the build script builds only as root")
def test_an_asked_for_build_waits_for_apt_locks(tmp_path: Path) -> None:
    proc, apt_calls = _run(tmp_path, KATIB_TEST_K8S_BUILD="1", KATIB_APT_LOCK_TIMEOUT="77")
    out = proc.stdout + proc.stderr
    # The stand-in fails like apt does when the lock stays held past the timeout: the build
    # is reported broken with apt's message, not skipped.
    assert proc.returncode == 1, out
    assert "Could not get lock" in out, out
    assert apt_calls, "the build never reached apt-get"
    for call in apt_calls:
        assert "DPkg::Lock::Timeout=77" in call, f"apt-get called without waiting for locks: {call}"
